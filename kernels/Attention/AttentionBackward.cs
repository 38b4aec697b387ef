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
//   2. AttentionBackward.TiledQueryKernel + AttentionBackward.TiledKeyKernel (2026-12-02): version 1's split (dQ over
//      query blocks, then dK/dV over key blocks, no atomics) with forward version 2's register tiles. Each kernel's
//      group owns R = 2 Group.DimX / T rows of its own side and streams the other side's tiles through shared memory;
//      per tile every thread forms 2 x 4 score and dO . v tiles (AttentionTiles.DotTile: the forward's exact sums, so
//      z_ij - m_i is the forward's bit for bit), writes P and dz to a shared [R, tile] buffer, then adds them into its
//      2 rows x 8 dims register tiles: dq (+= dz k') in the first kernel, dk' (+= dz q) and dv (+= P dO) in the second.
//      The dQ kernel also writes Delta_i = dO_i . O_i; the dK/dV kernel walks the g query heads of its kv head in order,
//      then the query band ascending: deterministic. Pair it with forward version 2, whose statistics it reads.
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
// 2026-12-02, version 2: no shuffles in the hot loops (Dot tiles read 6 shared rows for 8 products) and each shared
// load of q/dO or k'/v feeds two register rows; the P and dz buffers cost two extra barriers per tile. Not timed on a
// GPU (none lent); the CPU simulator's timings say nothing about it.
using System.Runtime.CompilerServices;
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
        ("TiledQueryKernel+TiledKeyKernel", "version 1's split with 2 x 4 score tiles and 2-row register tiles of dQ, dK and dV; deterministic"),
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

    /// <summary>
    /// Version 2, dQ half. Grid: B H ceil(N / R) groups of R = 2 Group.DimX / T query rows; dynamic shared memory
    /// <see cref="TiledQuerySharedFloats"/> floats. Writes Delta for <see cref="TiledKeyKernel{TLanes, TScore, TReduction}"/> and dq.
    /// </summary>
    public static void TiledQueryKernel<TLanes, TScore>(
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
    {
        var lanes = default(TLanes).Count;
        // Shared rows are 8T + 1 floats apart, so the rows a warp reads at the same d fall in different banks.
        var stride = 8 * lanes + 1;
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rows = AttentionTiles.RowsPerThread * threads / lanes; // R
        var keys = p.StreamTile;
        var quads = keys / AttentionTiles.ColumnsPerTile;

        var bh = Grid.IdxX / p.RowTiles;
        var i0 = (Grid.IdxX - bh * p.RowTiles) * rows;
        var head = bh % p.H;
        var kvRow0 = (bh / p.H * p.Hkv + head / p.Group) * p.M;
        var slope = slopes[head];
        var keyLast = AttentionTiles.LastKey(p, keyLengths, bh / p.H);
        AttentionBand.KeysOf(p, i0, Min(i0 + rows, p.N) - 1, out var gLo, out var gHi);
        gHi = Min(gHi, keyLast);

        var shared = SharedMemory.GetDynamic<float>();
        var rowFloats = rows * stride;
        var keyFloats = keys * stride;
        var queryTile = shared.SubView(0, rowFloats);                           // [R, 8T + 1] q
        var gradTile = shared.SubView(rowFloats, rowFloats);                    // [R, 8T + 1] dO
        var keyTile = shared.SubView(2 * rowFloats, keyFloats);                 // [tile, 8T + 1] k'
        var valueTile = shared.SubView(2 * rowFloats + keyFloats, keyFloats);   // [tile, 8T + 1] v
        var dzBase = 2 * (rowFloats + keyFloats);
        var dzTile = shared.SubView(dzBase, rows * keys);                       // [R, tile] dz
        var rowMax = shared.SubView(dzBase + rows * keys, rows);                // [R] m_i
        var rowLogSum = shared.SubView(dzBase + rows * keys + rows, rows);      // [R] log l_i
        var rowDelta = shared.SubView(dzBase + rows * keys + 2 * rows, rows);   // [R] Delta_i

        var valid = Min(rows, p.N - i0);
        AttentionTiles.FillRows(q, bh * p.N + i0, valid, rows, p.D, stride, queryTile);
        AttentionTiles.FillRows(dO, bh * p.N + i0, valid, rows, p.D, stride, gradTile);
        Group.Barrier();
        for (var r = tid; r < rows; r += threads)
        {
            var row = bh * p.N + i0 + r;
            var rowDot = 0f;
            if (r < valid)
            {
                for (var d = 0; d < p.D; d++) rowDot += gradTile[r * stride + d] * o[row * p.D + d];
                delta[row] = rowDot;
            }
            // A padding row never forms a probability (its scores are all masked); +inf would keep exp at 0 if it did.
            rowMax[r] = r < valid ? stats[2 * row] : float.PositiveInfinity;
            rowLogSum[r] = r < valid ? stats[2 * row + 1] : 0f;
            rowDelta[r] = rowDot;
        }

        var r0 = AttentionTiles.RowsPerThread * (tid / lanes);
        var acc0 = default(LaneVector); // row r0: sum_j dz_ij k'_j
        var acc1 = default(LaneVector); // row r0 + 1

        for (var j0 = gLo; j0 <= gHi; j0 += keys)
        {
            var count = Min(keys, gHi - j0 + 1);
            Group.Barrier();
            AttentionBand.FillTiles(scoredKeys, v, kvRow0 + j0, count, p.D, stride, keyTile, valueTile);
            Group.Barrier();

            for (var e = tid; e < rows / 2 * quads; e += threads)
            {
                var rp = e / quads;
                var c = e - rp * quads;
                var ra = 2 * rp;
                var (ka, kb, kc, kd) = (c * stride, (c + quads) * stride, (c + 2 * quads) * stride, (c + 3 * quads) * stride);
                var z = DotTile.Compute(queryTile, ra * stride, (ra + 1) * stride, keyTile, ka, kb, kc, kd, p.D);
                var g = DotTile.Compute(gradTile, ra * stride, (ra + 1) * stride, valueTile, ka, kb, kc, kd, p.D);
                var (ia, ib, ja) = (i0 + ra, i0 + ra + 1, j0 + c);
                var (ma, la, da) = (rowMax[ra], rowLogSum[ra], rowDelta[ra]);
                var (mb, lb, db) = (rowMax[ra + 1], rowLogSum[ra + 1], rowDelta[ra + 1]);
                var sa = ra * keys + c;
                var sb = sa + keys;
                dzTile[sa] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S00, ia, ja, keyLast, slope, keyBias, kvRow0), ma, la, g.S00, da);
                dzTile[sa + quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S01, ia, ja + quads, keyLast, slope, keyBias, kvRow0), ma, la, g.S01, da);
                dzTile[sa + 2 * quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S02, ia, ja + 2 * quads, keyLast, slope, keyBias, kvRow0), ma, la, g.S02, da);
                dzTile[sa + 3 * quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S03, ia, ja + 3 * quads, keyLast, slope, keyBias, kvRow0), ma, la, g.S03, da);
                dzTile[sb] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S10, ib, ja, keyLast, slope, keyBias, kvRow0), mb, lb, g.S10, db);
                dzTile[sb + quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S11, ib, ja + quads, keyLast, slope, keyBias, kvRow0), mb, lb, g.S11, db);
                dzTile[sb + 2 * quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S12, ib, ja + 2 * quads, keyLast, slope, keyBias, kvRow0), mb, lb, g.S12, db);
                dzTile[sb + 3 * quads] = Dz(AttentionTiles.MaskedScore<TScore>(p, z.S13, ib, ja + 3 * quads, keyLast, slope, keyBias, kvRow0), mb, lb, g.S13, db);
            }
            Group.Barrier();

            var wa = r0 * keys;
            for (var jj = 0; jj < count; jj++)
            {
                var key = LaneVector.FromTile(keyTile, jj * stride + lane, lanes);
                acc0.AddScaled(dzTile[wa + jj], key);
                acc1.AddScaled(dzTile[wa + keys + jj], key);
            }
        }

        if (i0 + r0 < p.N) acc0.Store(dq, (bh * p.N + i0 + r0) * p.D, lane, lanes, p.D, p.Scale);
        if (i0 + r0 + 1 < p.N) acc1.Store(dq, (bh * p.N + i0 + r0 + 1) * p.D, lane, lanes, p.D, p.Scale);
    }

    /// <summary>Dynamic shared memory of <see cref="TiledQueryKernel{TLanes, TScore}"/> in floats.</summary>
    public static int TiledQuerySharedFloats(int rows, int keys, int lanes) =>
        2 * (rows + keys) * (8 * lanes + 1) + rows * keys + 3 * rows;

    /// <summary>
    /// Version 2, dK/dV half (after <see cref="TiledQueryKernel{TLanes, TScore}"/>, which writes Delta). Grid:
    /// B Hkv ceil(M / R) groups of R = 2 Group.DimX / T key rows; dynamic shared memory
    /// <see cref="TiledKeySharedFloats"/> floats. Sums over the kv head's g query heads in order h = 0..g-1, then
    /// query tiles ascending and queries ascending within a tile: the same sums on every run.
    /// </summary>
    public static void TiledKeyKernel<TLanes, TScore, TReduction>(
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
        // Shared rows are 8T + 1 floats apart, so the rows a warp reads at the same d fall in different banks.
        var stride = 8 * lanes + 1;
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rows = AttentionTiles.RowsPerThread * threads / lanes; // R key rows
        var queries = p.StreamTile;
        var quads = queries / AttentionTiles.ColumnsPerTile;

        var bhk = Grid.IdxX / p.RowTiles; // b Hkv + kv head
        var j0 = (Grid.IdxX - bhk * p.RowTiles) * rows;
        var hk = bhk % p.Hkv;
        var b = bhk / p.Hkv;
        var kvRow0 = bhk * p.M;
        var keyLast = AttentionTiles.LastKey(p, keyLengths, b);
        AttentionBand.QueriesOf(p, j0, Min(j0 + rows, p.M) - 1, out var gLo, out var gHi);
        if (j0 > keyLast) gHi = -1; // every key of the block is padding: dk = dv = 0

        var shared = SharedMemory.GetDynamic<float>();
        var rowFloats = rows * stride;
        var queryFloats = queries * stride;
        var keyTile = shared.SubView(0, rowFloats);                                 // [R, 8T + 1] k'
        var valueTile = shared.SubView(rowFloats, rowFloats);                       // [R, 8T + 1] v
        var queryTile = shared.SubView(2 * rowFloats, queryFloats);                 // [tile, 8T + 1] q
        var gradTile = shared.SubView(2 * rowFloats + queryFloats, queryFloats);    // [tile, 8T + 1] dO
        var pBase = 2 * (rowFloats + queryFloats);
        var probTile = shared.SubView(pBase, rows * queries);                       // [R, tile] P
        var dzTile = shared.SubView(pBase + rows * queries, rows * queries);        // [R, tile] dz
        var queryMax = shared.SubView(pBase + 2 * rows * queries, queries);         // [tile] m_i
        var queryLogSum = shared.SubView(pBase + 2 * rows * queries + queries, queries); // [tile] log l_i
        var queryDelta = shared.SubView(pBase + 2 * rows * queries + 2 * queries, queries); // [tile] Delta_i

        var validKeys = Min(rows, p.M - j0);
        AttentionTiles.FillRows(scoredKeys, kvRow0 + j0, validKeys, rows, p.D, stride, keyTile);
        AttentionTiles.FillRows(v, kvRow0 + j0, validKeys, rows, p.D, stride, valueTile);

        var r0 = AttentionTiles.RowsPerThread * (tid / lanes);
        var dk0 = default(LaneVector); // key r0: sum_i dz_ij q_i
        var dk1 = default(LaneVector); // key r0 + 1
        var dv0 = default(LaneVector); // key r0: sum_i P_ij dO_i
        var dv1 = default(LaneVector); // key r0 + 1
        var (dzSum0, dzSum1) = (0f, 0f);

        for (var hq = 0; hq < p.Group; hq++)
        {
            var h = hk * p.Group + hq;
            var bh = b * p.H + h;
            var slope = slopes[h];
            for (var i0 = gLo; i0 <= gHi; i0 += queries)
            {
                var count = Min(queries, gHi - i0 + 1);
                Group.Barrier(); // the previous tile's P and dz are consumed (and the key tiles are filled)
                AttentionBand.FillTiles(q, dO, bh * p.N + i0, count, p.D, stride, queryTile, gradTile);
                for (var ii = tid; ii < queries; ii += threads)
                {
                    var row = bh * p.N + i0 + ii;
                    queryMax[ii] = ii < count ? stats[2 * row] : float.PositiveInfinity;
                    queryLogSum[ii] = ii < count ? stats[2 * row + 1] : 0f;
                    queryDelta[ii] = ii < count ? delta[row] : 0f;
                }
                Group.Barrier();

                for (var e = tid; e < rows / 2 * quads; e += threads)
                {
                    var rp = e / quads;
                    var c = e - rp * quads;
                    var ra = 2 * rp;
                    var (qa, qb, qc, qd) = (c * stride, (c + quads) * stride, (c + 2 * quads) * stride, (c + 3 * quads) * stride);
                    var z = DotTile.Compute(keyTile, ra * stride, (ra + 1) * stride, queryTile, qa, qb, qc, qd, p.D);
                    var g = DotTile.Compute(valueTile, ra * stride, (ra + 1) * stride, gradTile, qa, qb, qc, qd, p.D);
                    var (ja, jb, ia) = (j0 + ra, j0 + ra + 1, i0 + c);
                    var sa = ra * queries + c;
                    var sb = sa + queries;
                    Put(probTile, dzTile, sa, AttentionTiles.MaskedScore<TScore>(p, z.S00, ia, ja, keyLast, slope, keyBias, kvRow0), g.S00, c, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sa + quads, AttentionTiles.MaskedScore<TScore>(p, z.S01, ia + quads, ja, keyLast, slope, keyBias, kvRow0), g.S01, c + quads, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sa + 2 * quads, AttentionTiles.MaskedScore<TScore>(p, z.S02, ia + 2 * quads, ja, keyLast, slope, keyBias, kvRow0), g.S02, c + 2 * quads, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sa + 3 * quads, AttentionTiles.MaskedScore<TScore>(p, z.S03, ia + 3 * quads, ja, keyLast, slope, keyBias, kvRow0), g.S03, c + 3 * quads, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sb, AttentionTiles.MaskedScore<TScore>(p, z.S10, ia, jb, keyLast, slope, keyBias, kvRow0), g.S10, c, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sb + quads, AttentionTiles.MaskedScore<TScore>(p, z.S11, ia + quads, jb, keyLast, slope, keyBias, kvRow0), g.S11, c + quads, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sb + 2 * quads, AttentionTiles.MaskedScore<TScore>(p, z.S12, ia + 2 * quads, jb, keyLast, slope, keyBias, kvRow0), g.S12, c + 2 * quads, queryMax, queryLogSum, queryDelta);
                    Put(probTile, dzTile, sb + 3 * quads, AttentionTiles.MaskedScore<TScore>(p, z.S13, ia + 3 * quads, jb, keyLast, slope, keyBias, kvRow0), g.S13, c + 3 * quads, queryMax, queryLogSum, queryDelta);
                }
                Group.Barrier();

                var wa = r0 * queries;
                for (var ii = 0; ii < count; ii++)
                {
                    var t = ii * stride + lane;
                    var qi = LaneVector.FromTile(queryTile, t, lanes);
                    var gi = LaneVector.FromTile(gradTile, t, lanes);
                    var (dza, dzb) = (dzTile[wa + ii], dzTile[wa + queries + ii]);
                    dk0.AddScaled(dza, qi);
                    dk1.AddScaled(dzb, qi);
                    dv0.AddScaled(probTile[wa + ii], gi);
                    dv1.AddScaled(probTile[wa + queries + ii], gi);
                    dzSum0 += dza;
                    dzSum1 += dzb;
                }
            }
        }

        // The k' tile is read below by threads that did not fill it; without a query tile (a padding-only block, an
        // empty band) no barrier has separated the fill from that read yet.
        Group.Barrier();
        FinishKey<TLanes, TReduction>(dk0, dv0, dzSum0, LaneVector.FromTile(keyTile, r0 * stride + lane, lanes),
            k, keyNorm, dk, dv, kvRow0, j0 + r0, lane, hasBias, p);
        FinishKey<TLanes, TReduction>(dk1, dv1, dzSum1, LaneVector.FromTile(keyTile, (r0 + 1) * stride + lane, lanes),
            k, keyNorm, dk, dv, kvRow0, j0 + r0 + 1, lane, hasBias, p);
    }

    /// <summary>Dynamic shared memory of <see cref="TiledKeyKernel{TLanes, TScore, TReduction}"/> in floats.</summary>
    public static int TiledKeySharedFloats(int rows, int queries, int lanes) =>
        2 * (rows + queries) * (8 * lanes + 1) + 2 * rows * queries + 3 * queries;

    // dz_ij = P_ij (dO_i . v_j - Delta_i), P_ij = exp((z_ij - m_i) - log l_i); 0 for a masked pair.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dz(float z, float rowMax, float rowLogSum, float dOv, float rowDelta) =>
        z > float.NegativeInfinity ? XMath.Exp(z - rowMax - rowLogSum) * (dOv - rowDelta) : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(ArrayView<float> probTile, ArrayView<float> dzTile, int slot, float z, float dOv, int query,
        ArrayView<float> queryMax, ArrayView<float> queryLogSum, ArrayView<float> queryDelta)
    {
        var prob = z > float.NegativeInfinity ? XMath.Exp(z - queryMax[query] - queryLogSum[query]) : 0f;
        probTile[slot] = prob;
        dzTile[slot] = prob * (dOv - queryDelta[query]);
    }

    // dk' = s (sum dz q - [Distance] (sum dz) k'), through the normalisation, then stored with dv. Every lane of the
    // group calls it (the normalisation sums over the row's lanes); rows past M store nothing.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FinishKey<TLanes, TReduction>(LaneVector dkScored, LaneVector dvj, float dzSum, LaneVector kj,
        ArrayView1D<float, Stride1D.Dense> k, ArrayView1D<float, Stride1D.Dense> keyNorm,
        ArrayView1D<float, Stride1D.Dense> dk, ArrayView1D<float, Stride1D.Dense> dv,
        int kvRow0, int j, int lane, bool hasBias, AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var valid = j < p.M;
        var dims = valid ? p.D : 0;
        var off = valid ? (kvRow0 + j) * p.D : 0;
        if (hasBias) dkScored.AddScaled(-dzSum, kj);
        dkScored.Scale(p.Scale);
        if (p.NormalizeKeys != 0)
        {
            dkScored = AttentionKeys.ChainThroughNormalisation<TLanes, TReduction>(
                dkScored, LaneVector.Load(k, off, lane, lanes, dims), valid ? keyNorm[kvRow0 + j] : 0f, p.KeyRadius, p.KeyEpsilon);
        }
        if (!valid) return;
        dkScored.Store(dk, off, lane, lanes, dims, 1f);
        dvj.Store(dv, off, lane, lanes, dims, 1f);
    }

    private static int Min(int a, int b) => a < b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
