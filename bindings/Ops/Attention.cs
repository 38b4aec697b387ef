// Attention: launcher, validation and the one dispatcher from backend to implementation.
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim.
// Implementations: Managed -> bindings/Managed/AttentionManaged.cs; Cuda, OpenCL, IlgpuCpu -> bindings/Ops/AttentionIlgpu.cs
// over the kernels in kernels/Attention/. Time them with `routekit-perf attention`.
namespace RouteKit;

/// <summary>
/// Fused softmax attention with Dot or Distance scores, optional key normalisation, causal and window masks, a
/// per-head positional brake, GQA/MQA and fused diagnostics (DESIGN.md section 4). O(N) extra memory: never an N x M buffer.
/// </summary>
public static class Attention
{
    /// <summary>
    /// Computes <c>O = softmax(z) v</c> and <c>Lse</c> (and the diagnostics when asked).
    /// </summary>
    /// <param name="q">Queries <c>[B, H, N, D]</c>.</param>
    /// <param name="k">Keys <c>[B, Hkv, M, D]</c>, H % Hkv == 0.</param>
    /// <param name="v">Values <c>[B, Hkv, M, D]</c>.</param>
    /// <param name="options">Score, masks, brake, diagnostics; null for defaults.</param>
    /// <param name="outputs">Preallocated outputs to overwrite (so a training step allocates nothing); null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices, options or non-finite inputs, before any kernel runs.</exception>
    public static AttentionOutput Forward(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, AttentionOutput? outputs = null)
    {
        var p = Validate(q, k, v, options);
        var device = q.Device;
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Output, p.QueryShape, "outputs.Output", q, k, v);
            TensorChecks.Output(device, outputs.Lse, p.RowShape, "outputs.Lse", q, k, v);
            if (p.Diagnostics)
            {
                var dg = outputs.Diagnostics ?? throw new ArgumentException(
                    "options.Diagnostics is set but outputs.Diagnostics is null; preallocate all three [B, H, N] tensors.", nameof(outputs));
                TensorChecks.Output(device, dg.Entropy, p.RowShape, "outputs.Diagnostics.Entropy", q, k, v);
                TensorChecks.Output(device, dg.SinkMass, p.RowShape, "outputs.Diagnostics.SinkMass", q, k, v);
                TensorChecks.Output(device, dg.MaxProb, p.RowShape, "outputs.Diagnostics.MaxProb", q, k, v);
            }
        }
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));

        var result = outputs ?? new AttentionOutput(
            device.Zeros(p.QueryShape), device.Zeros(p.RowShape),
            p.Diagnostics ? new AttentionDiagnostics(device.Zeros(p.RowShape), device.Zeros(p.RowShape), device.Zeros(p.RowShape)) : null);
        var diag = p.Diagnostics ? result.Diagnostics : null;

        if (device.Backend == Backend.Managed)
            AttentionManaged.Forward(p, q.Host, k.Host, v.Host, result.Output.Host, result.Lse.Host,
                diag?.Entropy.Host, diag?.SinkMass.Host, diag?.MaxProb.Host);
        else
            AttentionIlgpu.Forward(device, p, q, k, v, result.Output, result.Lse, diag);
        return result;
    }

    /// <summary>
    /// Gradients of a scalar loss L with respect to q, k and v, given <c>dOut = dL/dO</c> and the forward's O and Lse.
    /// P is recomputed from Lse; nothing of size N x M is stored.
    /// </summary>
    /// <param name="dOut">dL/dO <c>[B, H, N, D]</c>.</param>
    /// <param name="q">The forward's queries.</param>
    /// <param name="k">The forward's keys.</param>
    /// <param name="v">The forward's values.</param>
    /// <param name="forward">The forward's result (Output and Lse are read).</param>
    /// <param name="options">The forward's options (must be the same).</param>
    /// <param name="gradients">Preallocated gradients to overwrite; null to allocate.</param>
    public static AttentionGradients Backward(
        Tensor dOut, Tensor q, Tensor k, Tensor v, AttentionOutput forward, AttentionOptions? options = null,
        AttentionGradients? gradients = null)
    {
        var p = Validate(q, k, v, options);
        var device = q.Device;
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, dOut, p.QueryShape, nameof(dOut));
        TensorChecks.Input(device, forward.Output, p.QueryShape, "forward.Output");
        TensorChecks.Input(device, forward.Lse, p.RowShape, "forward.Lse");
        if (gradients is not null)
        {
            Tensor[] inputs = [dOut, q, k, v, forward.Output, forward.Lse];
            TensorChecks.Output(device, gradients.DQ, p.QueryShape, "gradients.DQ", inputs);
            TensorChecks.Output(device, gradients.DK, p.KeyShape, "gradients.DK", inputs);
            TensorChecks.Output(device, gradients.DV, p.KeyShape, "gradients.DV", inputs);
        }
        TensorChecks.Finite(dOut, nameof(dOut));
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));

        var result = gradients ?? new AttentionGradients(device.Zeros(p.QueryShape), device.Zeros(p.KeyShape), device.Zeros(p.KeyShape));
        if (device.Backend == Backend.Managed)
            AttentionManaged.Backward(p, dOut.Host, q.Host, k.Host, v.Host, forward.Output.Host, forward.Lse.Host,
                result.DQ.Host, result.DK.Host, result.DV.Host);
        else
            AttentionIlgpu.Backward(device, p, dOut, q, k, v, forward.Output, forward.Lse, result.DQ, result.DK, result.DV);
        return result;
    }

    private static AttentionParams Validate(Tensor q, Tensor k, Tensor v, AttentionOptions? options)
    {
        TensorChecks.NotNull(q, nameof(q));
        TensorChecks.NotNull(k, nameof(k));
        TensorChecks.NotNull(v, nameof(v));
        q.Device.ThrowIfDisposed();
        TensorChecks.SameDevice(q.Device, k, nameof(k));
        TensorChecks.SameDevice(q.Device, v, nameof(v));
        return AttentionParams.Resolve(q.Shape.ToArray(), k.Shape.ToArray(), v.Shape.ToArray(), options);
    }
}
