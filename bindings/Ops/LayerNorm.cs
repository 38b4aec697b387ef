// LayerNorm: launcher, validation and dispatcher. Shapes: T rows (tokens), C channels; x, y, dy, dx [T, C];
// weight, bias, dweight, dbias [C]; mean, rstd [T].
// Implementations: Managed -> bindings/Managed/LayerNormManaged.cs; ILGPU -> kernels/Training/LayerNormKernels.cs;
// spec -> bindings/Reference/LayerNormReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>LayerNorm's output y <c>[T, C]</c> and the statistics the backward needs, mean and rstd <c>[T]</c>.</summary>
public sealed class LayerNormOutput : IDisposable
{
    /// <summary>Wraps y [T, C], mean [T] and rstd [T].</summary>
    public LayerNormOutput(Tensor y, Tensor mean, Tensor rstd) => (Y, Mean, Rstd) = (y, mean, rstd);

    /// <summary>(x - mean) rstd weight + bias, [T, C].</summary>
    public Tensor Y { get; }
    /// <summary>Row means, [T].</summary>
    public Tensor Mean { get; }
    /// <summary>1 / sqrt(var + eps) per row (biased variance), [T].</summary>
    public Tensor Rstd { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Y.Dispose();
        Mean.Dispose();
        Rstd.Dispose();
    }
}

/// <summary>LayerNorm's gradients: dx <c>[T, C]</c>, dweight and dbias <c>[C]</c>.</summary>
public sealed class LayerNormGradients : IDisposable
{
    /// <summary>Wraps dx [T, C], dweight [C] and dbias [C].</summary>
    public LayerNormGradients(Tensor dx, Tensor dWeight, Tensor dBias) => (DX, DWeight, DBias) = (dx, dWeight, dBias);

    /// <summary>Gradient of the input, [T, C].</summary>
    public Tensor DX { get; }
    /// <summary>Gradient of the weight, [C].</summary>
    public Tensor DWeight { get; }
    /// <summary>Gradient of the bias, [C].</summary>
    public Tensor DBias { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DX.Dispose();
        DWeight.Dispose();
        DBias.Dispose();
    }
}

/// <summary>
/// Layer normalisation over the last dimension of x <c>[T, C]</c> (PyTorch's <c>nn.LayerNorm(C)</c>, biased variance),
/// saving mean and rstd for the backward (llm.c's layernorm_forward/backward). Gradients are written, not accumulated,
/// and the parameter gradients are summed over rows in a fixed order (no float atomics): repeated calls are bitwise equal.
/// </summary>
public static class LayerNorm
{
    /// <summary>PyTorch's default eps.</summary>
    public const float DefaultEps = 1e-5f;

    /// <summary>y = (x - mean) / sqrt(var + eps) weight + bias per row of x [T, C]; also returns mean and rstd [T].</summary>
    /// <remarks>
    /// The row statistics are float32 sums on every backend: a row whose sum of squared deviations exceeds float32's
    /// range (|x - mean| beyond about 1.8e19 / sqrt(C)) is not refused but gets rstd = 0, so y = bias there (NaN where
    /// the row sum itself overflows, |x| near float.MaxValue / C); scale such rows down first (LayerNorm is invariant
    /// to the scale of x up to eps).
    /// </remarks>
    /// <exception cref="ArgumentException">x is not rank 2, weight or bias is not [C], eps is not finite and positive, a
    /// tensor lives on another device, an output has the wrong shape or is an input, or an input holds NaN or infinity.
    /// Nothing is launched and the outputs are untouched then.</exception>
    public static LayerNormOutput Forward(Tensor x, Tensor weight, Tensor bias, float eps = DefaultEps, LayerNormOutput? outputs = null)
    {
        var (rows, channels) = Rows(x, nameof(x));
        var device = x.Device;
        TensorChecks.Input(device, weight, [channels], nameof(weight));
        TensorChecks.Input(device, bias, [channels], nameof(bias));
        CheckEps(eps);
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Y, [rows, channels], "outputs.Y", x, weight, bias);
            TensorChecks.Output(device, outputs.Mean, [rows], "outputs.Mean", x, weight, bias, outputs.Y);
            TensorChecks.Output(device, outputs.Rstd, [rows], "outputs.Rstd", x, weight, bias, outputs.Y, outputs.Mean);
        }
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        TensorChecks.Finite(bias, nameof(bias));
        var o = outputs ?? new LayerNormOutput(device.Zeros(rows, channels), device.Zeros(rows), device.Zeros(rows));
        if (device.Backend == Backend.Managed)
        {
            LayerNormManaged.Forward(x.HostSpan, weight.HostSpan, bias.HostSpan, o.Y.HostSpan, o.Mean.HostSpan, o.Rstd.HostSpan, rows, channels, eps);
            return o;
        }
        var kernel = device.GetKernel("LayerNorm.Forward", static acc =>
            acc.LoadStreamKernel<View, View, View, View, View, View, int, int, float>(LayerNormKernels.Forward));
        kernel(new KernelConfig(GridSize(device, rows), LayerNormKernels.GroupSize),
            x.View, weight.View, bias.View, o.Y.View, o.Mean.View, o.Rstd.View, rows, channels, eps);
        return o;
    }

    /// <summary>
    /// dx, dweight and dbias from dy [T, C], the forward's x and weight and its saved mean and rstd (llm.c's formula:
    /// dx = rstd (dnorm - mean(dnorm) - norm mean(dnorm norm)), dnorm = weight dy, norm = (x - mean) rstd).
    /// </summary>
    /// <exception cref="ArgumentException">A shape or device does not match, an output is an input, or dy, x, weight or the
    /// saved mean and rstd hold NaN or infinity. Nothing is launched and the outputs are untouched then.</exception>
    public static LayerNormGradients Backward(Tensor dy, Tensor x, Tensor weight, LayerNormOutput forward, LayerNormGradients? gradients = null)
    {
        var (rows, channels) = Rows(x, nameof(x));
        var device = x.Device;
        TensorChecks.Input(device, dy, [rows, channels], nameof(dy));
        TensorChecks.Input(device, weight, [channels], nameof(weight));
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, forward.Mean, [rows], "forward.Mean");
        TensorChecks.Input(device, forward.Rstd, [rows], "forward.Rstd");
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DX, [rows, channels], "gradients.DX", dy, x, weight, forward.Mean, forward.Rstd);
            TensorChecks.Output(device, gradients.DWeight, [channels], "gradients.DWeight", dy, x, weight, forward.Mean, forward.Rstd,
                gradients.DX);
            TensorChecks.Output(device, gradients.DBias, [channels], "gradients.DBias", dy, x, weight, forward.Mean, forward.Rstd,
                gradients.DX, gradients.DWeight);
        }
        TensorChecks.Finite(dy, nameof(dy));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        TensorChecks.Finite(forward.Mean, "forward.Mean");
        TensorChecks.Finite(forward.Rstd, "forward.Rstd");
        var g = gradients ?? new LayerNormGradients(device.Zeros(rows, channels), device.Zeros(channels), device.Zeros(channels));
        if (device.Backend == Backend.Managed)
        {
            LayerNormManaged.Backward(dy.HostSpan, x.HostSpan, weight.HostSpan, forward.Mean.HostSpan, forward.Rstd.HostSpan,
                g.DX.HostSpan, g.DWeight.HostSpan, g.DBias.HostSpan, rows, channels);
            return g;
        }
        var input = device.GetKernel("LayerNorm.BackwardInput", static acc =>
            acc.LoadStreamKernel<View, View, View, View, View, View, int, int>(LayerNormKernels.BackwardInput));
        input(new KernelConfig(GridSize(device, rows), LayerNormKernels.GroupSize),
            dy.View, x.View, weight.View, forward.Mean.View, forward.Rstd.View, g.DX.View, rows, channels);
        var parameters = device.GetKernel("LayerNorm.BackwardParameters", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, View, View, int, int>(LayerNormKernels.BackwardParameters));
        parameters(channels, dy.View, x.View, forward.Mean.View, forward.Rstd.View, g.DWeight.View, g.DBias.View, rows, channels);
        return g;
    }

    internal static (int Rows, int Channels) Rows(Tensor x, string name)
    {
        TensorChecks.NotNull(x, name);
        x.Device.ThrowIfDisposed();
        if (x.Rank != 2)
            throw new ArgumentException($"{name} must have rank 2 [T, C]; got shape {Tensor.Format(x.ShapeSpan)}.", name);
        return (x.Shape[0], x.Shape[1]);
    }

    internal static void CheckEps(float eps)
    {
        if (!(eps > 0f) || !float.IsFinite(eps))
            throw new ArgumentException($"eps = {eps} must be finite and positive (it keeps rstd finite for a constant row).", nameof(eps));
    }

    // Enough groups to fill the device; each loops over its rows.
    internal static int GridSize(Device device, int rows) =>
        Math.Min(rows, Math.Max(1, device.Accelerator!.NumMultiprocessors) * 64);
}
