// Attention backward, FlashAttention-2 style: P is recomputed from the forward's saved row statistics, nothing of size N x M is stored, and every
// gradient row is owned by one T-lane segment, so the result is deterministic (no floating-point atomics).
//
// Versions (time each with `routekit-perf attention --variant N`):
//   1. AttentionBackward.QueryKernel + AttentionBackward.KeyKernel:
//      QueryKernel (parallel over query rows, the forward's layout): Delta_i = dO_i . O_i, then over the row's key band
//      P_ij = exp((z_ij - m_i) - log l_i), dz_ij = P_ij (dO_i . v_j - Delta_i), dq_i = s sum_j dz_ij k'_j.
//      KeyKernel (parallel over key rows, T lanes each, query and dO tiles in shared memory): over the g = H / Hkv
//      query heads of the key's kv head, in a fixed order, and each head's query band:
//      dv_j = sum_i P_ij dO_i, dk'_j = s sum_i dz_ij q_i (minus s (sum_i dz_ij) k'_j for Distance), then through the
//      normalisation dk_j = (rho/|k_j|)(I - u u^T) dk'_j, u = k_j/|k_j| (rho/eps dk'_j at or below eps), fused.
//      Deterministic and non-deterministic requests share it. Specialised on T, Dot/Distance and the row reduction.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; query head h reads kv head
// h / (H / Hkv). Scores as in AttentionForward.cs, in the same operation order (z = s dot - brake, then + bias), so
// z_ij is bit for bit the forward's and z_ij - m_i is exact near the row max.
//
// 2026-12-02: P from (m_i, log l_i) instead of exp(z_ij - Lse_i). A float32 Lse of order 1e3-1e5 (Distance scores
// with key norms in the hundreds) is rounded by up to ulp(Lse)/2 (2e-3 at 3e4), which every recomputed probability
// of the row carried; the statistics carry no large magnitude that is not also in z.
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
        ArrayView1D<float, Stride1D.Dense> keyLengths, // [B] real keys per batch element (exact float integers), read with KeyPadding
        ArrayView1D<float, Stride1D.Dense> o,          // [B, H, N, D] the forward's output
        ArrayView1D<float, Stride1D.Dense> dO,         // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [B, H, N, 2] (m_i, log l_i) from the forward
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
        var tile = QueryRowTile.Locate(p, lanes, keyLengths);
        var (lane, bh, kvRow0, i, valid, ip) = (tile.Lane, tile.BatchHead, tile.KeyRow0, tile.Row, tile.Valid, tile.Position);
        var (jLo, jHi, gLo, gHi) = (tile.KeyLo, tile.KeyHi, tile.GroupKeyLo, tile.GroupKeyHi);
        var slope = slopes[tile.Head];

        var dims = valid ? p.D : 0;
        var row = bh * p.N + i;
        var off = valid ? row * p.D : 0;
        var qi = LaneVector.Load(q, off, lane, lanes, dims);
        var gi = LaneVector.Load(dO, off, lane, lanes, dims);
        // Delta_i = dO_i . O_i (FA2's preprocess), fused here: the row's dO is already in registers.
        var rowDelta = default(TReduction).Sum<TLanes>(gi.Dot(LaneVector.Load(o, off, lane, lanes, dims)));
        // A row with no visible key never forms a probability; +inf keeps exp(-inf) = 0 should it ever do.
        var rowMax = valid ? stats[2 * row] : float.PositiveInfinity;
        var rowLogSum = valid ? stats[2 * row + 1] : 0f;
        var acc = default(LaneVector); // sum_j dz_ij k'_j

        var shared = SharedMemory.GetDynamic<float>();
        var tileFloats = p.StreamTile * paddedDim;
        var keyTile = shared.SubView(0, tileFloats);             // [StreamTile, 8T] k'
        var valueTile = shared.SubView(tileFloats, tileFloats);  // [StreamTile, 8T] v

        for (var j0 = gLo; j0 <= gHi; j0 += p.StreamTile)
        {
            var count = Min(p.StreamTile, gHi - j0 + 1);
            Group.Barrier();
            AttentionBand.FillTiles(scoredKeys, v, kvRow0 + j0, count, p.D, paddedDim, keyTile, valueTile);
            Group.Barrier();

            for (var jj = 0; jj < count; jj++)
            {
                var t = jj * paddedDim + lane;
                var kj = LaneVector.FromTile(keyTile, t, lanes);
                var dot = default(TReduction).Sum<TLanes>(qi.Dot(kj));
                var dOv = default(TReduction).Sum<TLanes>(gi.Dot(LaneVector.FromTile(valueTile, t, lanes)));
                var j = j0 + jj;
                if (j < jLo || j > jHi) continue;

                var z = p.Scale * dot - slope * Abs(ip - j);
                if (hasBias) z += keyBias[kvRow0 + j];
                var dz = XMath.Exp(z - rowMax - rowLogSum) * (dOv - rowDelta);
                acc.AddScaled(dz, kj);
            }
        }

        if (!valid) return;
        if (lane == 0) delta[row] = rowDelta;
        acc.Store(dq, off, lane, lanes, dims, p.Scale);
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
        ArrayView1D<float, Stride1D.Dense> keyLengths, // [B] real keys per batch element (exact float integers), read with KeyPadding
        ArrayView1D<float, Stride1D.Dense> dO,         // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [B, H, N, 2] (m_i, log l_i) from the forward
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
        AttentionBand.QueriesOf(p, j, j, out var iLo, out var iHi);
        if (!valid) iHi = -1;
        AttentionBand.QueriesOf(p, j0, Min(j0 + rowsPerGroup, p.M) - 1, out var gLo, out var gHi);
        if (p.KeyPadding != 0)
        {
            // Padding keys (j >= the element's length) are seen by no query: dk = dv = 0.
            var length = (int)keyLengths[b];
            if (j >= length) iHi = -1;
            if (j0 >= length) gHi = -1;
        }

        var dims = valid ? p.D : 0;
        var keyRow = bhk * p.M + j;
        var off = valid ? keyRow * p.D : 0;
        var kj = LaneVector.Load(scoredKeys, off, lane, lanes, dims);
        var vj = LaneVector.Load(v, off, lane, lanes, dims);
        var bias = hasBias && valid ? keyBias[keyRow] : 0f;
        var dkScored = default(LaneVector); // sum_i dz_ij q_i
        var dvj = default(LaneVector);      // sum_i P_ij dO_i
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
                AttentionBand.FillTiles(q, dO, bh * p.N + i0, count, p.D, paddedDim, queryTile, gradTile);
                Group.Barrier();

                for (var ii = 0; ii < count; ii++)
                {
                    var t = ii * paddedDim + lane;
                    var qi = LaneVector.FromTile(queryTile, t, lanes);
                    var gi = LaneVector.FromTile(gradTile, t, lanes);
                    var dot = default(TReduction).Sum<TLanes>(qi.Dot(kj));
                    var dOv = default(TReduction).Sum<TLanes>(gi.Dot(vj));
                    var i = i0 + ii;
                    if (i < iLo || i > iHi) continue;

                    var queryRow = bh * p.N + i;
                    var z = p.Scale * dot - slope * Abs(i + p.Offset - j);
                    if (hasBias) z += bias;
                    var prob = XMath.Exp(z - stats[2 * queryRow] - stats[2 * queryRow + 1]);
                    var dz = prob * (dOv - delta[queryRow]);
                    dzSum += dz;
                    dkScored.AddScaled(dz, qi);
                    dvj.AddScaled(prob, gi);
                }
            }
        }

        // dk' = s (sum dz q - [Distance] (sum dz) k').
        if (hasBias) dkScored.AddScaled(-dzSum, kj);
        dkScored.Scale(p.Scale);
        if (p.NormalizeKeys != 0)
        {
            // Uniform over the group (NormalizeKeys is), so every lane reaches the reduction.
            dkScored = AttentionKeys.ChainThroughNormalisation<TLanes, TReduction>(
                dkScored, LaneVector.Load(k, off, lane, lanes, dims), valid ? keyNorm[keyRow] : 0f, p.KeyRadius, p.KeyEpsilon);
        }

        if (!valid) return;
        dkScored.Store(dk, off, lane, lanes, dims, 1f);
        dvj.Store(dv, off, lane, lanes, dims, 1f);
    }

    private static int Min(int a, int b) => a < b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
