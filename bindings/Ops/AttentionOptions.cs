namespace RouteKit;

/// <summary>How an attention score is formed from a query and a key (DESIGN.md section 4).</summary>
public enum Score
{
    /// <summary><c>z_ij = s q_i . k'_j</c>: ordinary dot-product attention.</summary>
    Dot = 0,
    /// <summary><c>z_ij = s q_i . k'_j - (s/2)|k'_j|^2</c>: softmax over negative squared Euclidean distance.</summary>
    Distance = 1,
}

/// <summary>
/// Options of <see cref="Attention"/>. Defaults give PyTorch SDPA's dot-product attention. There is no determinism
/// switch: every backend's attention backward is deterministic (no floating-point atomics, sums in a fixed order), so
/// repeated runs give bitwise-equal gradients.
/// </summary>
public sealed record AttentionOptions
{
    /// <summary>Dot or Distance scores.</summary>
    public Score Score { get; init; } = Score.Dot;

    /// <summary>Score scale s; null means 1/sqrt(D).</summary>
    public float? Scale { get; init; }

    /// <summary>Replace each key by <c>rho k / max(|k|, eps)</c> before scoring (constant key norms).</summary>
    public bool NormalizeKeys { get; init; }

    /// <summary>rho, the norm of normalised keys; null means sqrt(D), which keeps the scale of unnormalised scores.</summary>
    public float? KeyRadius { get; init; }

    /// <summary>eps in <c>max(|k|, eps)</c>: below it a key is scaled by rho/eps instead of normalised.</summary>
    public float KeyEpsilon { get; init; } = 1e-6f;

    /// <summary>Keep only keys j &lt;= i + (M - N) (bottom-right aligned, as FlashAttention &gt;= 2.1).</summary>
    public bool Causal { get; init; }

    /// <summary>Keep only keys with |i + (M - N) - j| &lt;= Window; null means no window.</summary>
    public int? Window { get; init; }

    /// <summary>
    /// Key padding (FlashAttention's varlen idea): per batch element b the number of real keys, <c>KeyLengths[b]</c> in
    /// 0..M (length B); keys <c>j &gt;= KeyLengths[b]</c> are masked for every query of that batch element, on top of the
    /// causal and window masks. Null means every key is real. A batch element of length 0 has no visible key: its rows
    /// get O = 0 and Lse = -inf, as any fully masked row. Queries past the length are computed as usual (they see the
    /// real keys); a model that pads queries ignores their outputs, as BERT's pooling does.
    /// </summary>
    public int[]? KeyLengths { get; init; }

    /// <summary>Per-head brake slopes m_h &gt;= 0 (length H): <c>z_ij -= m_h |i + (M - N) - j|</c>. Null means none.</summary>
    public float[]? BrakeSlopes { get; init; }

    /// <summary>Also compute Entropy, SinkMass and MaxProb per query row, fused into the same pass.</summary>
    public bool Diagnostics { get; init; }

    /// <summary>SinkMass sums the probability of keys j &lt; SinkTokens.</summary>
    public int SinkTokens { get; init; } = 1;

    /// <summary>
    /// The ILGPU kernel version pair (forward N with backward N of kernels/Attention/, 1 or 2) for the perf harness and
    /// the tests; internal so the public surface does not change. Version 1 is the default; Managed ignores it. The
    /// backward must run with the version of the forward whose statistics it reads.
    /// </summary>
    internal int KernelVariant { get; init; } = 1;

    /// <summary>The ALiBi slopes 2^(-8(h+1)/H) for <paramref name="heads"/> heads.</summary>
    public static float[] AlibiSlopes(int heads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        var slopes = new float[heads];
        for (var h = 0; h < heads; h++)
            slopes[h] = (float)Math.Pow(2.0, -8.0 * (h + 1) / heads);
        return slopes;
    }
}

/// <summary>The fused per-row diagnostics of an attention forward pass, each <c>[B, H, N]</c>.</summary>
public sealed class AttentionDiagnostics : IDisposable
{
    /// <summary>Creates the diagnostics from three tensors of shape [B, H, N].</summary>
    public AttentionDiagnostics(Tensor entropy, Tensor sinkMass, Tensor maxProb)
    {
        Entropy = entropy;
        SinkMass = sinkMass;
        MaxProb = maxProb;
    }

    /// <summary><c>Lse_i - sum_j P_ij z_ij</c>, the entropy of row i's attention in nats (0 for a fully masked row).</summary>
    public Tensor Entropy { get; } // [B, H, N]

    /// <summary><c>sum_{j &lt; SinkTokens} P_ij</c>.</summary>
    public Tensor SinkMass { get; } // [B, H, N]

    /// <summary><c>max_j P_ij = exp(max_j z_ij - Lse_i)</c> (0 for a fully masked row).</summary>
    public Tensor MaxProb { get; } // [B, H, N]

    /// <inheritdoc />
    public void Dispose()
    {
        Entropy.Dispose();
        SinkMass.Dispose();
        MaxProb.Dispose();
    }
}

/// <summary>
/// What <see cref="Attention.Forward"/> returns; the backward reads <see cref="Output"/> and <see cref="Stats"/>.
/// </summary>
public sealed class AttentionOutput : IDisposable
{
    /// <summary>Wraps preallocated or fresh output tensors.</summary>
    /// <param name="output">O, <c>[B, H, N, D]</c>.</param>
    /// <param name="lse">Lse, <c>[B, H, N]</c>.</param>
    /// <param name="stats">The saved softmax statistics, <c>[B, H, N, 2]</c>.</param>
    /// <param name="diagnostics">The three diagnostics tensors, or null.</param>
    public AttentionOutput(Tensor output, Tensor lse, Tensor stats, AttentionDiagnostics? diagnostics = null)
    {
        Output = output;
        Lse = lse;
        Stats = stats;
        Diagnostics = diagnostics;
    }

    /// <summary>
    /// Allocates the outputs of an attention over q <c>[B, H, N, D]</c> on <paramref name="device"/> (with the three
    /// diagnostics tensors when <paramref name="diagnostics"/> is set), for <see cref="Attention.Forward"/>'s
    /// <c>outputs</c> argument in a training loop.
    /// </summary>
    public static AttentionOutput Allocate(Device device, int b, int h, int n, int d, bool diagnostics = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new AttentionOutput(device.Zeros(b, h, n, d), device.Zeros(b, h, n), device.Zeros(b, h, n, 2),
            diagnostics ? new AttentionDiagnostics(device.Zeros(b, h, n), device.Zeros(b, h, n), device.Zeros(b, h, n)) : null);
    }

    /// <summary>O, <c>[B, H, N, D]</c>; zero for a fully masked row.</summary>
    public Tensor Output { get; } // [B, H, N, D]

    /// <summary><c>log sum_j exp(z_ij)</c>, <c>[B, H, N]</c>; -inf for a fully masked row.</summary>
    public Tensor Lse { get; } // [B, H, N]

    /// <summary>
    /// The softmax statistics the backward recomputes P from, <c>[B, H, N, 2]</c>: per row, <c>m_i</c>, the largest
    /// score exactly as the forward computed it, and <c>log sum_j exp(z_ij - m_i)</c> (in [0, log M]); a fully masked
    /// row holds (-inf, 0). The backward forms <c>P_ij = exp((z_ij - m_i) - logsum_i)</c> with z computed bit for bit
    /// as in the forward, so P carries no rounding of a large absolute Lse (at 1e3-1e5 scale logits a float32 Lse is
    /// off by up to 4e-3, and exp(z - Lse) would carry that into every probability). m_i is in the backend's own
    /// score frame: Managed subtracts the largest Distance key bias of each (batch, kv head) before scoring (see
    /// AttentionManaged.cs), so these statistics belong to the backend that wrote them.
    /// </summary>
    public Tensor Stats { get; } // [B, H, N, 2]

    /// <summary>Present when <see cref="AttentionOptions.Diagnostics"/> was set.</summary>
    public AttentionDiagnostics? Diagnostics { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Output.Dispose();
        Lse.Dispose();
        Stats.Dispose();
        Diagnostics?.Dispose();
    }
}

/// <summary>
/// The gradients of a query/key/value router's backward (attention, graph attention, the depth router): dL/dq, dL/dk
/// (through key normalisation when it is on) and dL/dv, each the shape of its input. Disposing disposes all three.
/// </summary>
public abstract class RouterGradients : IDisposable
{
    /// <summary>Wraps preallocated or fresh gradient tensors.</summary>
    protected RouterGradients(Tensor dq, Tensor dk, Tensor dv)
    {
        DQ = dq;
        DK = dk;
        DV = dv;
    }

    /// <summary>dL/dq, the shape of q.</summary>
    public Tensor DQ { get; }

    /// <summary>dL/dk, the shape of k, through key normalisation when it is on.</summary>
    public Tensor DK { get; }

    /// <summary>dL/dv, the shape of v.</summary>
    public Tensor DV { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DQ.Dispose();
        DK.Dispose();
        DV.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>What <see cref="Attention.Backward"/> returns: DQ <c>[B, H, N, D]</c>, DK and DV <c>[B, Hkv, M, D]</c>.</summary>
public sealed class AttentionGradients(Tensor dq, Tensor dk, Tensor dv) : RouterGradients(dq, dk, dv);
