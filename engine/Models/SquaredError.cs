// The mean squared error of a reconstruction and its gradient, composed from existing ops (there is no MSE op): the
// label-free autoencoder of `routekit ood` trains on it.
//
// Shapes: R rows, F features, N = R * F elements.
//   y, t      [R, F]   the model's output and the target
//   L         scalar   (1/N) sum (y - t)^2
//   dL/dy     [R, F]   c (y - t), c = 2 / N
// dL/dy = c y + (-c t): the target is stored once per batch as -c t (host-scaled when it is uploaded), c y is a Linear
// with one input and one output (y viewed as [N, 1] times the 1 x 1 weight c), and Residual.Add sums the two. The loss
// itself, when asked for, is read from FeatureNorms' L2 of the gradient rows: sum_rows L2^2 = c^2 sum (y - t)^2.
namespace RouteKit.Engine.Models;

/// <summary>Mean squared error against a target and its gradient, for one output tensor; see the file header.</summary>
public sealed class SquaredError : IDisposable
{
    private readonly Tensor y, yColumn, scale, scaled, negScaledTarget, gradientColumn;
    private readonly float[] host;
    private readonly FeatureNormOutput norms;
    private readonly float[] rowNorms;
    private readonly float c;

    /// <summary>Prepares the buffers for the output <paramref name="output"/> <c>[R, F]</c>, which later forwards overwrite.</summary>
    /// <exception cref="ArgumentException">The output is not rank 2.</exception>
    public SquaredError(Tensor output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (output.Rank != 2)
            throw new ArgumentException($"output must have rank 2 [R, F]; got shape {Tensor.Format([.. output.Shape])}.", nameof(output));
        var device = output.Device;
        int rows = output.Shape[0], features = output.Shape[1], n = rows * features;
        c = 2f / n;
        y = output;
        yColumn = output.Reshape(n, 1);
        scale = device.FromArray([c], 1, 1);
        scaled = device.Zeros(n, 1);
        negScaledTarget = device.Zeros(n, 1);
        Gradient = device.Zeros(rows, features);
        gradientColumn = Gradient.Reshape(n, 1);
        host = new float[n];
        rowNorms = new float[rows];
        norms = new FeatureNormOutput(device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows));
    }

    /// <summary>dL/dy <c>[R, F]</c> of the last <see cref="Backward"/>.</summary>
    public Tensor Gradient { get; }

    /// <summary>Sets the target t <c>[R, F]</c> row-major (kept on the device as -c t).</summary>
    /// <exception cref="ArgumentException">The length is not R * F.</exception>
    public void SetTarget(ReadOnlySpan<float> target)
    {
        if (target.Length != host.Length)
            throw new ArgumentException($"target has {target.Length} values; the output [{string.Join(", ", y.Shape)}] has {host.Length}.", nameof(target));
        for (var i = 0; i < host.Length; i++) host[i] = -c * target[i];
        negScaledTarget.CopyFrom(host);
    }

    /// <summary>Writes dL/dy = (2 / N)(y - t) into <see cref="Gradient"/> for the output's current values; no read-back.</summary>
    public Tensor Backward()
    {
        Linear.Forward(yColumn, scale, null, scaled);
        Residual.Add(scaled, negScaledTarget, gradientColumn);
        return Gradient;
    }

    /// <summary>The loss (1/N) sum (y - t)^2 of the last <see cref="Backward"/> (one read of R floats).</summary>
    public double Loss()
    {
        FeatureNorms.Forward(Gradient, norms);
        norms.L2.CopyTo(rowNorms);
        var sum = 0.0;
        foreach (var r in rowNorms) sum += (double)r * r;
        return sum / ((double)c * c * host.Length);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in new[] { scale, scaled, negScaledTarget, Gradient }) t.Dispose();
        norms.Dispose();
    }
}
