// Attention backward, FlashAttention-2 style: P is recomputed from Lse, nothing of size N x M is stored, and every
// gradient row is owned by one T-lane segment, so the result is deterministic (no floating-point atomics).
//
// Versions (time each with `routekit-perf attention --variant N`):
//   1. AttentionBackward.QueryKernel + AttentionBackward.KeyKernel:
//      QueryKernel (parallel over query rows, the forward's layout): Delta_i = dO_i . O_i, then over the row's key band
//      P_ij = exp(z_ij - Lse_i), dz_ij = P_ij (dO_i . v_j - Delta_i), dq_i = s sum_j dz_ij k'_j.
//      KeyKernel (parallel over key rows, T lanes each, query and dO tiles in shared memory): over the g = H / Hkv
//      query heads of the key's kv head, in a fixed order, and each head's query band:
//      dv_j = sum_i P_ij dO_i, dk'_j = s sum_i dz_ij q_i (minus s (sum_i dz_ij) k'_j for Distance), then through the
//      normalisation dk_j = (rho/|k_j|)(I - u u^T) dk'_j, u = k_j/|k_j| (rho/eps dk'_j at or below eps), fused.
//      Deterministic and non-deterministic requests share it. Specialised on T, Dot/Distance and the row reduction.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; query head h reads kv head
// h / (H / Hkv). Scores as in AttentionForward.cs.
//
// Performance notes: not yet timed on a GPU (2026-11-28). The dK/dV kernel recomputes each score once more than
// FA2's fused single kernel (which shares P between dQ and dK/dV through atomics); that is the price of determinism
// without a dQ accumulation buffer.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Attention;

/// <summary>Device code of the attention backward.</summary>
public static class AttentionBackward
{
    /// <summary>The backward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("QueryKernel+KeyKernel", "dQ (with Delta) parallel over queries, then dK/dV parallel over keys; deterministic"),
    ];

    /// <summary>
    /// Version 1, dQ half. Grid: B H ceil(N / R) groups of R = Group.DimX / T query rows; dynamic shared memory
    /// 2 StreamTile 8T floats (k' and v tiles). Writes Delta for <see cref="KeyKernel{TLanes, TScore, TReduction}"/> and dq.
    /// </summary>
    public static void QueryKernel<TLanes, TScore, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> o,          // [B, H, N, D] the forward's output
        ArrayView1D<float, Stride1D.Dense> dO,         // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [B, H, N]
        ArrayView1D<float, Stride1D.Dense> delta,      // [B, H, N] out: dO_i . O_i
        ArrayView1D<float, Stride1D.Dense> dq,         // [B, H, N, D] out
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var paddedDim = 8 * lanes;
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rowsPerGroup = threads / lanes;

        var bh = Grid.IdxX / p.RowTiles;
        var i0 = (Grid.IdxX - bh * p.RowTiles) * rowsPerGroup;
        var h = bh % p.H;
        var b = bh / p.H;
        var kvRow0 = (b * p.Hkv + h / p.Group) * p.M;
        var slope = slopes[h];

        var i = i0 + tid / lanes;
        var valid = i < p.N;
        var ip = i + p.Offset;
        var jLo = 0;
        var jHi = p.M - 1;
        if (p.Causal != 0) jHi = Min(jHi, ip);
        if (p.Window >= 0)
        {
            jLo = Max(jLo, ip - p.Window);
            jHi = Min(jHi, ip + p.Window);
        }
        if (!valid) jHi = -1;
        var iLast = Min(i0 + rowsPerGroup, p.N) - 1;
        var gLo = 0;
        var gHi = p.M - 1;
        if (p.Causal != 0) gHi = Min(gHi, iLast + p.Offset);
        if (p.Window >= 0)
        {
            gLo = Max(gLo, i0 + p.Offset - p.Window);
            gHi = Min(gHi, iLast + p.Offset + p.Window);
        }

        var dims = valid ? p.D : 0;
        var row = bh * p.N + i;
        var off = valid ? row * p.D : 0;
        var q0 = AttentionLanes.LoadPadded(q, off, lane, dims);
        var q1 = AttentionLanes.LoadPadded(q, off, lane + lanes, dims);
        var q2 = AttentionLanes.LoadPadded(q, off, lane + 2 * lanes, dims);
        var q3 = AttentionLanes.LoadPadded(q, off, lane + 3 * lanes, dims);
        var q4 = AttentionLanes.LoadPadded(q, off, lane + 4 * lanes, dims);
        var q5 = AttentionLanes.LoadPadded(q, off, lane + 5 * lanes, dims);
        var q6 = AttentionLanes.LoadPadded(q, off, lane + 6 * lanes, dims);
        var q7 = AttentionLanes.LoadPadded(q, off, lane + 7 * lanes, dims);
        var g0 = AttentionLanes.LoadPadded(dO, off, lane, dims);
        var g1 = AttentionLanes.LoadPadded(dO, off, lane + lanes, dims);
        var g2 = AttentionLanes.LoadPadded(dO, off, lane + 2 * lanes, dims);
        var g3 = AttentionLanes.LoadPadded(dO, off, lane + 3 * lanes, dims);
        var g4 = AttentionLanes.LoadPadded(dO, off, lane + 4 * lanes, dims);
        var g5 = AttentionLanes.LoadPadded(dO, off, lane + 5 * lanes, dims);
        var g6 = AttentionLanes.LoadPadded(dO, off, lane + 6 * lanes, dims);
        var g7 = AttentionLanes.LoadPadded(dO, off, lane + 7 * lanes, dims);
        // Delta_i = dO_i . O_i (FA2's preprocess), fused here: the row's dO is already in registers.
        var deltaPartial = g0 * AttentionLanes.LoadPadded(o, off, lane, dims)
            + g1 * AttentionLanes.LoadPadded(o, off, lane + lanes, dims)
            + g2 * AttentionLanes.LoadPadded(o, off, lane + 2 * lanes, dims)
            + g3 * AttentionLanes.LoadPadded(o, off, lane + 3 * lanes, dims)
            + g4 * AttentionLanes.LoadPadded(o, off, lane + 4 * lanes, dims)
            + g5 * AttentionLanes.LoadPadded(o, off, lane + 5 * lanes, dims)
            + g6 * AttentionLanes.LoadPadded(o, off, lane + 6 * lanes, dims)
            + g7 * AttentionLanes.LoadPadded(o, off, lane + 7 * lanes, dims);
        var rowDelta = default(TReduction).Sum<TLanes>(deltaPartial);
        var rowLse = valid ? lse[row] : float.NegativeInfinity;
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f; // sum_j dz_ij k'_j

        var shared = SharedMemory.GetDynamic<float>();
        var tileFloats = p.StreamTile * paddedDim;
        var keyTile = shared.SubView(0, tileFloats);             // [StreamTile, 8T] k'
        var valueTile = shared.SubView(tileFloats, tileFloats);  // [StreamTile, 8T] v

        for (var j0 = gLo; j0 <= gHi; j0 += p.StreamTile)
        {
            var count = Min(p.StreamTile, gHi - j0 + 1);
            Group.Barrier();
            for (var e = tid; e < count * paddedDim; e += threads)
            {
                var jj = e / paddedDim;
                var d = e - jj * paddedDim;
                var kv = 0f;
                var vv = 0f;
                if (d < p.D)
                {
                    var src = (kvRow0 + j0 + jj) * p.D + d;
                    kv = scoredKeys[src];
                    vv = v[src];
                }
                keyTile[e] = kv;
                valueTile[e] = vv;
            }
            Group.Barrier();

            for (var jj = 0; jj < count; jj++)
            {
                var t = jj * paddedDim + lane;
                var k0 = keyTile[t];
                var k1 = keyTile[t + lanes];
                var k2 = keyTile[t + 2 * lanes];
                var k3 = keyTile[t + 3 * lanes];
                var k4 = keyTile[t + 4 * lanes];
                var k5 = keyTile[t + 5 * lanes];
                var k6 = keyTile[t + 6 * lanes];
                var k7 = keyTile[t + 7 * lanes];
                var dot = default(TReduction).Sum<TLanes>(
                    q0 * k0 + q1 * k1 + q2 * k2 + q3 * k3 + q4 * k4 + q5 * k5 + q6 * k6 + q7 * k7);
                var dOv = default(TReduction).Sum<TLanes>(
                    g0 * valueTile[t] + g1 * valueTile[t + lanes] + g2 * valueTile[t + 2 * lanes]
                    + g3 * valueTile[t + 3 * lanes] + g4 * valueTile[t + 4 * lanes] + g5 * valueTile[t + 5 * lanes]
                    + g6 * valueTile[t + 6 * lanes] + g7 * valueTile[t + 7 * lanes]);
                var j = j0 + jj;
                if (j < jLo || j > jHi) continue;

                var z = p.Scale * dot - slope * Abs(ip - j);
                if (hasBias) z += keyBias[kvRow0 + j];
                var dz = XMath.Exp(z - rowLse) * (dOv - rowDelta);
                a0 += dz * k0;
                a1 += dz * k1;
                a2 += dz * k2;
                a3 += dz * k3;
                a4 += dz * k4;
                a5 += dz * k5;
                a6 += dz * k6;
                a7 += dz * k7;
            }
        }

        if (!valid) return;
        if (lane == 0) delta[row] = rowDelta;
        var s = p.Scale;
        AttentionLanes.StorePadded(dq, off, lane, dims, s * a0);
        AttentionLanes.StorePadded(dq, off, lane + lanes, dims, s * a1);
        AttentionLanes.StorePadded(dq, off, lane + 2 * lanes, dims, s * a2);
        AttentionLanes.StorePadded(dq, off, lane + 3 * lanes, dims, s * a3);
        AttentionLanes.StorePadded(dq, off, lane + 4 * lanes, dims, s * a4);
        AttentionLanes.StorePadded(dq, off, lane + 5 * lanes, dims, s * a5);
        AttentionLanes.StorePadded(dq, off, lane + 6 * lanes, dims, s * a6);
        AttentionLanes.StorePadded(dq, off, lane + 7 * lanes, dims, s * a7);
    }

    /// <summary>
    /// Version 1, dK/dV half (after <see cref="QueryKernel{TLanes, TScore, TReduction}"/>, which writes Delta). Grid:
    /// B Hkv ceil(M / R) groups of R = Group.DimX / T key rows; dynamic shared memory 2 StreamTile 8T floats
    /// (q and dO tiles). Each key row sums over its kv head's g query heads in order h = 0..g-1, then queries in
    /// ascending order, so the sums are the same on every run.
    /// </summary>
    public static void KeyKernel<TLanes, TScore, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> k,          // [B, Hkv, M, D] raw keys, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M], read only for Distance
        ArrayView1D<float, Stride1D.Dense> keyNorm,    // [B, Hkv, M] |k|, read only with NormalizeKeys
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H]
        ArrayView1D<float, Stride1D.Dense> dO,         // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [B, H, N]
        ArrayView1D<float, Stride1D.Dense> delta,      // [B, H, N]
        ArrayView1D<float, Stride1D.Dense> dk,         // [B, Hkv, M, D] out
        ArrayView1D<float, Stride1D.Dense> dv,         // [B, Hkv, M, D] out
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var paddedDim = 8 * lanes;
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rowsPerGroup = threads / lanes;

        var bhk = Grid.IdxX / p.RowTiles; // b Hkv + kv head
        var j0 = (Grid.IdxX - bhk * p.RowTiles) * rowsPerGroup;
        var hk = bhk % p.Hkv;
        var b = bhk / p.Hkv;

        var j = j0 + tid / lanes;
        var valid = j < p.M;
        // Queries that see key j are exactly iLo..iHi: i' = i + Offset >= j (causal), |i' - j| <= W (window).
        var iLo = 0;
        var iHi = p.N - 1;
        if (p.Causal != 0) iLo = Max(iLo, j - p.Offset);
        if (p.Window >= 0)
        {
            iLo = Max(iLo, j - p.Offset - p.Window);
            iHi = Min(iHi, j - p.Offset + p.Window);
        }
        if (!valid) iHi = -1;
        var jLast = Min(j0 + rowsPerGroup, p.M) - 1;
        var gLo = 0;
        var gHi = p.N - 1;
        if (p.Causal != 0) gLo = Max(gLo, j0 - p.Offset);
        if (p.Window >= 0)
        {
            gLo = Max(gLo, j0 - p.Offset - p.Window);
            gHi = Min(gHi, jLast - p.Offset + p.Window);
        }

        var dims = valid ? p.D : 0;
        var keyRow = bhk * p.M + j;
        var off = valid ? keyRow * p.D : 0;
        var k0 = AttentionLanes.LoadPadded(scoredKeys, off, lane, dims);
        var k1 = AttentionLanes.LoadPadded(scoredKeys, off, lane + lanes, dims);
        var k2 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 2 * lanes, dims);
        var k3 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 3 * lanes, dims);
        var k4 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 4 * lanes, dims);
        var k5 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 5 * lanes, dims);
        var k6 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 6 * lanes, dims);
        var k7 = AttentionLanes.LoadPadded(scoredKeys, off, lane + 7 * lanes, dims);
        var v0 = AttentionLanes.LoadPadded(v, off, lane, dims);
        var v1 = AttentionLanes.LoadPadded(v, off, lane + lanes, dims);
        var v2 = AttentionLanes.LoadPadded(v, off, lane + 2 * lanes, dims);
        var v3 = AttentionLanes.LoadPadded(v, off, lane + 3 * lanes, dims);
        var v4 = AttentionLanes.LoadPadded(v, off, lane + 4 * lanes, dims);
        var v5 = AttentionLanes.LoadPadded(v, off, lane + 5 * lanes, dims);
        var v6 = AttentionLanes.LoadPadded(v, off, lane + 6 * lanes, dims);
        var v7 = AttentionLanes.LoadPadded(v, off, lane + 7 * lanes, dims);
        var bias = hasBias && valid ? keyBias[keyRow] : 0f;
        float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, a4 = 0f, a5 = 0f, a6 = 0f, a7 = 0f; // sum_i dz_ij q_i
        float w0 = 0f, w1 = 0f, w2 = 0f, w3 = 0f, w4 = 0f, w5 = 0f, w6 = 0f, w7 = 0f; // sum_i P_ij dO_i
        var dzSum = 0f;

        var shared = SharedMemory.GetDynamic<float>();
        var tileFloats = p.StreamTile * paddedDim;
        var queryTile = shared.SubView(0, tileFloats);             // [StreamTile, 8T] q
        var gradTile = shared.SubView(tileFloats, tileFloats);     // [StreamTile, 8T] dO

        for (var hq = 0; hq < p.Group; hq++)
        {
            var h = hk * p.Group + hq;
            var bh = b * p.H + h;
            var slope = slopes[h];
            for (var i0 = gLo; i0 <= gHi; i0 += p.StreamTile)
            {
                var count = Min(p.StreamTile, gHi - i0 + 1);
                Group.Barrier();
                for (var e = tid; e < count * paddedDim; e += threads)
                {
                    var ii = e / paddedDim;
                    var d = e - ii * paddedDim;
                    var qv = 0f;
                    var gv = 0f;
                    if (d < p.D)
                    {
                        var src = (bh * p.N + i0 + ii) * p.D + d;
                        qv = q[src];
                        gv = dO[src];
                    }
                    queryTile[e] = qv;
                    gradTile[e] = gv;
                }
                Group.Barrier();

                for (var ii = 0; ii < count; ii++)
                {
                    var t = ii * paddedDim + lane;
                    var x0 = queryTile[t];
                    var x1 = queryTile[t + lanes];
                    var x2 = queryTile[t + 2 * lanes];
                    var x3 = queryTile[t + 3 * lanes];
                    var x4 = queryTile[t + 4 * lanes];
                    var x5 = queryTile[t + 5 * lanes];
                    var x6 = queryTile[t + 6 * lanes];
                    var x7 = queryTile[t + 7 * lanes];
                    var y0 = gradTile[t];
                    var y1 = gradTile[t + lanes];
                    var y2 = gradTile[t + 2 * lanes];
                    var y3 = gradTile[t + 3 * lanes];
                    var y4 = gradTile[t + 4 * lanes];
                    var y5 = gradTile[t + 5 * lanes];
                    var y6 = gradTile[t + 6 * lanes];
                    var y7 = gradTile[t + 7 * lanes];
                    var dot = default(TReduction).Sum<TLanes>(
                        x0 * k0 + x1 * k1 + x2 * k2 + x3 * k3 + x4 * k4 + x5 * k5 + x6 * k6 + x7 * k7);
                    var dOv = default(TReduction).Sum<TLanes>(
                        y0 * v0 + y1 * v1 + y2 * v2 + y3 * v3 + y4 * v4 + y5 * v5 + y6 * v6 + y7 * v7);
                    var i = i0 + ii;
                    if (i < iLo || i > iHi) continue;

                    var queryRow = bh * p.N + i;
                    var z = p.Scale * dot + bias - slope * Abs(i + p.Offset - j);
                    var prob = XMath.Exp(z - lse[queryRow]);
                    var dz = prob * (dOv - delta[queryRow]);
                    dzSum += dz;
                    a0 += dz * x0;
                    a1 += dz * x1;
                    a2 += dz * x2;
                    a3 += dz * x3;
                    a4 += dz * x4;
                    a5 += dz * x5;
                    a6 += dz * x6;
                    a7 += dz * x7;
                    w0 += prob * y0;
                    w1 += prob * y1;
                    w2 += prob * y2;
                    w3 += prob * y3;
                    w4 += prob * y4;
                    w5 += prob * y5;
                    w6 += prob * y6;
                    w7 += prob * y7;
                }
            }
        }

        // dk' = s (sum dz q - [Distance] (sum dz) k').
        var s = p.Scale;
        var biasGrad = hasBias ? dzSum : 0f;
        a0 = s * (a0 - biasGrad * k0);
        a1 = s * (a1 - biasGrad * k1);
        a2 = s * (a2 - biasGrad * k2);
        a3 = s * (a3 - biasGrad * k3);
        a4 = s * (a4 - biasGrad * k4);
        a5 = s * (a5 - biasGrad * k5);
        a6 = s * (a6 - biasGrad * k6);
        a7 = s * (a7 - biasGrad * k7);
        if (p.NormalizeKeys != 0)
        {
            // dk = (rho/|k|)(dk' - u (u . dk')), u = k/|k| divided as the maths writes it: u from the rounded k' = f k
            // or from k times 1/|k| would leave an O(eps |dk'|) residue where the exact projection is 0 (D = 1).
            var norm = valid ? keyNorm[keyRow] : 0f;
            var above = norm > p.KeyEpsilon;
            var unit = above ? norm : float.PositiveInfinity; // x / inf = 0: no projection at or below eps
            var u0 = AttentionLanes.LoadPadded(k, off, lane, dims) / unit;
            var u1 = AttentionLanes.LoadPadded(k, off, lane + lanes, dims) / unit;
            var u2 = AttentionLanes.LoadPadded(k, off, lane + 2 * lanes, dims) / unit;
            var u3 = AttentionLanes.LoadPadded(k, off, lane + 3 * lanes, dims) / unit;
            var u4 = AttentionLanes.LoadPadded(k, off, lane + 4 * lanes, dims) / unit;
            var u5 = AttentionLanes.LoadPadded(k, off, lane + 5 * lanes, dims) / unit;
            var u6 = AttentionLanes.LoadPadded(k, off, lane + 6 * lanes, dims) / unit;
            var u7 = AttentionLanes.LoadPadded(k, off, lane + 7 * lanes, dims) / unit;
            // Uniform over the group (NormalizeKeys is), so every lane reaches the reduction.
            var project = default(TReduction).Sum<TLanes>(
                u0 * a0 + u1 * a1 + u2 * a2 + u3 * a3 + u4 * a4 + u5 * a5 + u6 * a6 + u7 * a7);
            // At or below eps, k' = (rho/eps) k and u = 0 here, so dk = (rho/eps) dk'.
            var factor = above ? p.KeyRadius / norm : p.KeyRadius / p.KeyEpsilon;
            a0 = factor * (a0 - project * u0);
            a1 = factor * (a1 - project * u1);
            a2 = factor * (a2 - project * u2);
            a3 = factor * (a3 - project * u3);
            a4 = factor * (a4 - project * u4);
            a5 = factor * (a5 - project * u5);
            a6 = factor * (a6 - project * u6);
            a7 = factor * (a7 - project * u7);
        }

        if (!valid) return;
        AttentionLanes.StorePadded(dk, off, lane, dims, a0);
        AttentionLanes.StorePadded(dk, off, lane + lanes, dims, a1);
        AttentionLanes.StorePadded(dk, off, lane + 2 * lanes, dims, a2);
        AttentionLanes.StorePadded(dk, off, lane + 3 * lanes, dims, a3);
        AttentionLanes.StorePadded(dk, off, lane + 4 * lanes, dims, a4);
        AttentionLanes.StorePadded(dk, off, lane + 5 * lanes, dims, a5);
        AttentionLanes.StorePadded(dk, off, lane + 6 * lanes, dims, a6);
        AttentionLanes.StorePadded(dk, off, lane + 7 * lanes, dims, a7);
        AttentionLanes.StorePadded(dv, off, lane, dims, w0);
        AttentionLanes.StorePadded(dv, off, lane + lanes, dims, w1);
        AttentionLanes.StorePadded(dv, off, lane + 2 * lanes, dims, w2);
        AttentionLanes.StorePadded(dv, off, lane + 3 * lanes, dims, w3);
        AttentionLanes.StorePadded(dv, off, lane + 4 * lanes, dims, w4);
        AttentionLanes.StorePadded(dv, off, lane + 5 * lanes, dims, w5);
        AttentionLanes.StorePadded(dv, off, lane + 6 * lanes, dims, w6);
        AttentionLanes.StorePadded(dv, off, lane + 7 * lanes, dims, w7);
    }

    private static int Min(int a, int b) => a < b ? a : b;

    private static int Max(int a, int b) => a > b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
