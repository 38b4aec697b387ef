namespace RouteKit;

/// <summary>
/// One depth-router problem, resolved and validated once at the API edge: Lq query layers, L key/value layers
/// (Lq &lt;= L &lt;= 64), T tokens, H heads, D head dim. Query layer i sits at depth l = i + (L - Lq) and reads layers
/// j &lt;= l. Kernels and the reference read only this, never <see cref="DepthRouterOptions"/>.
/// </summary>
public sealed record DepthRouterParams
{
    /// <summary>Largest supported depth L (the depth column of a (token, head) is walked whole by one thread segment).</summary>
    public const int MaxLayers = 64;

    /// <summary>Query layers.</summary>
    public required int Lq { get; init; }
    /// <summary>Key/value layers.</summary>
    public required int L { get; init; }
    /// <summary>Tokens.</summary>
    public required int T { get; init; }
    /// <summary>Heads.</summary>
    public required int H { get; init; }
    /// <summary>Head dimension, 1..256.</summary>
    public required int D { get; init; }
    /// <summary>Score scale s.</summary>
    public required float Scale { get; init; }
    /// <summary>Dot or Distance.</summary>
    public required Score Score { get; init; }
    /// <summary>Keys normalised to <see cref="KeyRadius"/>.</summary>
    public required bool NormalizeKeys { get; init; }
    /// <summary>rho.</summary>
    public required float KeyRadius { get; init; }
    /// <summary>eps of <c>max(|k|, eps)</c>.</summary>
    public required float KeyEpsilon { get; init; }
    /// <summary>Brake per head (length H, zeros when there is none).</summary>
    public required float[] BrakeSlopes { get; init; }
    /// <summary>Compute the fused diagnostics.</summary>
    public required bool Diagnostics { get; init; }

    /// <summary>L - Lq: query layer i sits at depth i + Offset.</summary>
    public int Offset => L - Lq;
    /// <summary>(token, head) columns, T H.</summary>
    public int Columns => T * H;
    /// <summary>Shape of q, the output and dQ.</summary>
    public int[] QueryShape => [Lq, T, H, D];
    /// <summary>Shape of k, v, dK and dV.</summary>
    public int[] KeyShape => [L, T, H, D];
    /// <summary>Shape of the diagnostics.</summary>
    public int[] RowShape => [Lq, T, H];
    /// <summary>Shape of the saved statistics.</summary>
    public int[] StatsShape => [Lq, T, H, 2];

    /// <summary>
    /// The key rows as an attention problem of one batch and head over L T H keys: attention's key preparation, its
    /// reference key normalisation and its gradient chain work row by row, so they serve the depth router unchanged.
    /// </summary>
    internal AttentionParams KeyRows => new()
    {
        B = 1, H = 1, Hkv = 1, N = 1, M = L * Columns, D = D, Scale = Scale, Score = Score, NormalizeKeys = NormalizeKeys,
        KeyRadius = KeyRadius, KeyEpsilon = KeyEpsilon, Causal = false, Window = -1, BrakeSlopes = [0f], Diagnostics = false,
        SinkTokens = 0,
    };

    /// <summary>
    /// The saved statistics as an attention problem of one batch and head with Lq T H rows over L keys, none masked:
    /// every depth row sees layer 0, so attention's statistics check applies as it is.
    /// </summary>
    internal AttentionParams StatsRows => KeyRows with { N = Lq * Columns, M = L };

    /// <summary>
    /// Resolves options against shapes; every error is an <see cref="ArgumentException"/> naming the argument, what was
    /// seen and what was wanted.
    /// </summary>
    public static DepthRouterParams Resolve(
        ReadOnlySpan<int> qShape, ReadOnlySpan<int> kShape, ReadOnlySpan<int> vShape, DepthRouterOptions? options)
    {
        options ??= new DepthRouterOptions();
        if (qShape.Length != 4)
            throw new ArgumentException($"q must have rank 4 [Lq, T, H, D]; got shape {Tensor.Format(qShape)}.", "q");
        if (kShape.Length != 4)
            throw new ArgumentException($"k must have rank 4 [L, T, H, D]; got shape {Tensor.Format(kShape)}.", "k");
        if (vShape.Length != 4)
            throw new ArgumentException($"v must have rank 4 [L, T, H, D]; got shape {Tensor.Format(vShape)}.", "v");
        foreach (var (shape, name) in new[] { (qShape.ToArray(), "q"), (kShape.ToArray(), "k"), (vShape.ToArray(), "v") })
            if (Array.Exists(shape, static n => n < 1))
                throw new ArgumentException($"{name} has shape {Tensor.Format(shape)}; every dimension must be at least 1.", name);
        int lq = qShape[0], t = qShape[1], h = qShape[2], d = qShape[3], l = kShape[0];
        if (d > AttentionParams.MaxHeadDim)
            throw new ArgumentException($"Head dimension D = {d} (q shape {Tensor.Format(qShape)}) is outside 1..{AttentionParams.MaxHeadDim}.", "q");
        if (l > MaxLayers)
            throw new ArgumentException($"k has L = {l} layers (shape {Tensor.Format(kShape)}); the depth router supports at most {MaxLayers}.", "k");
        if (kShape[1] != t || kShape[2] != h || kShape[3] != d)
            throw new ArgumentException(
                $"k has shape {Tensor.Format(kShape)}; wanted [L, T={t}, H={h}, D={d}] to match q {Tensor.Format(qShape)}.", "k");
        if (lq > l)
            throw new ArgumentException(
                $"q has Lq = {lq} query layers but k has only L = {l} layers; the query layers are the last Lq of the L (Lq <= L).", "q");
        if (!vShape.SequenceEqual(kShape))
            throw new ArgumentException($"v has shape {Tensor.Format(vShape)}; wanted k's shape {Tensor.Format(kShape)}.", "v");

        var (scale, radius) = AttentionParams.ResolveScore(options.Score, options.Scale, options.KeyRadius, options.KeyEpsilon, d);
        if (!float.IsFinite(options.Brake) || options.Brake < 0f)
            throw new ArgumentException($"Brake = {options.Brake}; it must be finite and >= 0.", nameof(options));
        if (options.BrakeSlopes is not null && options.Brake != 0f)
            throw new ArgumentException("Set Brake or BrakeSlopes, not both.", nameof(options));
        var slopes = AttentionParams.ResolveSlopes(options.BrakeSlopes, h, "head");
        if (options.BrakeSlopes is null) Array.Fill(slopes, options.Brake);

        return new DepthRouterParams
        {
            Lq = lq, L = l, T = t, H = h, D = d, Scale = scale, Score = options.Score, NormalizeKeys = options.NormalizeKeys,
            KeyRadius = radius, KeyEpsilon = options.KeyEpsilon, BrakeSlopes = slopes, Diagnostics = options.Diagnostics,
        };
    }

    /// <summary>Forward FLOPs: per (token, head) and query layer at depth l, (l + 1) scores and (l + 1) axpys of 2 D each.</summary>
    public double ForwardFlops
    {
        get
        {
            double pairs = 0;
            for (var i = 0; i < Lq; i++) pairs += i + Offset + 1;
            return 4.0 * D * pairs * Columns;
        }
    }
}
