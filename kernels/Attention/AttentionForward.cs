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

    private static int Min(int a, int b) => a < b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
