namespace RouteKit;

/// <summary>
/// Options of <see cref="DepthRouter"/>: the score, key normalisation and brake of <see cref="AttentionOptions"/>, over
/// depth instead of tokens. Every backend's backward is deterministic (no floating-point atomics).
/// </summary>
public sealed record DepthRouterOptions
{
    /// <summary>Dot or Distance scores (as attention's, DESIGN.md section 4).</summary>
    public Score Score { get; init; } = Score.Dot;

    /// <summary>Score scale s; null means 1/sqrt(D).</summary>
    public float? Scale { get; init; }

    /// <summary>Replace each key by <c>rho k / max(|k|, eps)</c> before scoring.</summary>
    public bool NormalizeKeys { get; init; }

    /// <summary>rho, the norm of normalised keys; null means sqrt(D).</summary>
    public float? KeyRadius { get; init; }

    /// <summary>eps in <c>max(|k|, eps)</c>.</summary>
    public float KeyEpsilon { get; init; } = 1e-6f;

    /// <summary>One brake m &gt;= 0 for every head: <c>z_lj -= m (l - j)</c> (a preference for recent layers).</summary>
    public float Brake { get; init; }

    /// <summary>Per-head brakes m_h &gt;= 0 (length H), instead of <see cref="Brake"/> (set at most one of the two).</summary>
    public float[]? BrakeSlopes { get; init; }

    /// <summary>Also compute NormalizedEntropy, MaxProb and EmbeddingMass per (layer, token, head), fused.</summary>
    public bool Diagnostics { get; init; }
}

/// <summary>The fused diagnostics of a depth-router forward, each <c>[Lq, T, H]</c>.</summary>
public sealed class DepthRouterDiagnostics : IDisposable
{
    /// <summary>Wraps three tensors of shape [Lq, T, H].</summary>
    public DepthRouterDiagnostics(Tensor normalizedEntropy, Tensor maxProb, Tensor embeddingMass)
    {
        NormalizedEntropy = normalizedEntropy;
        MaxProb = maxProb;
        EmbeddingMass = embeddingMass;
    }

    /// <summary>
    /// The routing entropy over the l + 1 visible layers divided by its largest value log(l + 1): 1 for a uniform mix,
    /// 0 for a one-hot one; defined as 0 at l = 0, where there is only one layer to read.
    /// </summary>
    public Tensor NormalizedEntropy { get; } // [Lq, T, H]

    /// <summary><c>max_j P_lj</c>.</summary>
    public Tensor MaxProb { get; } // [Lq, T, H]

    /// <summary><c>P_l0</c>, the mass on the embedding layer j = 0 (the sink over depth).</summary>
    public Tensor EmbeddingMass { get; } // [Lq, T, H]

    /// <inheritdoc />
    public void Dispose()
    {
        NormalizedEntropy.Dispose();
        MaxProb.Dispose();
        EmbeddingMass.Dispose();
    }
}

/// <summary>What <see cref="DepthRouter.Forward"/> returns; the backward reads <see cref="Output"/> and <see cref="Stats"/>.</summary>
public sealed class DepthRouterOutput : IDisposable
{
    /// <summary>Wraps preallocated or fresh output tensors.</summary>
    /// <param name="output">The routed mix, <c>[Lq, T, H, D]</c>.</param>
    /// <param name="stats">The saved softmax statistics, <c>[Lq, T, H, 2]</c>.</param>
    /// <param name="diagnostics">The three diagnostics tensors, or null.</param>
    public DepthRouterOutput(Tensor output, Tensor stats, DepthRouterDiagnostics? diagnostics = null)
    {
        Output = output;
        Stats = stats;
        Diagnostics = diagnostics;
    }

    /// <summary>Allocates the outputs of a depth router with <paramref name="queryLayers"/> query layers.</summary>
    public static DepthRouterOutput Allocate(Device device, int queryLayers, int tokens, int heads, int headDim, bool diagnostics = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new DepthRouterOutput(device.Zeros(queryLayers, tokens, heads, headDim), device.Zeros(queryLayers, tokens, heads, 2),
            diagnostics
                ? new DepthRouterDiagnostics(device.Zeros(queryLayers, tokens, heads), device.Zeros(queryLayers, tokens, heads),
                    device.Zeros(queryLayers, tokens, heads))
                : null);
    }

    /// <summary>The routed mix <c>sum_j P_lj v_j</c>, <c>[Lq, T, H, D]</c>.</summary>
    public Tensor Output { get; } // [Lq, T, H, D]

    /// <summary>
    /// Per (layer, token, head): <c>m</c>, the largest score exactly as the forward computed it, and
    /// <c>log sum_j exp(z_j - m)</c> (in [0, log(l + 1)]); the backward forms <c>P = exp((z - m) - log l)</c> from them
    /// (as <see cref="AttentionOutput.Stats"/>). <c>m + log l</c> is the log-sum-exp of the row's scores.
    /// </summary>
    public Tensor Stats { get; } // [Lq, T, H, 2]

    /// <summary>Present when <see cref="DepthRouterOptions.Diagnostics"/> was set.</summary>
    public DepthRouterDiagnostics? Diagnostics { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Output.Dispose();
        Stats.Dispose();
        Diagnostics?.Dispose();
    }
}

/// <summary>What <see cref="DepthRouter.Backward"/> returns: DQ <c>[Lq, T, H, D]</c>, DK and DV <c>[L, T, H, D]</c>.</summary>
public sealed class DepthRouterGradients(Tensor dq, Tensor dk, Tensor dv) : RouterGradients(dq, dk, dv);
