namespace RouteKit;

/// <summary>
/// One attention problem, resolved and validated once at the API edge (FlashAttention's <c>flash.h</c> params):
/// B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim. Kernels and the reference read
/// only this, never <see cref="AttentionOptions"/>.
/// </summary>
public sealed record AttentionParams
{
    /// <summary>Largest supported head dimension.</summary>
    public const int MaxHeadDim = 256;

    /// <summary>Batch size.</summary>
    public required int B { get; init; }
    /// <summary>Query heads.</summary>
    public required int H { get; init; }
    /// <summary>Key/value heads (H % Hkv == 0; query head h reads kv head h / (H / Hkv)).</summary>
    public required int Hkv { get; init; }
    /// <summary>Queries per head.</summary>
    public required int N { get; init; }
    /// <summary>Keys per head.</summary>
    public required int M { get; init; }
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
    /// <summary>Causal mask (bottom-right aligned).</summary>
    public required bool Causal { get; init; }
    /// <summary>Window W, or -1 for none.</summary>
    public required int Window { get; init; }
    /// <summary>Real keys per batch element (length B), or null when every key is real (<see cref="AttentionOptions.KeyLengths"/>).</summary>
    public int[]? KeyLengths { get; init; }
    /// <summary>True when a key padding mask is set.</summary>
    public bool HasKeyLengths => KeyLengths is not null;
    /// <summary><see cref="KeyLengths"/> as floats (exact: M is at most 2^24 with a mask), for the ILGPU kernels; null without a mask.</summary>
    internal float[]? KeyLengthsAsFloats { get; init; }
    /// <summary>The number of real keys of batch element b (M without a key padding mask).</summary>
    public int KeyLength(int b) => KeyLengths is { } lengths ? lengths[b] : M;
    /// <summary>Brake slope per query head (length H, zeros when there is no brake).</summary>
    public required float[] BrakeSlopes { get; init; }
    /// <summary>True when any slope is non-zero.</summary>
    public bool HasBrake => Array.Exists(BrakeSlopes, static m => m != 0f);
    /// <summary>Compute the fused diagnostics.</summary>
    public required bool Diagnostics { get; init; }
    /// <summary>Keys j &lt; SinkTokens count as sinks.</summary>
    public required int SinkTokens { get; init; }
    /// <summary>The ILGPU kernel version pair, 1..<see cref="KernelVariants"/> (AttentionOptions.KernelVariant).</summary>
    internal int KernelVariant { get; init; } = 1;
    /// <summary>How many ILGPU kernel version pairs the dispatcher knows.</summary>
    internal const int KernelVariants = 2;

    /// <summary>Query heads per key/value head.</summary>
    public int Group => H / Hkv;
    /// <summary>Offset of query i's position among the keys: i' = i + (M - N).</summary>
    public int Offset => M - N;

    /// <summary>Shape of q, O and dQ.</summary>
    public int[] QueryShape => [B, H, N, D];
    /// <summary>Shape of k, v, dK and dV.</summary>
    public int[] KeyShape => [B, Hkv, M, D];
    /// <summary>Shape of Lse and the diagnostics.</summary>
    public int[] RowShape => [B, H, N];
    /// <summary>Shape of the saved softmax statistics (row max, log-sum relative to it).</summary>
    public int[] StatsShape => [B, H, N, 2];

    /// <summary>True when key j is visible from query i of batch element b (key padding, causal and window masks).</summary>
    public bool Visible(int b, int i, int j) => j < KeyLength(b) && Visible(i, j);

    /// <summary>True when key j is visible from query i (causal and window masks; not the per-batch key padding).</summary>
    public bool Visible(int i, int j)
    {
        var ip = i + Offset;
        if (Causal && j > ip) return false;
        if (Window >= 0 && Math.Abs(ip - j) > Window) return false;
        return true;
    }

    /// <summary>
    /// The keys query i sees, [Lo, Hi] inclusive (Hi &lt; Lo when none), from the causal and window masks; computed in
    /// 64-bit so that i + (M - N) + Window cannot overflow. The one definition the Managed kernels, the saved-statistics
    /// check and the routing summaries share.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public (int Lo, int Hi) KeyRange(int i)
    {
        long ip = (long)i + Offset, lo = 0, hi = M - 1L;
        if (Causal) hi = Math.Min(hi, ip);
        if (Window >= 0)
        {
            lo = Math.Max(lo, ip - Window);
            hi = Math.Min(hi, ip + Window);
        }
        return ((int)Math.Clamp(lo, int.MinValue, int.MaxValue), (int)Math.Clamp(hi, -1L, int.MaxValue));
    }

    /// <summary>The keys query i of batch element b sees: <see cref="KeyRange(int)"/> cut at the element's key length.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public (int Lo, int Hi) KeyRange(int b, int i)
    {
        var (lo, hi) = KeyRange(i);
        return KeyLengths is { } lengths ? (lo, Math.Min(hi, lengths[b] - 1)) : (lo, hi);
    }

    /// <summary>True when query row i sees at least one key (a fully masked row gets O = 0 and Lse = -inf).</summary>
    public bool SeesAnyKey(int i)
    {
        var (lo, hi) = KeyRange(i);
        return lo <= hi;
    }

    /// <summary>True when query row i of batch element b sees at least one key, key padding included.</summary>
    public bool SeesAnyKey(int b, int i)
    {
        var (lo, hi) = KeyRange(b, i);
        return lo <= hi;
    }

    /// <summary>
    /// Resolves options against shapes and validates both; every error is an <see cref="ArgumentException"/> naming
    /// the argument, what was seen and what was wanted.
    /// </summary>
    public static AttentionParams Resolve(
        ReadOnlySpan<int> qShape, ReadOnlySpan<int> kShape, ReadOnlySpan<int> vShape, AttentionOptions? options)
    {
        options ??= new AttentionOptions();
        if (qShape.Length != 4)
            throw new ArgumentException($"q must have rank 4 [B, H, N, D]; got shape {Tensor.Format(qShape)}.", "q");
        if (kShape.Length != 4)
            throw new ArgumentException($"k must have rank 4 [B, Hkv, M, D]; got shape {Tensor.Format(kShape)}.", "k");
        if (vShape.Length != 4)
            throw new ArgumentException($"v must have rank 4 [B, Hkv, M, D]; got shape {Tensor.Format(vShape)}.", "v");
        int b = qShape[0], h = qShape[1], n = qShape[2], d = qShape[3];
        int hkv = kShape[1], m = kShape[2];
        if (d < 1 || d > MaxHeadDim)
            throw new ArgumentException($"Head dimension D = {d} (q shape {Tensor.Format(qShape)}) is outside 1..{MaxHeadDim}.", "q");
        if (kShape[0] != b || kShape[3] != d)
            throw new ArgumentException(
                $"k has shape {Tensor.Format(kShape)}; wanted [B={b}, Hkv, M, D={d}] to match q {Tensor.Format(qShape)}.", "k");
        if (!vShape.SequenceEqual(kShape))
            throw new ArgumentException($"v has shape {Tensor.Format(vShape)}; wanted k's shape {Tensor.Format(kShape)}.", "v");
        if (h % hkv != 0)
            throw new ArgumentException(
                $"Query heads H = {h} must be a multiple of key/value heads Hkv = {hkv} (q {Tensor.Format(qShape)}, k {Tensor.Format(kShape)}).", "k");

        var (scale, radius) = ResolveScore(options.Score, options.Scale, options.KeyRadius, options.KeyEpsilon, d);
        if (options.Window is { } w && w < 0)
            throw new ArgumentException($"Window must be >= 0 (or null for none); got {w}.", nameof(options));
        if (options.SinkTokens < 0)
            throw new ArgumentException($"SinkTokens must be >= 0; got {options.SinkTokens}.", nameof(options));
        var slopes = ResolveSlopes(options.BrakeSlopes, h, "query head");
        if (options.KernelVariant < 1 || options.KernelVariant > KernelVariants)
            throw new ArgumentException(
                $"KernelVariant must be in 1..{KernelVariants} (see `routekit-perf list`); got {options.KernelVariant}.", nameof(options));
        int[]? keyLengths = null;
        if (options.KeyLengths is { } given)
        {
            if (given.Length != b)
                throw new ArgumentException($"KeyLengths has length {given.Length}; wanted one length per batch element, B = {b}.", nameof(options));
            for (var i = 0; i < b; i++)
                if (given[i] < 0 || given[i] > m)
                    throw new ArgumentException($"KeyLengths[{i}] = {given[i]}; every length must be in 0..M = {m}.", nameof(options));
            if (m > 1 << 24)
                throw new ArgumentException($"KeyLengths with M = {m} keys: a key padding mask supports at most 2^24 keys.", nameof(options));
            keyLengths = (int[])given.Clone();
        }

        return new AttentionParams
        {
            B = b, H = h, Hkv = hkv, N = n, M = m, D = d,
            Scale = scale, Score = options.Score, NormalizeKeys = options.NormalizeKeys,
            KeyRadius = radius, KeyEpsilon = options.KeyEpsilon,
            Causal = options.Causal, Window = options.Window ?? -1, BrakeSlopes = slopes, KeyLengths = keyLengths,
            KeyLengthsAsFloats = keyLengths is null ? null : Array.ConvertAll(keyLengths, static x => (float)x),
            Diagnostics = options.Diagnostics, SinkTokens = options.SinkTokens, KernelVariant = options.KernelVariant,
        };
    }

    /// <summary>
    /// Checks the score options every router shares (attention, the depth router) and resolves their defaults: the scale
    /// s (1/sqrt(D)) and the key radius rho (sqrt(D)). Errors name <c>options</c>.
    /// </summary>
    internal static (float Scale, float Radius) ResolveScore(Score score, float? scale, float? keyRadius, float keyEpsilon, int d)
    {
        OptionChecks.Defined(score, "options.Score");
        var s = scale ?? (float)(1.0 / Math.Sqrt(d));
        if (!float.IsFinite(s) || s <= 0f)
            throw new ArgumentException($"Scale must be finite and positive; got {s}.", "options");
        var radius = keyRadius ?? (float)Math.Sqrt(d);
        if (!float.IsFinite(radius) || radius <= 0f)
            throw new ArgumentException($"KeyRadius must be finite and positive; got {radius}.", "options");
        if (!float.IsFinite(keyEpsilon) || keyEpsilon <= 0f)
            throw new ArgumentException($"KeyEpsilon must be finite and positive; got {keyEpsilon}.", "options");
        return (s, radius);
    }

    /// <summary>
    /// A copy of <paramref name="given"/> (zeros when null) after checking it holds one finite slope &gt;= 0 per
    /// <paramref name="perWhat"/>, <paramref name="h"/> of them. Errors name <c>options</c>.
    /// </summary>
    internal static float[] ResolveSlopes(float[]? given, int h, string perWhat)
    {
        var slopes = new float[h];
        if (given is null) return slopes;
        if (given.Length != h)
            throw new ArgumentException($"BrakeSlopes has length {given.Length}; wanted one slope per {perWhat}, length H = {h}.", "options");
        for (var i = 0; i < h; i++)
            if (!float.IsFinite(given[i]) || given[i] < 0f)
                throw new ArgumentException($"BrakeSlopes[{i}] = {given[i]}; every slope must be finite and >= 0.", "options");
        Array.Copy(given, slopes, h);
        return slopes;
    }

    /// <summary>Forward FLOPs counted as FlashAttention does: 4 B H N M D, halved when causal.</summary>
    public double ForwardFlops => 4.0 * B * H * N * M * D * (Causal ? 0.5 : 1.0);
}
