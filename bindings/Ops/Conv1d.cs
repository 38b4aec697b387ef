// Conv1d: launcher, validation and dispatcher of the causal depthwise 1-D convolution over time (the Mamba block's conv).
// Shapes: B batch, T time, C channels, K kernel width; x, y, dy, dx [B, T, C]; weight, dweight [C, K]; bias, dbias [C].
// Implementations: Managed -> bindings/Managed/Conv1dManaged.cs; ILGPU -> kernels/Training/Conv1dKernels.cs;
// spec -> bindings/Reference/Conv1dReference.cs. Time the Managed path with `routekit-perf conv1d`.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>Conv1d's gradients: dx <c>[B, T, C]</c>, dweight <c>[C, K]</c> and, with a bias, dbias <c>[C]</c>.</summary>
public sealed class Conv1dGradients : IDisposable
{
    /// <summary>Wraps dx [B, T, C], dweight [C, K] and dbias [C] (null for a conv without bias).</summary>
    public Conv1dGradients(Tensor dx, Tensor dWeight, Tensor? dBias) => (DX, DWeight, DBias) = (dx, dWeight, dBias);

    /// <summary>Gradient of the input, [B, T, C].</summary>
    public Tensor DX { get; }
    /// <summary>Gradient of the weight, [C, K].</summary>
    public Tensor DWeight { get; }
    /// <summary>Gradient of the bias, [C]; null for a conv without bias.</summary>
    public Tensor? DBias { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DX.Dispose();
        DWeight.Dispose();
        DBias?.Dispose();
    }
}

/// <summary>
/// Causal depthwise convolution over time of x <c>[B, T, C]</c> with one width-K filter per channel, weight <c>[C, K]</c>:
/// <c>y[b, t, c] = bias[c] + sum_j weight[c, j] x[b, t - (K-1) + j, c]</c>, x = 0 before t = 0, so y at t sees x up to t
/// only. This is PyTorch's <c>F.conv1d(x.transpose(1, 2), weight.unsqueeze(1), bias, padding=K-1, groups=C)[..., :T]</c>
/// (weight[c, K-1] multiplies x[t]) in tokens-major layout; Mamba uses K = 4. Any K &gt;= 1 and any T (T &lt; K too) work.
/// Gradients are written, not accumulated, and every output element is summed by one thread in a fixed order (no
/// atomics): repeated calls are bitwise equal.
/// </summary>
public static class Conv1d
{
    /// <summary>The Mamba block's kernel width.</summary>
    public const int DefaultWidth = 4;

    /// <summary>y = causal depthwise conv of x [B, T, C] with weight [C, K], plus bias [C] when given; y [B, T, C].</summary>
    /// <param name="x">Input [B, T, C], channels contiguous.</param>
    /// <param name="weight">Filters [C, K]; weight[c, K-1] multiplies x[t], weight[c, 0] multiplies x[t - K + 1].</param>
    /// <param name="bias">Bias [C], or null.</param>
    /// <param name="y">Preallocated output [B, T, C], or null to allocate one. Untouched when the call refuses.</param>
    /// <exception cref="ArgumentException">x is not rank 3, weight is not rank 2 with C rows and K &gt;= 1 columns, bias is
    /// not [C], a tensor lives on another device, y has the wrong shape or is an input, or an input holds NaN or infinity.
    /// Nothing is launched and y is untouched then.</exception>
    public static Tensor Forward(Tensor x, Tensor weight, Tensor? bias = null, Tensor? y = null)
    {
        var (batch, time, channels, width) = Validate(x, weight);
        var device = x.Device;
        if (bias is not null) TensorChecks.Input(device, bias, [channels], nameof(bias));
        if (y is not null) TensorChecks.Output(device, y, [batch, time, channels], nameof(y), x, weight, bias);
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        if (bias is not null) TensorChecks.Finite(bias, nameof(bias));
        var result = y ?? device.Zeros(batch, time, channels);
        if (device.Backend == Backend.Managed)
        {
            Conv1dManaged.Forward(x.HostSpan, weight.HostSpan, bias is null ? default : bias.HostSpan, result.HostSpan, batch, time, channels, width);
            return result;
        }
        var kernel = device.GetKernel("Conv1d.Forward", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, int, int, int, int>(Conv1dKernels.Forward));
        // Without a bias the kernel never reads the bias view; the weight stands in so no buffer is allocated.
        kernel(result.Length, x.View, weight.View, (bias ?? weight).View, result.View, time, channels, width, bias is null ? 0 : 1);
        return result;
    }

    /// <summary>
    /// dx, dweight and, when <paramref name="hasBias"/>, dbias from dy [B, T, C] and the forward's x and weight.
    /// Overwrites the given gradients.
    /// </summary>
    /// <param name="dy">Gradient of the output [B, T, C].</param>
    /// <param name="x">The forward's input [B, T, C].</param>
    /// <param name="weight">The forward's filters [C, K].</param>
    /// <param name="hasBias">Whether the conv has a bias, so dbias is computed.</param>
    /// <param name="gradients">Preallocated gradients (DBias present exactly when <paramref name="hasBias"/>), or null to
    /// allocate them. Untouched when the call refuses.</param>
    /// <exception cref="ArgumentException">A rank, shape or device does not match, a gradient is an input or another
    /// gradient, DBias is given without hasBias or missing with it, or an input holds NaN or infinity. Nothing is
    /// launched then.</exception>
    public static Conv1dGradients Backward(Tensor dy, Tensor x, Tensor weight, bool hasBias, Conv1dGradients? gradients = null)
    {
        var (batch, time, channels, width) = Validate(x, weight);
        var device = x.Device;
        TensorChecks.Input(device, dy, [batch, time, channels], nameof(dy));
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DX, [batch, time, channels], "gradients.DX", dy, x, weight);
            TensorChecks.Output(device, gradients.DWeight, [channels, width], "gradients.DWeight", dy, x, weight, gradients.DX);
            if (hasBias != gradients.DBias is not null)
                throw new ArgumentException(
                    $"gradients.DBias is {(gradients.DBias is null ? "null" : "given")} but hasBias is {hasBias}; give a [{channels}] dbias exactly when the conv has a bias.",
                    nameof(gradients));
            if (gradients.DBias is not null)
                TensorChecks.Output(device, gradients.DBias, [channels], "gradients.DBias", dy, x, weight, gradients.DX, gradients.DWeight);
        }
        TensorChecks.Finite(dy, nameof(dy));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        var g = gradients ?? new Conv1dGradients(device.Zeros(batch, time, channels), device.Zeros(channels, width), hasBias ? device.Zeros(channels) : null);
        if (device.Backend == Backend.Managed)
        {
            Conv1dManaged.Backward(dy.HostSpan, x.HostSpan, weight.HostSpan, g.DX.HostSpan, g.DWeight.HostSpan, g.DBias is null ? default : g.DBias.HostSpan,
                batch, time, channels, width);
            return g;
        }
        var input = device.GetKernel("Conv1d.BackwardInput", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, int, int, int>(Conv1dKernels.BackwardInput));
        input(g.DX.Length, dy.View, weight.View, g.DX.View, time, channels, width);
        var parameters = device.GetKernel("Conv1d.BackwardParameters", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, int, int, int, int>(Conv1dKernels.BackwardParameters));
        // K C threads for dweight, and C more for dbias when there is one (otherwise DWeight stands in, never written).
        parameters((width + (g.DBias is null ? 0 : 1)) * channels, dy.View, x.View, g.DWeight.View, (g.DBias ?? g.DWeight).View,
            batch, time, channels, width);
        return g;
    }

    // (B, T, C, K) of x [B, T, C] and weight [C, K], or the ArgumentException that names what is wrong.
    private static (int Batch, int Time, int Channels, int Width) Validate(Tensor x, Tensor weight)
    {
        TensorChecks.NotNull(x, nameof(x));
        x.Device.ThrowIfDisposed();
        var shape = x.ShapeSpan;
        if (shape.Length != 3)
            throw new ArgumentException($"x must have rank 3 [B, T, C]; got shape {Tensor.Format(shape)}.", nameof(x));
        var (batch, time, channels) = (shape[0], shape[1], shape[2]);
        TensorChecks.NotNull(weight, nameof(weight));
        TensorChecks.SameDevice(x.Device, weight, nameof(weight));
        var filters = weight.ShapeSpan;
        if (filters.Length != 2 || filters[0] != channels || filters[1] < 1)
            throw new ArgumentException(
                $"weight has shape {Tensor.Format(filters)}; wanted [{channels}, K] (one width-K filter per channel of x, K >= 1).",
                nameof(weight));
        return (batch, time, channels, filters[1]);
    }
}
