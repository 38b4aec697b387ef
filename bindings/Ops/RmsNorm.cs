// RmsNorm: launcher, validation and dispatcher. Shapes: T rows (tokens), C channels; x, y, dy, dx [T, C];
// weight, dweight [C]; rstd [T].
// Implementations: Managed -> bindings/Managed/RmsNormManaged.cs; ILGPU -> kernels/Training/RmsNormKernels.cs;
// spec -> bindings/Reference/RmsNormReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>RMSNorm's output y <c>[T, C]</c> and the rstd <c>[T]</c> the backward needs.</summary>
public sealed class RmsNormOutput : IDisposable
{
    /// <summary>Wraps y [T, C] and rstd [T].</summary>
    public RmsNormOutput(Tensor y, Tensor rstd) => (Y, Rstd) = (y, rstd);

    /// <summary>x rstd weight, [T, C].</summary>
    public Tensor Y { get; }
    /// <summary>1 / sqrt(mean(x^2) + eps) per row, [T].</summary>
    public Tensor Rstd { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Y.Dispose();
        Rstd.Dispose();
    }
}

/// <summary>RMSNorm's gradients: dx <c>[T, C]</c> and dweight <c>[C]</c>.</summary>
public sealed class RmsNormGradients : IDisposable
{
    /// <summary>Wraps dx [T, C] and dweight [C].</summary>
    public RmsNormGradients(Tensor dx, Tensor dWeight) => (DX, DWeight) = (dx, dWeight);

    /// <summary>Gradient of the input, [T, C].</summary>
    public Tensor DX { get; }
    /// <summary>Gradient of the weight, [C].</summary>
    public Tensor DWeight { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DX.Dispose();
        DWeight.Dispose();
    }
}

/// <summary>
/// Root-mean-square normalisation over the last dimension of x <c>[T, C]</c> (Zhang and Sennrich 2019; PyTorch's
/// <c>nn.RMSNorm(C)</c>), saving rstd for the backward. Gradients are written, not accumulated; dweight is summed over
/// rows in a fixed order (no float atomics), so repeated calls are bitwise equal.
/// </summary>
public static class RmsNorm
{
    /// <summary>The default eps (LLaMA's).</summary>
    public const float DefaultEps = 1e-5f;

    /// <summary>y = x / sqrt(mean(x^2) + eps) weight per row of x [T, C]; also returns rstd [T].</summary>
    /// <remarks>
    /// The sum of squares is a float32 sum on every backend: a row with |x| beyond about 1.8e19 / sqrt(C) is not refused
    /// but gets rstd = 0, so y = 0 there; scale such rows down first (RMSNorm is invariant to the scale of x up to eps).
    /// </remarks>
    /// <exception cref="ArgumentException">x is not rank 2, weight is not [C], eps is not finite and positive, a tensor lives
    /// on another device, an output has the wrong shape or is an input, or an input holds NaN or infinity. Nothing is
    /// launched and the outputs are untouched then.</exception>
    public static RmsNormOutput Forward(Tensor x, Tensor weight, float eps = DefaultEps, RmsNormOutput? outputs = null)
    {
        var (rows, channels) = LayerNorm.Rows(x, nameof(x));
        var device = x.Device;
        TensorChecks.Input(device, weight, [channels], nameof(weight));
        LayerNorm.CheckEps(eps);
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Y, [rows, channels], "outputs.Y", x, weight);
            TensorChecks.Output(device, outputs.Rstd, [rows], "outputs.Rstd", x, weight, outputs.Y);
        }
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        var o = outputs ?? new RmsNormOutput(device.Zeros(rows, channels), device.Zeros(rows));
        if (device.Backend == Backend.Managed)
        {
            RmsNormManaged.Forward(x.HostSpan, weight.HostSpan, o.Y.HostSpan, o.Rstd.HostSpan, rows, channels, eps);
            return o;
        }
        var kernel = device.GetKernel("RmsNorm.Forward", static acc =>
            acc.LoadStreamKernel<View, View, View, View, int, int, float>(RmsNormKernels.Forward));
        kernel(new KernelConfig(LayerNorm.GridSize(device, rows), RmsNormKernels.GroupSize),
            x.View, weight.View, o.Y.View, o.Rstd.View, rows, channels, eps);
        return o;
    }

    /// <summary>
    /// dx and dweight from dy [T, C], the forward's x and weight and its saved rstd:
    /// dx = rstd (dnorm - norm mean(dnorm norm)), dnorm = weight dy, norm = x rstd; dweight = sum_t dy norm.
    /// </summary>
    /// <exception cref="ArgumentException">A shape or device does not match, an output is an input, or dy, x, weight or the
    /// saved rstd hold NaN or infinity. Nothing is launched and the outputs are untouched then.</exception>
    public static RmsNormGradients Backward(Tensor dy, Tensor x, Tensor weight, RmsNormOutput forward, RmsNormGradients? gradients = null)
    {
        var (rows, channels) = LayerNorm.Rows(x, nameof(x));
        var device = x.Device;
        TensorChecks.Input(device, dy, [rows, channels], nameof(dy));
        TensorChecks.Input(device, weight, [channels], nameof(weight));
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, forward.Rstd, [rows], "forward.Rstd");
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DX, [rows, channels], "gradients.DX", dy, x, weight, forward.Rstd);
            TensorChecks.Output(device, gradients.DWeight, [channels], "gradients.DWeight", dy, x, weight, forward.Rstd, gradients.DX);
        }
        TensorChecks.Finite(dy, nameof(dy));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(weight, nameof(weight));
        TensorChecks.Finite(forward.Rstd, "forward.Rstd");
        var g = gradients ?? new RmsNormGradients(device.Zeros(rows, channels), device.Zeros(channels));
        if (device.Backend == Backend.Managed)
        {
            RmsNormManaged.Backward(dy.HostSpan, x.HostSpan, weight.HostSpan, forward.Rstd.HostSpan, g.DX.HostSpan, g.DWeight.HostSpan, rows, channels);
            return g;
        }
        var input = device.GetKernel("RmsNorm.BackwardInput", static acc =>
            acc.LoadStreamKernel<View, View, View, View, View, int, int>(RmsNormKernels.BackwardInput));
        input(new KernelConfig(LayerNorm.GridSize(device, rows), RmsNormKernels.GroupSize),
            dy.View, x.View, weight.View, forward.Rstd.View, g.DX.View, rows, channels);
        var weightKernel = device.GetKernel("RmsNorm.BackwardWeight", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, int, int>(RmsNormKernels.BackwardWeight));
        weightKernel(channels, dy.View, x.View, forward.Rstd.View, g.DWeight.View, rows, channels);
        return g;
    }
}
