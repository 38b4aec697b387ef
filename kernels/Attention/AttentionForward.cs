// Attention forward: O = softmax(z) v and Lse, FlashAttention-2 style (a tile of query rows per group, K and V tiles
// streamed through shared memory, online softmax, never an N x M buffer), with the diagnostics fused into the same pass.
//
// Versions (time each with `routekit-perf attention --variant N`):
//   1. AttentionForward.TiledKernel: T lanes per query row (8 dims per lane, strided), Group.DimX / T rows per group,
//      key tiles of StreamTile rows of k' and v in dynamic shared memory, one key at a time per row: a lane-partial
//      dot reduced by warp shuffles, then an online-softmax update that rescales only when the running max grows.
//      Key tiles wholly outside the group's causal/window band are never visited.
//      Specialised at compile time on T (ILanes), Dot/Distance (IScoreKind), diagnostics (IDiagnosticsKind) and the
//      row reduction (ISegmentReduction: warp shuffles on Cuda, shared memory on OpenCL).
//   2. AttentionForward.RegisterTiledKernel (2026-12-02): FA2's loop over a register tile. A group owns a block of
//      R = 2 Group.DimX / T query rows (staged once in shared memory) and streams key tiles of StreamTile rows of k' and
//      v; per tile, (a) every thread forms 2 x 4 scores at a time in scalar registers (AttentionTiles.DotTile, no
//      shuffles) into a [R, tile] score buffer, (b) one thread per row takes the tile's max, rescales its statistics
//      once and turns the scores into weights e^(z - m), (c) each thread adds those weights times the v tile into its
//      2 rows x 8 dims output registers, rescaled once per tile. Masked tiles are skipped as in version 1; no segment
//      reduction, so Cuda and OpenCL run the same instantiation. Specialised on T, Dot/Distance and diagnostics.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; query head h reads kv head
// h / (H / Hkv). Scores z_ij = s q_i . k'_j + bias_j - m_h |i + (M - N) - j|, masked to the causal/window band.
//
// Why one key at a time rather than FA2's score tile: ILGPU 1.5.3 does not unroll loops and per-thread arrays become
// .local memory, so a per-thread block of scores would spill; eight scalar q and O registers per lane do not. The
// per-key rescale costs an exp only when the max grows, which for a row's keys in random order is O(log M) times.
//
// Performance notes: not yet timed on a GPU (no device was lent when this version was written, 2026-11-28). Expected
// to be shared-memory-bandwidth bound (one FMA per shared load), well below FA2's tensor-core rate; a register-tiled
// version with several rows per thread is the next step.
// 2026-12-02, version 2: 8 FMAs per 6 shared loads in the score tile and 16 per 10 in the output update (version 1:
// 8 per 8, plus log2 T shuffles per key), and one rescale per tile instead of one per growth of the max; the price is a
// score buffer round trip through shared memory and three barriers per tile. Still not timed on a GPU (none lent).
// Version 2 ties its backward to its own forward: pair it with AttentionBackward version 2 (same DotTile sums).
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Attention;

/// <summary>Device code of the attention forward.</summary>
public static class AttentionForward
{
    /// <summary>The forward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("TiledKernel", "T lanes per query row, K/V tiles in shared memory, per-key online softmax, masked tiles skipped"),
        ("RegisterTiledKernel", "FA2 loop: 2 rows x 4 keys score tiles and 2 rows x 8 dims output tiles in registers, one rescale per key tile"),
    ];

    /// <summary>
    /// Version 1. Grid: B H ceil(N / R) groups, R = Group.DimX / T query rows each (Group.DimX a multiple of the warp
    /// size); dynamic shared memory: 2 StreamTile 8T floats (k' and v tiles). Writes O, Lse, the saved statistics and, with
    /// <typeparamref name="TDiagnostics"/> enabled, Entropy, SinkMass and MaxProb. A row with every key masked gets
    /// O = 0, Lse = -inf, statistics (-inf, 0) and zero diagnostics.
    /// </summary>
    public static void TiledKernel<TLanes, TScore, TDiagnostics, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H] brake slopes m_h
        ArrayView1D<float, Stride1D.Dense> keyLengths, // [B] real keys per batch element (exact float integers), read with KeyPadding
        ArrayView1D<float, Stride1D.Dense> o,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [B, H, N]
        ArrayView1D<float, Stride1D.Dense> stats,      // [B, H, N, 2] (m_i, log l_i) for the backward
        ArrayView1D<float, Stride1D.Dense> entropy,    // [B, H, N], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> sinkMass,   // [B, H, N], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> maxProb,    // [B, H, N], written only with diagnostics
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TDiagnostics : struct, IDiagnosticsKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var diagnostics = default(TDiagnostics).Enabled;
        var paddedDim = 8 * lanes;
        var tile = QueryRowTile.Locate(p, lanes, keyLengths);
        var (lane, bh, kvRow0, i, valid, ip) = (tile.Lane, tile.BatchHead, tile.KeyRow0, tile.Row, tile.Valid, tile.Position);
        var (jLo, jHi, gLo, gHi) = (tile.KeyLo, tile.KeyHi, tile.GroupKeyLo, tile.GroupKeyHi);
        var slope = slopes[tile.Head];

        var dims = valid ? p.D : 0;
        var qOff = valid ? (bh * p.N + i) * p.D : 0;
        var qi = LaneVector.Load(q, qOff, lane, lanes, dims);
        var acc = default(LaneVector);       // sum exp(z - max) v
        var state = OnlineSoftmax.Empty;     // max, l, s1 and the sink keys' mass

        var shared = SharedMemory.GetDynamic<float>();
        var tileFloats = p.StreamTile * paddedDim;
        var keyTile = shared.SubView(0, tileFloats);             // [StreamTile, 8T] k'
        var valueTile = shared.SubView(tileFloats, tileFloats);  // [StreamTile, 8T] v

        for (var j0 = gLo; j0 <= gHi; j0 += p.StreamTile)
        {
            var count = Min(p.StreamTile, gHi - j0 + 1);
            Group.Barrier(); // every row has finished with the previous tile
            AttentionBand.FillTiles(scoredKeys, v, kvRow0 + j0, count, p.D, paddedDim, keyTile, valueTile);
            Group.Barrier();

            for (var jj = 0; jj < count; jj++)
            {
                var t = jj * paddedDim + lane;
                var dot = default(TReduction).Sum<TLanes>(qi.Dot(LaneVector.FromTile(keyTile, t, lanes)));
                var j = j0 + jj;
                if (j < jLo || j > jHi) continue;

                var z = p.Scale * dot - slope * Abs(ip - j);
                if (hasBias) z += keyBias[kvRow0 + j];
                var weight = state.Add(z, ref acc, LaneVector.FromTile(valueTile, t, lanes), diagnostics);
                if (diagnostics && j < p.SinkTokens) state.Mass += weight;
            }
        }

        if (!valid) return;
        var (rowMax, sum, shiftedSum, sinkSum) = (state.Max, state.Sum, state.ShiftedSum, state.Mass);
        var inv = sum > 0f ? 1f / sum : 0f;
        acc.Store(o, qOff, lane, lanes, dims, inv);
        if (lane != 0) return;
        var row = bh * p.N + i;
        var logSum = sum > 0f ? XMath.Log(sum) : 0f;
        lse[row] = sum > 0f ? rowMax + logSum : float.NegativeInfinity;
        // The backward forms P = exp((z - m) - log l) from these: m is exactly one of the scores it recomputes, so
        // it never sees the rounding of the absolute Lse (ulp(|Lse|) / 2, 2e-3 at |Lse| ~ 3e4).
        stats[2 * row] = sum > 0f ? rowMax : float.NegativeInfinity;
        stats[2 * row + 1] = logSum;
        if (diagnostics)
        {
            // Entropy = Lse - sum P z = log l - s1 / l, free of the O(|z|) cancellation of the literal formula.
            entropy[row] = sum > 0f ? logSum - shiftedSum * inv : 0f;
            sinkMass[row] = sinkSum * inv;
            maxProb[row] = inv;
        }
    }

    /// <summary>
    /// Version 2. Grid: B H ceil(N / R) groups, R = 2 Group.DimX / T query rows each (Group.DimX a multiple of T);
    /// dynamic shared memory: <see cref="RegisterTiledSharedFloats"/> floats. Same outputs and masking semantics as
    /// version 1 (a row with every key masked gets O = 0, Lse = -inf, statistics (-inf, 0), zero diagnostics).
    /// </summary>
    public static void RegisterTiledKernel<TLanes, TScore, TDiagnostics>(
        ArrayView1D<float, Stride1D.Dense> q,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H] brake slopes m_h
        ArrayView1D<float, Stride1D.Dense> keyLengths, // [B] real keys per batch element (exact float integers), read with KeyPadding
        ArrayView1D<float, Stride1D.Dense> o,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [B, H, N]
        ArrayView1D<float, Stride1D.Dense> stats,      // [B, H, N, 2] (m_i, log l_i) for the backward
        ArrayView1D<float, Stride1D.Dense> entropy,    // [B, H, N], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> sinkMass,   // [B, H, N], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> maxProb,    // [B, H, N], written only with diagnostics
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TDiagnostics : struct, IDiagnosticsKind
    {
        var lanes = default(TLanes).Count;
        var diagnostics = default(TDiagnostics).Enabled;
        // Shared rows are 8T + 1 floats apart, so the rows a warp reads at the same d fall in different banks.
        var stride = 8 * lanes + 1;
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rows = AttentionTiles.RowsPerThread * threads / lanes; // R
        var keys = p.StreamTile;                                     // keys per tile, a multiple of 4
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
        var queryTile = shared.SubView(0, rows * stride);                     // [R, 8T + 1] q
        var keyTile = shared.SubView(rows * stride, keys * stride);        // [tile, 8T + 1] k'
        var valueTile = shared.SubView((rows + keys) * stride, keys * stride); // [tile, 8T + 1] v
        var scoreBase = (rows + 2 * keys) * stride;
        var scoreTile = shared.SubView(scoreBase, rows * keys);                  // [R, tile] z, then e^(z - m)
        var rowMax = shared.SubView(scoreBase + rows * keys, rows);              // [R] m
        var rowSum = shared.SubView(scoreBase + rows * keys + rows, rows);       // [R] l
        var rowShifted = shared.SubView(scoreBase + rows * keys + 2 * rows, rows); // [R] s1 (diagnostics)
        var rowMass = shared.SubView(scoreBase + rows * keys + 3 * rows, rows);  // [R] sink mass (diagnostics)
        var rowAlpha = shared.SubView(scoreBase + rows * keys + 4 * rows, rows); // [R] this tile's rescale

        AttentionTiles.FillRows(q, bh * p.N + i0, Min(rows, p.N - i0), rows, p.D, stride, queryTile);
        for (var r = tid; r < rows; r += threads)
        {
            rowMax[r] = float.NegativeInfinity;
            rowSum[r] = 0f;
            rowShifted[r] = 0f;
            rowMass[r] = 0f;
        }

        var pair = tid / lanes;
        var r0 = AttentionTiles.RowsPerThread * pair;
        var acc0 = default(LaneVector); // row r0: sum e^(z - m) v
        var acc1 = default(LaneVector); // row r0 + 1

        for (var j0 = gLo; j0 <= gHi; j0 += keys)
        {
            var count = Min(keys, gHi - j0 + 1);
            Group.Barrier(); // the previous tile's weights and values are consumed (and the q tile is filled)
            AttentionBand.FillTiles(scoredKeys, v, kvRow0 + j0, count, p.D, stride, keyTile, valueTile);
            Group.Barrier();

            // (a) Scores, 2 rows x 4 keys per item; keys c, c + tile/4, ... so an item's four key rows are spread.
            for (var e = tid; e < rows / 2 * quads; e += threads)
            {
                var rp = e / quads;
                var c = e - rp * quads;
                var ra = 2 * rp;
                var t = DotTile.Compute(queryTile, ra * stride, (ra + 1) * stride, keyTile,
                    c * stride, (c + quads) * stride, (c + 2 * quads) * stride, (c + 3 * quads) * stride, p.D);
                var (ia, ib, ja) = (i0 + ra, i0 + ra + 1, j0 + c);
                var sa = ra * keys + c;
                var sb = sa + keys;
                scoreTile[sa] = AttentionTiles.MaskedScore<TScore>(p, t.S00, ia, ja, keyLast, slope, keyBias, kvRow0);
                scoreTile[sa + quads] = AttentionTiles.MaskedScore<TScore>(p, t.S01, ia, ja + quads, keyLast, slope, keyBias, kvRow0);
                scoreTile[sa + 2 * quads] = AttentionTiles.MaskedScore<TScore>(p, t.S02, ia, ja + 2 * quads, keyLast, slope, keyBias, kvRow0);
                scoreTile[sa + 3 * quads] = AttentionTiles.MaskedScore<TScore>(p, t.S03, ia, ja + 3 * quads, keyLast, slope, keyBias, kvRow0);
                scoreTile[sb] = AttentionTiles.MaskedScore<TScore>(p, t.S10, ib, ja, keyLast, slope, keyBias, kvRow0);
                scoreTile[sb + quads] = AttentionTiles.MaskedScore<TScore>(p, t.S11, ib, ja + quads, keyLast, slope, keyBias, kvRow0);
                scoreTile[sb + 2 * quads] = AttentionTiles.MaskedScore<TScore>(p, t.S12, ib, ja + 2 * quads, keyLast, slope, keyBias, kvRow0);
                scoreTile[sb + 3 * quads] = AttentionTiles.MaskedScore<TScore>(p, t.S13, ib, ja + 3 * quads, keyLast, slope, keyBias, kvRow0);
            }
            Group.Barrier();

            // (b) One thread per row: the tile's max, one rescale of (l, s1, mass), the weights e^(z - m) in place.
            for (var r = tid; r < rows; r += threads)
            {
                var row = r * keys;
                var max = rowMax[r];
                var tileMax = float.NegativeInfinity;
                for (var jj = 0; jj < count; jj++) tileMax = MaxOf(tileMax, scoreTile[row + jj]);
                var (sum, shifted, mass, alpha) = (rowSum[r], rowShifted[r], rowMass[r], 1f);
                if (tileMax > max)
                {
                    // exp(-inf) = 0 clears the empty state on the first visible key.
                    alpha = XMath.Exp(max - tileMax);
                    if (diagnostics)
                    {
                        shifted = sum > 0f ? alpha * (shifted + (max - tileMax) * sum) : 0f;
                        mass *= alpha;
                    }
                    sum *= alpha;
                    max = tileMax;
                }
                for (var jj = 0; jj < count; jj++)
                {
                    var z = scoreTile[row + jj];
                    var weight = 0f;
                    if (z > float.NegativeInfinity)
                    {
                        var zShifted = z - max;
                        weight = XMath.Exp(zShifted);
                        sum += weight;
                        if (diagnostics)
                        {
                            shifted += weight * zShifted;
                            if (j0 + jj < p.SinkTokens) mass += weight;
                        }
                    }
                    scoreTile[row + jj] = weight;
                }
                (rowMax[r], rowSum[r], rowShifted[r], rowMass[r], rowAlpha[r]) = (max, sum, shifted, mass, alpha);
            }
            Group.Barrier();

            // (c) The output tile: rescale once, then weights times the v tile.
            acc0.Scale(rowAlpha[r0]);
            acc1.Scale(rowAlpha[r0 + 1]);
            var wa = r0 * keys;
            for (var jj = 0; jj < count; jj++)
            {
                var value = LaneVector.FromTile(valueTile, jj * stride + lane, lanes);
                acc0.AddScaled(scoreTile[wa + jj], value);
                acc1.AddScaled(scoreTile[wa + keys + jj], value);
            }
        }
        Group.Barrier(); // the row statistics are final

        StoreRow(o, acc0, rowSum[r0], bh, i0 + r0, lane, lanes, p);
        StoreRow(o, acc1, rowSum[r0 + 1], bh, i0 + r0 + 1, lane, lanes, p);
        for (var r = tid; r < rows; r += threads)
        {
            if (i0 + r >= p.N) continue;
            var row = bh * p.N + i0 + r;
            var (max, sum) = (rowMax[r], rowSum[r]);
            var inv = sum > 0f ? 1f / sum : 0f;
            var logSum = sum > 0f ? XMath.Log(sum) : 0f;
            lse[row] = sum > 0f ? max + logSum : float.NegativeInfinity;
            stats[2 * row] = sum > 0f ? max : float.NegativeInfinity;
            stats[2 * row + 1] = logSum;
            if (diagnostics)
            {
                entropy[row] = sum > 0f ? logSum - rowShifted[r] * inv : 0f;
                sinkMass[row] = rowMass[r] * inv;
                maxProb[row] = inv;
            }
        }
    }

    /// <summary>
    /// Dynamic shared memory of <see cref="RegisterTiledKernel{TLanes, TScore, TDiagnostics}"/> in floats: the q tile
    /// [R, 8T + 1], the k' and v tiles [tile, 8T + 1], the score buffer [R, tile] and five [R] row statistics.
    /// </summary>
    public static int RegisterTiledSharedFloats(int rows, int keys, int lanes) =>
        (rows + 2 * keys) * (8 * lanes + 1) + rows * keys + 5 * rows;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(ArrayView1D<float, Stride1D.Dense> o, LaneVector acc, float sum, int bh, int i, int lane,
        int lanes, AttentionKernelParams p)
    {
        if (i >= p.N) return;
        acc.Store(o, (bh * p.N + i) * p.D, lane, lanes, p.D, sum > 0f ? 1f / sum : 0f);
    }

    private static int Min(int a, int b) => a < b ? a : b;

    private static float MaxOf(float a, float b) => a > b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
