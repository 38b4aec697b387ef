// Attention key preparation: the keys as the score sees them, once per call, so the fused kernels read k' and a
// per-key bias instead of renormalising every key in every query tile.
//
// Versions:
//   1. AttentionKeys.PrepareKernel: T lanes per key row (the attention layout), |k| by a lane-segment shuffle sum;
//      writes k' = rho k / max(|k|, eps) (NormalizeKeys only), |k| and the Distance bias -(s/2)|k'|^2.
// Timed as part of every forward: `routekit-perf attention --variant N`.
//
// Shapes: B batch, Hkv key/value heads, M keys, D head dim.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Attention;

/// <summary>Device code of the key preparation shared by the attention forward and backward.</summary>
public static class AttentionKeys
{
    /// <summary>
    /// One key row per T-lane segment, <c>Group.DimX / T</c> rows per group, over all B Hkv M rows. Writes
    /// <paramref name="scoredKeys"/> only when <c>p.NormalizeKeys</c> is set (otherwise the score reads k itself) and
    /// <paramref name="keyBias"/> as 0 for Dot.
    /// </summary>
    public static void PrepareKernel<TLanes, TReduction>(
        ArrayView1D<float, Stride1D.Dense> k,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> keyNorm,    // [B, Hkv, M] |k|
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M] -(s/2)|k'|^2, or 0
        int distance,
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var lane = Group.IdxX & (lanes - 1);
        var row = Grid.IdxX * (Group.DimX / lanes) + Group.IdxX / lanes;
        var rows = p.B * p.Hkv * p.M;
        var valid = row < rows;
        var dims = valid ? p.D : 0; // an invalid row loads zeros but still joins the shuffles
        var off = valid ? row * p.D : 0;

        var kr = LaneVector.Load(k, off, lane, lanes, dims);
        var sq = default(TReduction).Sum<TLanes>(kr.Dot(kr));
        var norm = Sqrt(sq);

        var f = 1f;
        if (p.NormalizeKeys != 0)
        {
            f = p.KeyRadius / Max(norm, p.KeyEpsilon);
            kr.Store(scoredKeys, off, lane, lanes, dims, f);
        }
        if (valid && lane == 0)
        {
            keyNorm[row] = norm;
            keyBias[row] = distance != 0 ? -0.5f * p.Scale * (f * f * sq) : 0f;
        }
    }

    /// <summary>
    /// dL/dk from dL/dk' through <c>k' = rho k / max(|k|, eps)</c>: <c>(rho/|k|)(dk' - u (u . dk'))</c>, u = k/|k|, or
    /// <c>(rho/eps) dk'</c> at or below eps. u is k divided by |k| as the maths writes it: u from the rounded k' = f k
    /// or from k times 1/|k| would leave an O(eps |dk'|) residue where the exact projection is 0 (D = 1). Every lane of
    /// the row segment must call it (it sums over the segment). Shared by the attention, graph-attention and depth-router
    /// backwards.
    /// </summary>
    public static LaneVector ChainThroughNormalisation<TLanes, TReduction>(
        LaneVector dkScored, LaneVector k, float norm, float radius, float epsilon)
        where TLanes : struct, ILanes
        where TReduction : struct, ISegmentReduction
    {
        var above = norm > epsilon;
        var u = k;
        u.DivideBy(above ? norm : float.PositiveInfinity); // x / inf = 0: no projection at or below eps
        var project = default(TReduction).Sum<TLanes>(u.Dot(dkScored));
        dkScored.AddScaled(-project, u);
        // At or below eps, k' = (rho/eps) k and u = 0 here, so dk = (rho/eps) dk'.
        dkScored.Scale(above ? radius / norm : radius / epsilon);
        return dkScored;
    }

    private static float Sqrt(float x) => ILGPU.Algorithms.XMath.Sqrt(x);

    private static float Max(float a, float b) => a > b ? a : b;
}
