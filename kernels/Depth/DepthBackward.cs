// DepthRouter backward: P recomputed from the forward's saved (m, log l), every gradient row owned by one T-lane
// segment (its column's), so the result is deterministic (no floating-point atomics).
//
// Versions (listed by `routekit-perf list`; `routekit-perf depth --variant 1` times the Managed path, these kernels are
// validated by the tests and the GPU timing waits for a lent device):
//   1. DepthBackward.QueryKernel + DepthBackward.KeyKernel (2026-12-02), both one T-lane segment per (token, head)
//      column, as the forward:
//      QueryKernel: per query layer i, Delta_i = dO_i . O_i, then over j <= l P_j = exp((z_j - m) - log l),
//      dz_j = P_j (dO_i . v_j - Delta_i), dq_i = s sum_j dz_j k'_j; writes Delta for the KeyKernel.
//      KeyKernel: per key layer j, over the query layers that read it (l = i + Offset >= j) in ascending order,
//      dv_j = sum_i P_ij dO_i, dk'_j = s sum_i dz_ij q_i (minus s (sum_i dz_ij) k'_j for Distance), then through the
//      key normalisation (AttentionKeys.ChainThroughNormalisation, shared with attention).
//      Scores in the forward's operation order (s dot - brake, then + bias), so z is bit for bit the forward's.
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim; C = T H columns.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;
using RouteKit.Kernels.Attention;

namespace RouteKit.Kernels.Depth;

/// <summary>Device code of the depth-router backward.</summary>
public static class DepthBackward
{
    /// <summary>The backward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("QueryKernel+KeyKernel", "dQ (with Delta) then dK/dV, both one T-lane segment per (token, head) column; deterministic"),
    ];

    /// <summary>Version 1, dQ half. Grid: ceil(C / R) groups of R = Group.DimX / T columns. Writes Delta and dq.</summary>
    public static void QueryKernel<TLanes, TScore, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [L, T, H, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [L, T, H, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [L, T, H], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> o,          // [Lq, T, H, D] the forward's output
        ArrayView1D<float, Stride1D.Dense> dO,         // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [Lq, T, H, 2] (m, log l) from the forward
        ArrayView1D<float, Stride1D.Dense> delta,      // [Lq, T, H] out: dO . O
        ArrayView1D<float, Stride1D.Dense> dq,         // [Lq, T, H, D] out
        DepthKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var col = DepthColumn.Locate(p, lanes);
        var slope = slopes[col.Valid ? col.Column % p.H : 0];

        for (var i = 0; i < p.Lq; i++)
        {
            var l = i + p.Offset;
            var row = col.Row(p, i);
            var qi = col.Load(q, p, i, lanes);
            var gi = col.Load(dO, p, i, lanes);
            var rowDelta = default(TReduction).Sum<TLanes>(gi.Dot(col.Load(o, p, i, lanes)));
            var rowMax = stats[2 * row];
            var rowLogSum = stats[2 * row + 1];
            var acc = default(LaneVector); // sum_j dz_j k'_j
            for (var j = 0; j <= l; j++)
            {
                var kj = col.Load(scoredKeys, p, j, lanes);
                var dot = default(TReduction).Sum<TLanes>(qi.Dot(kj));
                var dOv = default(TReduction).Sum<TLanes>(gi.Dot(col.Load(v, p, j, lanes)));
                var z = p.Scale * dot - slope * (l - j);
                if (hasBias) z += keyBias[col.Row(p, j)];
                acc.AddScaled(XMath.Exp(z - rowMax - rowLogSum) * (dOv - rowDelta), kj);
            }
            if (!col.Valid) continue;
            if (col.Lane == 0) delta[row] = rowDelta;
            acc.Store(dq, row * p.D, col.Lane, lanes, col.Dims, p.Scale);
        }
    }

    /// <summary>
    /// Version 1, dK/dV half (after <see cref="QueryKernel{TLanes, TScore, TReduction}"/>, which writes Delta). Grid as
    /// the QueryKernel's. Each key layer sums over its query layers in ascending order, the same on every run.
    /// </summary>
    public static void KeyKernel<TLanes, TScore, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> k,          // [L, T, H, D] raw keys, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [L, T, H, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [L, T, H, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [L, T, H], read only for Distance
        ArrayView1D<float, Stride1D.Dense> keyNorm,    // [L, T, H] |k|, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> dO,         // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [Lq, T, H, 2]
        ArrayView1D<float, Stride1D.Dense> delta,      // [Lq, T, H]
        ArrayView1D<float, Stride1D.Dense> dk,         // [L, T, H, D] out
        ArrayView1D<float, Stride1D.Dense> dv,         // [L, T, H, D] out
        DepthKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var col = DepthColumn.Locate(p, lanes);
        var slope = slopes[col.Valid ? col.Column % p.H : 0];

        for (var j = 0; j < p.L; j++)
        {
            var keyRow = col.Row(p, j);
            var kj = col.Load(scoredKeys, p, j, lanes);
            var vj = col.Load(v, p, j, lanes);
            var bias = hasBias ? keyBias[keyRow] : 0f;
            var dkScored = default(LaneVector); // sum_i dz_ij q_i
            var dvj = default(LaneVector);      // sum_i P_ij dO_i
            var dzSum = 0f;
            for (var i = Max(0, j - p.Offset); i < p.Lq; i++)
            {
                var l = i + p.Offset;
                var row = col.Row(p, i);
                var qi = col.Load(q, p, i, lanes);
                var gi = col.Load(dO, p, i, lanes);
                var dot = default(TReduction).Sum<TLanes>(qi.Dot(kj));
                var dOv = default(TReduction).Sum<TLanes>(gi.Dot(vj));
                var z = p.Scale * dot - slope * (l - j);
                if (hasBias) z += bias;
                var prob = XMath.Exp(z - stats[2 * row] - stats[2 * row + 1]);
                var dz = prob * (dOv - delta[row]);
                dzSum += dz;
                dkScored.AddScaled(dz, qi);
                dvj.AddScaled(prob, gi);
            }
            // dk' = s (sum dz q - [Distance] (sum dz) k').
            if (hasBias) dkScored.AddScaled(-dzSum, kj);
            dkScored.Scale(p.Scale);
            if (p.NormalizeKeys != 0)
                dkScored = AttentionKeys.ChainThroughNormalisation<TLanes, TReduction>(
                    dkScored, col.Load(k, p, j, lanes), keyNorm[keyRow], p.KeyRadius, p.KeyEpsilon);
            if (!col.Valid) continue;
            dkScored.Store(dk, keyRow * p.D, col.Lane, lanes, col.Dims, 1f);
            dvj.Store(dv, keyRow * p.D, col.Lane, lanes, col.Dims, 1f);
        }
    }

    private static int Max(int a, int b) => a > b ? a : b;
}
