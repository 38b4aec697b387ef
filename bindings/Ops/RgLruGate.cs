// RgLruGate: validation and dispatch of Griffin's RG-LRU gate, which feeds LinearRecurrence (h_t = a_t h_{t-1} + gx_t).
// Shapes: B batch, T steps, C channels; gr, gi, x, dGr, dGi, dX [B, T, C]; lambda, dLambda [C];
// A, GatedX, dA, dGatedX [B, C, T] (channel-major, LinearRecurrence's layout, so no transpose is needed in between).
// Implementations: Managed -> bindings/Managed/RgLruGateManaged.cs; ILGPU -> kernels/Training/RgLruGateKernels.cs
// (dLambda through LinearKernels.ColumnSums); spec -> bindings/Reference/RgLruGateReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Linear;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>The gate's outputs, both <c>[B, C, T]</c>: the decays a and the gated input sqrt(1 - a^2) i x.</summary>
public sealed class RgLruGateOutput : IDisposable
{
    /// <summary>Wraps a and gx, both [B, C, T].</summary>
    public RgLruGateOutput(Tensor a, Tensor gatedX) => (A, GatedX) = (a, gatedX);

    /// <summary>a = exp(-c softplus(lambda) sigmoid(gr)), [B, C, T]: LinearRecurrence's a.</summary>
    public Tensor A { get; }
    /// <summary>sqrt(1 - a^2) sigmoid(gi) x, [B, C, T]: LinearRecurrence's x.</summary>
    public Tensor GatedX { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        A.Dispose();
        GatedX.Dispose();
    }
}

/// <summary>The gate's gradients: dgr, dgi, dx <c>[B, T, C]</c> and dlambda <c>[C]</c>.</summary>
public sealed class RgLruGateGradients : IDisposable
{
    /// <summary>Wraps the four gradient tensors.</summary>
    public RgLruGateGradients(Tensor dGr, Tensor dGi, Tensor dX, Tensor dLambda) => (DGr, DGi, DX, DLambda) = (dGr, dGi, dX, dLambda);

    /// <summary>dL/dgr, [B, T, C].</summary>
    public Tensor DGr { get; }
    /// <summary>dL/dgi, [B, T, C].</summary>
    public Tensor DGi { get; }
    /// <summary>dL/dx, [B, T, C].</summary>
    public Tensor DX { get; }
    /// <summary>dL/dlambda, [C].</summary>
    public Tensor DLambda { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DGr.Dispose();
        DGi.Dispose();
        DX.Dispose();
        DLambda.Dispose();
    }
}

/// <summary>
/// Griffin's RG-LRU gate (De et al. 2024): from the pre-activations gr = W_r x and gi = W_i x <c>[B, T, C]</c>, the
/// input x <c>[B, T, C]</c> and the per-channel parameter lambda <c>[C]</c>,
/// <c>r = sigmoid(gr)</c>, <c>i = sigmoid(gi)</c>, <c>a = exp(-c softplus(lambda) r)</c>, <c>gx = sqrt(1 - a^2) i x</c>,
/// written channel-major <c>[B, C, T]</c> for <see cref="LinearRecurrence"/> (h_t = a_t h_{t-1} + gx_t). c is the brake:
/// the larger, the faster the state forgets where the gate r opens.
/// </summary>
/// <remarks>
/// sqrt(1 - a^2) is computed as sqrt(-expm1(2 log a)), so it keeps its digits as a approaches 1; 1 - a^2 is clamped
/// below at 1e-30, reached only where c softplus(lambda) r underflows (lambda below about -100, or gr below about -88),
/// so there gx = 1e-15 i x instead of 0 and the backward stays finite (a^2 / sqrt(1 - a^2) at most 1e15). Gradients
/// are written, not accumulated, and dlambda is summed over b and t in a fixed order (no float atomics): repeated calls
/// are bitwise equal. Inputs whose c softplus(lambda) overflows float32 (lambda near float.MaxValue / c) are not
/// supported.
/// </remarks>
public static class RgLruGate
{
    /// <summary>Griffin's brake c = 8.</summary>
    public const float DefaultBrake = 8f;

    /// <summary>a and gx <c>[B, C, T]</c> from gr, gi, x <c>[B, T, C]</c> and lambda <c>[C]</c>.</summary>
    /// <param name="gr">Pre-activation of the recurrence gate, [B, T, C].</param>
    /// <param name="gi">Pre-activation of the input gate, [B, T, C].</param>
    /// <param name="x">The input, [B, T, C].</param>
    /// <param name="lambda">The per-channel decay parameter, [C]; a = sigmoid(-lambda)^(c r), so a larger lambda forgets faster.</param>
    /// <param name="brake">c &gt; 0, finite.</param>
    /// <param name="outputs">Preallocated outputs to overwrite; null to allocate.</param>
    /// <exception cref="ArgumentException">gr is not rank 3, gi or x differ from its shape, lambda is not [C], the brake is
    /// not finite and positive, a tensor lives on another device, an output has the wrong shape or is an input or the other
    /// output, or an input holds NaN or infinity. Nothing is launched and the outputs are untouched then.</exception>
    public static RgLruGateOutput Forward(Tensor gr, Tensor gi, Tensor x, Tensor lambda, float brake = DefaultBrake,
        RgLruGateOutput? outputs = null)
    {
        var (batch, steps, channels) = Validate(gr, gi, x, lambda, brake);
        var device = gr.Device;
        ReadOnlySpan<int> channelMajor = [batch, channels, steps];
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.A, channelMajor, "outputs.A", gr, gi, x, lambda);
            TensorChecks.Output(device, outputs.GatedX, channelMajor, "outputs.GatedX", gr, gi, x, lambda, outputs.A);
        }
        CheckFinite(gr, gi, x, lambda);
        var o = outputs ?? new RgLruGateOutput(device.Zeros(batch, channels, steps), device.Zeros(batch, channels, steps));
        if (device.Backend == Backend.Managed)
        {
            RgLruGateManaged.Forward(gr.HostSpan, gi.HostSpan, x.HostSpan, lambda.HostSpan, o.A.HostSpan, o.GatedX.HostSpan, batch, steps, channels, brake);
            return o;
        }
        var kernel = device.GetKernel("RgLruGate.Forward", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, View, View, RgLruGateShape>(RgLruGateKernels.Forward));
        kernel(gr.Length, gr.View, gi.View, x.View, lambda.View, o.A.View, o.GatedX.View, Shape(steps, channels, brake));
        return o;
    }

    /// <summary>dgr, dgi, dx <c>[B, T, C]</c> and dlambda <c>[C]</c> from dA and dGatedX <c>[B, C, T]</c> and the forward's inputs.</summary>
    /// <param name="dA">dL/da, [B, C, T] (LinearRecurrence's DA).</param>
    /// <param name="dGatedX">dL/dgx, [B, C, T] (LinearRecurrence's DX).</param>
    /// <param name="gr">The forward's gr.</param>
    /// <param name="gi">The forward's gi.</param>
    /// <param name="x">The forward's x.</param>
    /// <param name="lambda">The forward's lambda.</param>
    /// <param name="brake">The forward's brake.</param>
    /// <param name="gradients">Preallocated gradients to overwrite; null to allocate.</param>
    /// <exception cref="ArgumentException">As <see cref="Forward"/>, for dA and dGatedX too. Nothing is launched and the
    /// gradients are untouched then.</exception>
    public static RgLruGateGradients Backward(Tensor dA, Tensor dGatedX, Tensor gr, Tensor gi, Tensor x, Tensor lambda,
        float brake = DefaultBrake, RgLruGateGradients? gradients = null)
    {
        var (batch, steps, channels) = Validate(gr, gi, x, lambda, brake);
        var device = gr.Device;
        ReadOnlySpan<int> channelMajor = [batch, channels, steps];
        var tokenMajor = gr.ShapeSpan; // [B, T, C], checked by Validate
        TensorChecks.Input(device, dA, channelMajor, nameof(dA));
        TensorChecks.Input(device, dGatedX, channelMajor, nameof(dGatedX));
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DGr, tokenMajor, "gradients.DGr", dA, dGatedX, gr, gi, x, lambda);
            TensorChecks.Output(device, gradients.DGi, tokenMajor, "gradients.DGi", dA, dGatedX, gr, gi, x, lambda, gradients.DGr);
            TensorChecks.Output(device, gradients.DX, tokenMajor, "gradients.DX", dA, dGatedX, gr, gi, x, lambda, gradients.DGr, gradients.DGi);
            TensorChecks.Output(device, gradients.DLambda, [channels], "gradients.DLambda",
                dA, dGatedX, gr, gi, x, lambda, gradients.DGr, gradients.DGi, gradients.DX);
        }
        TensorChecks.Finite(dA, nameof(dA));
        TensorChecks.Finite(dGatedX, nameof(dGatedX));
        CheckFinite(gr, gi, x, lambda);
        var g = gradients ?? new RgLruGateGradients(device.Zeros(batch, steps, channels), device.Zeros(batch, steps, channels),
            device.Zeros(batch, steps, channels), device.Zeros(channels));
        if (device.Backend == Backend.Managed)
        {
            RgLruGateManaged.Backward(dA.HostSpan, dGatedX.HostSpan, gr.HostSpan, gi.HostSpan, x.HostSpan, lambda.HostSpan,
                g.DGr.HostSpan, g.DGi.HostSpan, g.DX.HostSpan, g.DLambda.HostSpan, batch, steps, channels, brake);
            return g;
        }
        var terms = device.Workspace("rglru.dlambda-terms", gr.Length); // [B T, C]
        var kernel = device.GetKernel("RgLruGate.Backward", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View, View, View, View, View, View, View, View, RgLruGateShape>(
                RgLruGateKernels.Backward));
        kernel(gr.Length, dA.View, dGatedX.View, gr.View, gi.View, x.View, lambda.View, g.DGr.View, g.DGi.View, g.DX.View,
            terms, Shape(steps, channels, brake));
        var sums = device.GetKernel("Linear.ColumnSums", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, int, int>(LinearKernels.ColumnSums));
        sums(channels, terms, g.DLambda.View, batch * steps, channels);
        return g;
    }

    private static RgLruGateShape Shape(int steps, int channels, float brake) =>
        new() { Steps = steps, Channels = channels, Brake = brake };

    private static (int Batch, int Steps, int Channels) Validate(Tensor gr, Tensor gi, Tensor x, Tensor lambda, float brake)
    {
        TensorChecks.NotNull(gr, nameof(gr));
        var device = gr.Device;
        device.ThrowIfDisposed();
        var shape = gr.ShapeSpan;
        if (shape.Length != 3)
            throw new ArgumentException($"gr must have rank 3 [B, T, C]; got shape {Tensor.Format(shape)}.", nameof(gr));
        TensorChecks.Input(device, gi, shape, nameof(gi));
        TensorChecks.Input(device, x, shape, nameof(x));
        TensorChecks.Input(device, lambda, [shape[2]], nameof(lambda));
        if (!(brake > 0f) || !float.IsFinite(brake))
            throw new ArgumentException($"brake = {brake} must be finite and positive (Griffin uses c = {DefaultBrake}).", nameof(brake));
        return (shape[0], shape[1], shape[2]);
    }

    private static void CheckFinite(Tensor gr, Tensor gi, Tensor x, Tensor lambda)
    {
        TensorChecks.Finite(gr, nameof(gr));
        TensorChecks.Finite(gi, nameof(gi));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(lambda, nameof(lambda));
    }
}
