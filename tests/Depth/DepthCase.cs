using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// One depth-router test problem: Lq query layers over L layers, T tokens, H heads, D head dim, the options and how
/// large the logits are. Brake is one brake for every head, or with <see cref="PerHead"/> the brake times (h + 1) / H.
/// </summary>
public sealed record DepthCase(
    int Lq, int L, int T, int H, int D, Score Score = Score.Dot, bool NormalizeKeys = false, float Brake = 0f,
    bool PerHead = false, bool Diagnostics = true, float InputScale = 1f, float? KeyScale = null)
{
    /// <summary>The options this case runs with.</summary>
    public DepthRouterOptions Options => new()
    {
        Score = Score, NormalizeKeys = NormalizeKeys, Diagnostics = Diagnostics,
        Brake = PerHead ? 0f : Brake,
        BrakeSlopes = PerHead ? Enumerable.Range(0, H).Select(h => Brake * (h + 1) / H).ToArray() : null,
    };

    /// <summary>The resolved parameters.</summary>
    public DepthRouterParams Params => DepthRouterParams.Resolve([Lq, T, H, D], [L, T, H, D], [L, T, H, D], Options);

    /// <summary>Seeded q, k, v and dO; q and k times <see cref="InputScale"/> (k times <see cref="KeyScale"/> when given).</summary>
    public (float[] Q, float[] K, float[] V, float[] DOut) Inputs(int seed = 1)
    {
        var qn = Lq * T * H * D;
        var kn = L * T * H * D;
        return (TestData.Normal(qn, seed, InputScale), TestData.Normal(kn, seed + 1, KeyScale ?? InputScale),
            TestData.Normal(kn, seed + 2), TestData.Normal(qn, seed + 3));
    }

    /// <summary>The float64 reference and the naive float32 reference, forward and backward.</summary>
    public (DepthRouterReferenceOutput<double> F64, DepthRouterReferenceOutput<float> F32,
        DepthRouterReferenceGradients<double> G64, DepthRouterReferenceGradients<float> G32) References(int seed = 1)
    {
        var (q, k, v, dOut) = Inputs(seed);
        var p = Params;
        var (qd, kd, vd, dd) = (TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v), TestData.ToDouble(dOut));
        return (DepthRouterReference.Forward(p, qd, kd, vd), DepthRouterReference.Forward(p, q, k, v),
            DepthRouterReference.Backward(p, dd, qd, kd, vd), DepthRouterReference.Backward(p, dOut, q, k, v));
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"Lq{Lq} L{L} T{T} H{H} D{D} {Score}{(NormalizeKeys ? "+norm" : "")}{(Brake != 0f ? $" brake{Brake}{(PerHead ? "/h" : "")}" : "")}" +
        $"{(InputScale != 1f ? $" x{InputScale}" : "")}{(KeyScale is { } ks ? $" k x{ks}" : "")}";
}
