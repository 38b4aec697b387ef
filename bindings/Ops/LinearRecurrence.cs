// LinearRecurrence: validation and the one dispatcher from backend to implementation.
// Shapes: B batch, C channels, T time steps; a, x, h, dH, dA, dX [B, C, T]; h0, last, dH0 [B, C].
// Implementations: Managed -> bindings/Managed/LinearRecurrenceManaged.cs; Cuda, OpenCL, IlgpuCpu ->
// bindings/Ops/LinearRecurrenceIlgpu.cs over kernels/Scan/LinearRecurrenceKernels.cs, which reuses the selective
// scan's warp scan and combine functor (kernels/Scan/ScanCommon.cs). Reference: bindings/Reference/ScanReference.cs.
namespace RouteKit;

/// <summary>The recurrence's states: every h <c>[B, C, T]</c> and the last one <c>[B, C]</c>.</summary>
public sealed class LinearRecurrenceOutput : IDisposable
{
    /// <summary>Wraps the two tensors.</summary>
    public LinearRecurrenceOutput(Tensor h, Tensor last)
    {
        (H, Last) = (h, last);
    }

    /// <summary>h <c>[B, C, T]</c>.</summary>
    public Tensor H { get; }
    /// <summary>h_{T-1} <c>[B, C]</c>, a copy of H's last step (its gradient belongs in dH's last step).</summary>
    public Tensor Last { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        H.Dispose();
        Last.Dispose();
    }
}

/// <summary>Gradients of a scalar loss with respect to a, x and h0 (null without h0).</summary>
public sealed class LinearRecurrenceGradients : IDisposable
{
    /// <summary>Wraps the gradient tensors.</summary>
    public LinearRecurrenceGradients(Tensor dA, Tensor dX, Tensor? dH0)
    {
        (DA, DX, DH0) = (dA, dX, dH0);
    }

    /// <summary>dL/da <c>[B, C, T]</c>.</summary>
    public Tensor DA { get; }
    /// <summary>dL/dx <c>[B, C, T]</c>.</summary>
    public Tensor DX { get; }
    /// <summary>dL/dh0 <c>[B, C]</c>, or null when the forward had no h0.</summary>
    public Tensor? DH0 { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DA.Dispose();
        DX.Dispose();
        DH0?.Dispose();
    }
}

/// <summary>
/// The first-order linear recurrence <c>h_t = a_t h_{t-1} + x_t</c> (h_{-1} = h0 or 0), the core of a recurrent
/// mixer whose content-based gate computes a_t; forward and backward.
/// </summary>
public static class LinearRecurrence
{
    /// <summary>Computes every state h and the last one.</summary>
    /// <param name="a">Decays <c>[B, C, T]</c> (any finite values; |a| &gt; 1 grows the state).</param>
    /// <param name="x">Inputs <c>[B, C, T]</c>.</param>
    /// <param name="h0">Initial state <c>[B, C]</c>, or null for zeros.</param>
    /// <param name="outputs">Preallocated outputs to overwrite; null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices or non-finite inputs, before any kernel runs.</exception>
    public static LinearRecurrenceOutput Forward(Tensor a, Tensor x, Tensor? h0 = null, LinearRecurrenceOutput? outputs = null)
    {
        var (batch, channels, steps) = Validate(a, x, h0);
        var device = a.Device;
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.H, [batch, channels, steps], "outputs.H", a, x, h0);
            TensorChecks.Output(device, outputs.Last, [batch, channels], "outputs.Last", a, x, h0);
        }
        TensorChecks.Finite(a, nameof(a));
        TensorChecks.Finite(x, nameof(x));
        if (h0 is not null) TensorChecks.Finite(h0, nameof(h0));
        var result = outputs ?? new LinearRecurrenceOutput(device.Zeros(batch, channels, steps), device.Zeros(batch, channels));
        if (device.Backend == Backend.Managed)
            LinearRecurrenceManaged.Forward(batch * channels, steps, a.HostSpan, x.HostSpan, h0 is null ? default : h0.HostSpan,
                result.H.HostSpan, result.Last.HostSpan);
        else
            LinearRecurrenceIlgpu.Forward(device, batch * channels, steps, a, x, h0, result);
        return result;
    }

    /// <summary>Gradients for <c>dH = dL/dh</c>: dA, dX and (with h0) dH0.</summary>
    /// <param name="dH">dL/dh <c>[B, C, T]</c>.</param>
    /// <param name="a">The forward's decays.</param>
    /// <param name="x">The forward's inputs.</param>
    /// <param name="h0">The forward's initial state, or null.</param>
    /// <param name="forward">The forward's result (H is read, and checked finite like every input).</param>
    /// <param name="gradients">Preallocated gradients (DH0 exactly when h0 is given); null to allocate.</param>
    public static LinearRecurrenceGradients Backward(Tensor dH, Tensor a, Tensor x, Tensor? h0, LinearRecurrenceOutput forward,
        LinearRecurrenceGradients? gradients = null)
    {
        var (batch, channels, steps) = Validate(a, x, h0);
        var device = a.Device;
        ArgumentNullException.ThrowIfNull(forward);
        ReadOnlySpan<int> shape = [batch, channels, steps];
        TensorChecks.Input(device, dH, shape, nameof(dH));
        TensorChecks.Input(device, forward.H, shape, "forward.H");
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DA, shape, "gradients.DA", dH, a, x, forward.H, h0);
            TensorChecks.Output(device, gradients.DX, shape, "gradients.DX", dH, a, x, forward.H, h0);
            if (h0 is not null)
                TensorChecks.Output(device, gradients.DH0 ?? throw new ArgumentException(
                    "h0 is given but gradients.DH0 is null; preallocate it [B, C].", nameof(gradients)), [batch, channels], "gradients.DH0",
                    dH, a, x, forward.H, h0);
            else if (gradients.DH0 is not null)
                throw new ArgumentException("gradients.DH0 is given but h0 is null; pass null.", nameof(gradients));
        }
        TensorChecks.Finite(dH, nameof(dH));
        TensorChecks.Finite(a, nameof(a));
        TensorChecks.Finite(x, nameof(x));
        if (h0 is not null) TensorChecks.Finite(h0, nameof(h0));
        TensorChecks.Finite(forward.H, "forward.H");
        var result = gradients ?? new LinearRecurrenceGradients(device.Zeros(batch, channels, steps), device.Zeros(batch, channels, steps),
            h0 is null ? null : device.Zeros(batch, channels));
        if (device.Backend == Backend.Managed)
            LinearRecurrenceManaged.Backward(batch * channels, steps, a.HostSpan, h0 is null ? default : h0.HostSpan, forward.H.HostSpan,
                dH.HostSpan, result.DA.HostSpan, result.DX.HostSpan, result.DH0 is null ? default : result.DH0.HostSpan);
        else
            LinearRecurrenceIlgpu.Backward(device, batch * channels, steps, a, h0, forward.H, dH, result);
        return result;
    }

    private static (int B, int C, int T) Validate(Tensor a, Tensor x, Tensor? h0)
    {
        TensorChecks.NotNull(a, nameof(a));
        TensorChecks.NotNull(x, nameof(x));
        a.Device.ThrowIfDisposed();
        TensorChecks.SameDevice(a.Device, x, nameof(x));
        if (a.Rank != 3)
            throw new ArgumentException($"a must have rank 3 [B, C, T]; got shape {Tensor.Format(a.ShapeSpan)}.", nameof(a));
        var shape = a.ShapeSpan;
        TensorChecks.Shape(x, shape, nameof(x));
        if (h0 is not null)
        {
            TensorChecks.NotNull(h0, nameof(h0));
            TensorChecks.SameDevice(a.Device, h0, nameof(h0));
            TensorChecks.Shape(h0, [shape[0], shape[1]], nameof(h0));
        }
        return (shape[0], shape[1], shape[2]);
    }
}
