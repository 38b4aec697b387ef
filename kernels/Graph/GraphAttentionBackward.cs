// GraphAttention backward: P recomputed from the forward's saved (m_i, log l_i), nothing per edge stored, and every
// gradient row owned by one warp, so the result is deterministic (no floating-point atomics).
//
// Versions (listed by `routekit-perf list`; `routekit-perf graph --variant 1` times the Managed path, these kernels are
// validated by the tests; GPU timing not yet done):
//   1. GraphAttentionBackward.QueryKernel + KeyKernel (2026-12-02), the forward's warp-per-node layout (S slots of T lanes
//      striding over edges, slot partials summed by a fixed butterfly):
//      QueryKernel over the CSR: Delta_i = dO_i . O_i, dz_ij = P_ij (dO_i . v_j - Delta_i), dq_i = s sum_j dz_ij k'_j.
//      KeyKernel over the transpose (CsrGraph's CSC, sources ascending): dv_j = sum_i P_ij dO_i,
//      dk'_j = s (sum_i dz_ij q_i - [Distance] (sum_i dz_ij) k'_j), then through the key normalisation
//      (AttentionKeyGradient, shared with attention's KeyKernel).
//
// Shapes: H heads, Nn nodes, E edges, D head dim; rowPtr/colPtr [Nn + 1], colIdx/rowIdx [E].
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;

namespace RouteKit.Kernels.Graph;

/// <summary>Device code of the graph-attention backward.</summary>
public static class GraphAttentionBackward
{
    /// <summary>The backward versions a perf harness can list, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("QueryKernel+KeyKernel", "dQ (with Delta) warp per node over the CSR, then dK/dV warp per key node over the CSC"),
    ];

    /// <summary>Version 1, dQ half. Grid as the forward's. Writes Delta for <see cref="KeyKernel{TLanes, TScore}"/> and dq.</summary>
    public static void QueryKernel<TLanes, TScore>(
        ArrayView1D<float, Stride1D.Dense> q,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [H, Nn, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [H, Nn], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> o,          // [H, Nn, D] the forward's output
        ArrayView1D<float, Stride1D.Dense> dO,         // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [H, Nn, 2]
        ArrayView1D<int, Stride1D.Dense> rowPtr,       // [Nn + 1]
        ArrayView1D<int, Stride1D.Dense> colIdx,       // [E]
        ArrayView1D<float, Stride1D.Dense> delta,      // [H, Nn] out: dO_i . O_i
        ArrayView1D<float, Stride1D.Dense> dq,         // [H, Nn, D] out
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var w = GraphWarp.Locate(p, lanes);
        var (lane, slot, slots, row, valid, h, i) = (w.Lane, w.Slot, w.Slots, w.Row, w.Valid, w.Head, w.Node);
        var (e0, e1) = w.EdgeRange(rowPtr);
        var slope = slopes[h];
        var (head0, dims, off) = (w.Head0, w.Dims, w.Offset);
        var qi = LaneVector.Load(q, off, lane, lanes, dims);
        var gi = LaneVector.Load(dO, off, lane, lanes, dims);
        var rowDelta = AttentionLanes.SegmentSum<TLanes>(gi.Dot(LaneVector.Load(o, off, lane, lanes, dims)));
        var rowMax = valid ? stats[2 * row] : float.PositiveInfinity;
        var rowLogSum = valid ? stats[2 * row + 1] : 0f;
        var acc = default(LaneVector); // sum_j dz_ij k'_j
        for (var b = e0; b < e1; b += slots)
        {
            var e = b + slot;
            var has = e < e1;
            var j = has ? colIdx[e] : 0;
            var kDims = has ? p.D : 0;
            var kj = LaneVector.Load(scoredKeys, (head0 + j) * p.D, lane, lanes, kDims);
            var dot = AttentionLanes.SegmentSum<TLanes>(qi.Dot(kj));
            var dOv = AttentionLanes.SegmentSum<TLanes>(gi.Dot(LaneVector.Load(v, (head0 + j) * p.D, lane, lanes, kDims)));
            if (!has) continue;
            var z = p.Scale * dot - (j != i ? slope : 0f);
            if (hasBias) z += keyBias[head0 + j];
            acc.AddScaled(XMath.Exp(z - rowMax - rowLogSum) * (dOv - rowDelta), kj);
        }
        acc = GraphWarp.SumSlots(acc, lanes, slots);

        if (!valid || slot != 0) return;
        if (lane == 0) delta[row] = rowDelta;
        acc.Store(dq, off, lane, lanes, p.D, p.Scale);
    }

    /// <summary>
    /// Version 1, dK/dV half (after <see cref="QueryKernel{TLanes, TScore}"/>). One warp per (head, key node j) over the
    /// sources of j's incoming edges <c>rowIdx[colPtr[j] .. colPtr[j + 1])</c>, both in <c>transpose</c>.
    /// </summary>
    public static void KeyKernel<TLanes, TScore>(
        ArrayView1D<float, Stride1D.Dense> q,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> k,          // [H, Nn, D] raw keys, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [H, Nn, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [H, Nn], read only for Distance
        ArrayView1D<float, Stride1D.Dense> keyNorm,    // [H, Nn] |k|, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> dO,         // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [H, Nn, 2]
        ArrayView1D<float, Stride1D.Dense> delta,      // [H, Nn]
        ArrayView1D<int, Stride1D.Dense> transpose,    // [Nn + 1 + E] colPtr then rowIdx (one view: ILGPU loads 15 parameters at most)
        ArrayView1D<float, Stride1D.Dense> dk,         // [H, Nn, D] out
        ArrayView1D<float, Stride1D.Dense> dv,         // [H, Nn, D] out
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var w = GraphWarp.Locate(p, lanes);
        var (lane, slot, slots, row, valid, h, j) = (w.Lane, w.Slot, w.Slots, w.Row, w.Valid, w.Head, w.Node);
        var rowIdx0 = p.N + 1; // rowIdx[e] = transpose[rowIdx0 + e]
        var (e0, e1) = w.EdgeRange(transpose);
        var slope = slopes[h];
        var (head0, dims, off) = (w.Head0, w.Dims, w.Offset);
        var kj = LaneVector.Load(scoredKeys, off, lane, lanes, dims);
        var vj = LaneVector.Load(v, off, lane, lanes, dims);
        var bias = hasBias && valid ? keyBias[row] : 0f;
        var dkScored = default(LaneVector); // sum_i dz_ij q_i
        var dvj = default(LaneVector);      // sum_i P_ij dO_i
        var dzSum = 0f;
        for (var b = e0; b < e1; b += slots)
        {
            var e = b + slot;
            var has = e < e1;
            var i = has ? transpose[rowIdx0 + e] : 0;
            var queryRow = head0 + i;
            var qDims = has ? p.D : 0;
            var qi = LaneVector.Load(q, queryRow * p.D, lane, lanes, qDims);
            var gi = LaneVector.Load(dO, queryRow * p.D, lane, lanes, qDims);
            var dot = AttentionLanes.SegmentSum<TLanes>(qi.Dot(kj));
            var dOv = AttentionLanes.SegmentSum<TLanes>(gi.Dot(vj));
            if (!has) continue;
            var z = p.Scale * dot - (j != i ? slope : 0f);
            if (hasBias) z += bias;
            var prob = XMath.Exp(z - stats[2 * queryRow] - stats[2 * queryRow + 1]);
            var dz = prob * (dOv - delta[queryRow]);
            dzSum += dz;
            dkScored.AddScaled(dz, qi);
            dvj.AddScaled(prob, gi);
        }
        dkScored = GraphWarp.SumSlots(dkScored, lanes, slots);
        dvj = GraphWarp.SumSlots(dvj, lanes, slots);
        dzSum = GraphWarp.SumSlots(dzSum, lanes, slots);

        if (hasBias) dkScored.AddScaled(-dzSum, kj);
        dkScored.Scale(p.Scale);
        if (p.NormalizeKeys != 0)
        {
            // Uniform over the warp (NormalizeKeys is), so every lane reaches the reduction.
            dkScored = AttentionKeys.ChainThroughNormalisation<TLanes, WarpShuffleReduction>(
                dkScored, LaneVector.Load(k, off, lane, lanes, dims), valid ? keyNorm[row] : 0f, p.KeyRadius, p.KeyEpsilon);
        }

        if (!valid || slot != 0) return;
        dkScored.Store(dk, off, lane, lanes, p.D, 1f);
        dvj.Store(dv, off, lane, lanes, p.D, 1f);
    }
}
