using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>One attention test problem: shapes, options and how large the logits are.</summary>
public sealed record AttentionCase(
    int B, int H, int Hkv, int N, int M, int D,
    Score Score = Score.Dot, bool NormalizeKeys = false, bool Causal = false, int? Window = null,
    bool Brake = false, bool Diagnostics = true, float InputScale = 1f, int SinkTokens = 1, float? KeyScale = null, int[]? KeyLengths = null,
    int KernelVariant = 1)
{
    /// <summary>The options this case runs with (ALiBi slopes times 4 as the brake, so it matters at short N).</summary>
    public AttentionOptions Options => new()
    {
        Score = Score, NormalizeKeys = NormalizeKeys, Causal = Causal, Window = Window,
        BrakeSlopes = Brake ? Array.ConvertAll(AttentionOptions.AlibiSlopes(H), m => 4 * m) : null,
        Diagnostics = Diagnostics, SinkTokens = SinkTokens, KeyLengths = KeyLengths, KernelVariant = KernelVariant,
    };

    /// <summary>The resolved parameters.</summary>
    public AttentionParams Params => AttentionParams.Resolve([B, H, N, D], [B, Hkv, M, D], [B, Hkv, M, D], Options);

    /// <summary>
    /// Seeded q, k, v and dO; q and k are multiplied by <see cref="InputScale"/> (1e3-scale logits at ~31), or k by
    /// <see cref="KeyScale"/> when given (key norms ~ KeyScale sqrt(D), independent of the queries' scale).
    /// </summary>
    public (float[] Q, float[] K, float[] V, float[] DOut) Inputs(int seed = 1)
    {
        var qn = B * H * N * D;
        var kn = B * Hkv * M * D;
        return (TestData.Normal(qn, seed, InputScale), TestData.Normal(kn, seed + 1, KeyScale ?? InputScale),
            TestData.Normal(kn, seed + 2), TestData.Normal(qn, seed + 3));
    }

    /// <summary>The float64 reference and the naive float32 reference (for the 2x rule), forward and backward.</summary>
    public (AttentionReferenceOutput<double> F64, AttentionReferenceOutput<float> F32,
        AttentionReferenceGradients<double> G64, AttentionReferenceGradients<float> G32) References(int seed = 1)
    {
        var (q, k, v, dOut) = Inputs(seed);
        var p = Params;
        var (qd, kd, vd, dd) = (TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v), TestData.ToDouble(dOut));
        return (AttentionReference.Forward(p, qd, kd, vd), AttentionReference.Forward(p, q, k, v),
            AttentionReference.Backward(p, dd, qd, kd, vd), AttentionReference.Backward(p, dOut, q, k, v));
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"B{B} H{H}/{Hkv} N{N} M{M} D{D} {Score}{(NormalizeKeys ? "+norm" : "")}{(Causal ? " causal" : "")}" +
        $"{(Window is { } w ? $" win{w}" : "")}{(Brake ? " brake" : "")}{(InputScale != 1f ? $" x{InputScale}" : "")}" +
        $"{(KeyScale is { } ks ? $" k x{ks}" : "")}{(KeyLengths is { } kl ? $" keys[{string.Join(",", kl)}]" : "")}" +
        $"{(KernelVariant != 1 ? $" v{KernelVariant}" : "")}";
}
