// GraphAttention's options, resolved parameters and result types, mirroring AttentionOptions.cs and AttentionParams.cs.
// Shapes: H heads, Nn nodes, E edges, D head dim.
namespace RouteKit;

/// <summary>
/// Options of <see cref="GraphAttention"/>: the score, key normalisation and brake of <see cref="AttentionOptions"/>
/// (DESIGN.md section 4), without positions or masks (the graph is the mask). Every backend's backward is deterministic.
/// </summary>
public sealed record GraphAttentionOptions
{
    /// <summary>Dot or Distance scores.</summary>
    public Score Score { get; init; } = Score.Dot;

    /// <summary>Score scale s; null means 1/sqrt(D).</summary>
    public float? Scale { get; init; }

    /// <summary>Replace each key by <c>rho k / max(|k|, eps)</c> before scoring.</summary>
    public bool NormalizeKeys { get; init; }

    /// <summary>rho; null means sqrt(D).</summary>
    public float? KeyRadius { get; init; }

    /// <summary>eps in <c>max(|k|, eps)</c>.</summary>
    public float KeyEpsilon { get; init; } = 1e-6f;

    /// <summary>
    /// Per-head brake m_h &gt;= 0 (length H): <c>z_ij -= m_h</c> on every edge j != i, a preference for the node itself
    /// (the graph's analogue of attention's positional brake, with distance 1 for every other neighbour). Null: none.
    /// </summary>
    public float[]? BrakeSlopes { get; init; }

    /// <summary>Also compute NormalizedEntropy, MaxProb and SelfMass per node, fused into the forward.</summary>
    public bool Diagnostics { get; init; }

    /// <summary>The same score, scale, keys and brake as attention options (their validation and key preparation).</summary>
    internal AttentionOptions ToAttentionOptions() => new()
    {
        Score = Score, Scale = Scale, NormalizeKeys = NormalizeKeys, KeyRadius = KeyRadius, KeyEpsilon = KeyEpsilon,
        BrakeSlopes = BrakeSlopes,
    };
}

/// <summary>
/// One GraphAttention problem, resolved and validated once: H heads, Nn nodes, E edges, D head dim. <see cref="Keys"/>
/// is the same problem seen as one dense attention over the Nn nodes (B = 1, Hkv = H, N = M = Nn), whose key
/// normalisation, Distance bias and option checks GraphAttention reuses.
/// </summary>
public sealed record GraphAttentionParams
{
    /// <summary>The dense attention view: score, scale, key radius/epsilon, brake slopes, head and node counts.</summary>
    public required AttentionParams Keys { get; init; }

    /// <summary>Edges.</summary>
    public required int Edges { get; init; }

    /// <summary>Compute the fused diagnostics.</summary>
    public required bool Diagnostics { get; init; }

    /// <summary>Heads.</summary>
    public int H => Keys.H;
    /// <summary>Nodes.</summary>
    public int Nodes => Keys.N;
    /// <summary>Head dimension.</summary>
    public int D => Keys.D;
    /// <summary>Score scale s.</summary>
    public float Scale => Keys.Scale;
    /// <summary>Brake per head (zeros for none).</summary>
    public float[] BrakeSlopes => Keys.BrakeSlopes;
    /// <summary>Shape of q, k, v, O and their gradients.</summary>
    public int[] NodeShape => [H, Nodes, D];
    /// <summary>Shape of Lse and the diagnostics.</summary>
    public int[] RowShape => [H, Nodes];
    /// <summary>Shape of the saved statistics.</summary>
    public int[] StatsShape => [H, Nodes, 2];

    /// <summary>
    /// Resolves options against shapes and the graph; every error is an <see cref="ArgumentException"/> naming the
    /// argument, what was seen and what was wanted.
    /// </summary>
    public static GraphAttentionParams Resolve(
        ReadOnlySpan<int> qShape, ReadOnlySpan<int> kShape, ReadOnlySpan<int> vShape, int nodes, int edges, GraphAttentionOptions? options)
    {
        options ??= new GraphAttentionOptions();
        if (qShape.Length != 3)
            throw new ArgumentException($"q must have rank 3 [H, Nn, D]; got shape {Tensor.Format(qShape)}.", "q");
        if (!kShape.SequenceEqual(qShape))
            throw new ArgumentException($"k has shape {Tensor.Format(kShape)}; wanted q's shape {Tensor.Format(qShape)} (no GQA).", "k");
        if (!vShape.SequenceEqual(qShape))
            throw new ArgumentException($"v has shape {Tensor.Format(vShape)}; wanted q's shape {Tensor.Format(qShape)}.", "v");
        if (qShape[1] != nodes)
            throw new ArgumentException(
                $"q has shape {Tensor.Format(qShape)}; wanted [H, Nn = {nodes}, D] to match the graph's {nodes} nodes.", "q");
        int[] dense = [1, qShape[0], qShape[1], qShape[2]];
        return new GraphAttentionParams
        {
            Keys = AttentionParams.Resolve(dense, dense, dense, options.ToAttentionOptions()),
            Edges = edges,
            Diagnostics = options.Diagnostics,
        };
    }
}

/// <summary>The fused per-node diagnostics of a GraphAttention forward, each <c>[H, Nn]</c>.</summary>
public sealed class GraphAttentionDiagnostics : IDisposable
{
    /// <summary>Wraps three <c>[H, Nn]</c> tensors.</summary>
    public GraphAttentionDiagnostics(Tensor normalizedEntropy, Tensor maxProb, Tensor selfMass)
    {
        NormalizedEntropy = normalizedEntropy;
        MaxProb = maxProb;
        SelfMass = selfMass;
    }

    /// <summary>
    /// <c>(Lse_i - sum_j P_ij z_ij) / log(degree_i)</c>, in [0, 1]: 1 for uniform weights over the neighbours. Defined as
    /// 0 for degree 1 (one neighbour holds all the mass: no spread, and 0/0 has no better value) and degree 0.
    /// </summary>
    public Tensor NormalizedEntropy { get; } // [H, Nn]

    /// <summary><c>max_j P_ij</c>; 0 for a node with no neighbours.</summary>
    public Tensor MaxProb { get; } // [H, Nn]

    /// <summary><c>P_ii</c> when i is among its own neighbours (a self-loop), else 0.</summary>
    public Tensor SelfMass { get; } // [H, Nn]

    /// <inheritdoc />
    public void Dispose()
    {
        NormalizedEntropy.Dispose();
        MaxProb.Dispose();
        SelfMass.Dispose();
    }
}

/// <summary>What <see cref="GraphAttention.Forward"/> returns; the backward reads <see cref="Output"/> and <see cref="Stats"/>.</summary>
public sealed class GraphAttentionOutput : IDisposable
{
    /// <summary>Wraps preallocated or fresh output tensors.</summary>
    public GraphAttentionOutput(Tensor output, Tensor lse, Tensor stats, GraphAttentionDiagnostics? diagnostics = null)
    {
        Output = output;
        Lse = lse;
        Stats = stats;
        Diagnostics = diagnostics;
    }

    /// <summary>Allocates the outputs of a GraphAttention over q <c>[H, Nn, D]</c> on <paramref name="device"/>.</summary>
    public static GraphAttentionOutput Allocate(Device device, int h, int nodes, int d, bool diagnostics = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        return new GraphAttentionOutput(device.Zeros(h, nodes, d), device.Zeros(h, nodes), device.Zeros(h, nodes, 2),
            diagnostics ? new GraphAttentionDiagnostics(device.Zeros(h, nodes), device.Zeros(h, nodes), device.Zeros(h, nodes)) : null);
    }

    /// <summary>O, <c>[H, Nn, D]</c>; zero for a node with no neighbours.</summary>
    public Tensor Output { get; } // [H, Nn, D]

    /// <summary><c>log sum_j exp(z_ij)</c> over the neighbours, <c>[H, Nn]</c>; -inf for a node with none.</summary>
    public Tensor Lse { get; } // [H, Nn]

    /// <summary>
    /// The saved softmax statistics <c>[H, Nn, 2]</c>, as <see cref="AttentionOutput.Stats"/>: per node the largest score
    /// m_i exactly as the forward computed it and <c>log sum_j exp(z_ij - m_i)</c> (in [0, log degree]); (-inf, 0) for a
    /// node with no neighbours. They belong to the backend that wrote them.
    /// </summary>
    public Tensor Stats { get; } // [H, Nn, 2]

    /// <summary>Present when <see cref="GraphAttentionOptions.Diagnostics"/> was set.</summary>
    public GraphAttentionDiagnostics? Diagnostics { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Output.Dispose();
        Lse.Dispose();
        Stats.Dispose();
        Diagnostics?.Dispose();
    }
}

/// <summary>What <see cref="GraphAttention.Backward"/> returns, each <c>[H, Nn, D]</c>.</summary>
public sealed class GraphAttentionGradients(Tensor dq, Tensor dk, Tensor dv) : RouterGradients(dq, dk, dv);
