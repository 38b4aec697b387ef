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
    /// size); dynamic shared memory: 2 StreamTile 8T floats (k' and v tiles). Writes O, Lse and, with
    /// <typeparamref name="TDiagnostics"/> enabled, Entropy, SinkMass and MaxProb. A row with every key masked gets
    /// O = 0, Lse = -inf and zero diagnostics.
    /// </summary>
    public static void TiledKernel<TLanes, TScore, TDiagnostics, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [B, Hkv, M, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [B, Hkv, M, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [B, Hkv, M], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H] brake slopes m_h
        ArrayView1D<float, Stride1D.Dense> o,          // [B, H, N, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [B, H, N]
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
        var threads = Group.DimX;
        var tid = Group.IdxX;
        var lane = tid & (lanes - 1);
        var rowsPerGroup = threads / lanes;

        var bh = Grid.IdxX / p.RowTiles; // b H + h
        var i0 = (Grid.IdxX - bh * p.RowTiles) * rowsPerGroup;
        var h = bh % p.H;
        var b = bh / p.H;
        var kvRow0 = (b * p.Hkv + h / p.Group) * p.M; // first key row of this (b, kv head)
        var slope = slopes[h];

        var i = i0 + tid / lanes;
        var valid = i < p.N;
        var ip = i + p.Offset;
        // This row's visible keys are exactly jLo..jHi (empty for padding rows and fully masked rows).
        var jLo = 0;
        var jHi = p.M - 1;
        if (p.Causal != 0) jHi = Min(jHi, ip);
        if (p.Window >= 0)
        {
            jLo = Max(jLo, ip - p.Window);
            jHi = Min(jHi, ip + p.Window);
        }
        if (!valid) jHi = -1;
        // The group's band: the union of its rows' ranges; tiles outside it are skipped.
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
        var qOff = valid ? (bh * p.N + i) * p.D : 0;
        var q0 = AttentionLanes.LoadPadded(q, qOff, lane, dims);
        var q1 = AttentionLanes.LoadPadded(q, qOff, lane + lanes, dims);
        var q2 = AttentionLanes.LoadPadded(q, qOff, lane + 2 * lanes, dims);
        var q3 = AttentionLanes.LoadPadded(q, qOff, lane + 3 * lanes, dims);
        var q4 = AttentionLanes.LoadPadded(q, qOff, lane + 4 * lanes, dims);
        var q5 = AttentionLanes.LoadPadded(q, qOff, lane + 5 * lanes, dims);
        var q6 = AttentionLanes.LoadPadded(q, qOff, lane + 6 * lanes, dims);
        var q7 = AttentionLanes.LoadPadded(q, qOff, lane + 7 * lanes, dims);
        float o0 = 0f, o1 = 0f, o2 = 0f, o3 = 0f, o4 = 0f, o5 = 0f, o6 = 0f, o7 = 0f;
        var rowMax = float.NegativeInfinity; // running max of z
        var sum = 0f;                        // l = sum exp(z - max)
        var shiftedSum = 0f;                 // s1 = sum exp(z - max) (z - max), for the entropy
        var sinkSum = 0f;                    // sum over sink keys of exp(z - max)

        var shared = SharedMemory.GetDynamic<float>();
        var tileFloats = p.StreamTile * paddedDim;
        var keyTile = shared.SubView(0, tileFloats);             // [StreamTile, 8T] k'
        var valueTile = shared.SubView(tileFloats, tileFloats);  // [StreamTile, 8T] v

        for (var j0 = gLo; j0 <= gHi; j0 += p.StreamTile)
        {
            var count = Min(p.StreamTile, gHi - j0 + 1);
            Group.Barrier(); // every row has finished with the previous tile
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
                var partial = q0 * keyTile[t] + q1 * keyTile[t + lanes] + q2 * keyTile[t + 2 * lanes]
                    + q3 * keyTile[t + 3 * lanes] + q4 * keyTile[t + 4 * lanes] + q5 * keyTile[t + 5 * lanes]
                    + q6 * keyTile[t + 6 * lanes] + q7 * keyTile[t + 7 * lanes];
                var dot = default(TReduction).Sum<TLanes>(partial);
                var j = j0 + jj;
                if (j < jLo || j > jHi) continue;

                var z = p.Scale * dot - slope * Abs(ip - j);
                if (hasBias) z += keyBias[kvRow0 + j];
                if (z > rowMax)
                {
                    // exp(-inf) = 0 clears the empty state on a row's first visible key.
                    var alpha = XMath.Exp(rowMax - z);
                    if (diagnostics)
                    {
                        // Re-centre s1 on the new max: sum e^(z-m')(z-m') = alpha (s1 + (m - m') l).
                        shiftedSum = sum > 0f ? alpha * (shiftedSum + (rowMax - z) * sum) : 0f;
                        sinkSum *= alpha;
                    }
                    sum *= alpha;
                    o0 *= alpha;
                    o1 *= alpha;
                    o2 *= alpha;
                    o3 *= alpha;
                    o4 *= alpha;
                    o5 *= alpha;
                    o6 *= alpha;
                    o7 *= alpha;
                    rowMax = z;
                }
                var shifted = z - rowMax;
                var weight = XMath.Exp(shifted);
                sum += weight;
                o0 += weight * valueTile[t];
                o1 += weight * valueTile[t + lanes];
                o2 += weight * valueTile[t + 2 * lanes];
                o3 += weight * valueTile[t + 3 * lanes];
                o4 += weight * valueTile[t + 4 * lanes];
                o5 += weight * valueTile[t + 5 * lanes];
                o6 += weight * valueTile[t + 6 * lanes];
                o7 += weight * valueTile[t + 7 * lanes];
                if (diagnostics)
                {
                    shiftedSum += weight * shifted;
                    if (j < p.SinkTokens) sinkSum += weight;
                }
            }
        }

        if (!valid) return;
        var inv = sum > 0f ? 1f / sum : 0f;
        AttentionLanes.StorePadded(o, qOff, lane, dims, o0 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + lanes, dims, o1 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 2 * lanes, dims, o2 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 3 * lanes, dims, o3 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 4 * lanes, dims, o4 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 5 * lanes, dims, o5 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 6 * lanes, dims, o6 * inv);
        AttentionLanes.StorePadded(o, qOff, lane + 7 * lanes, dims, o7 * inv);
        if (lane != 0) return;
        var row = bh * p.N + i;
        var logSum = sum > 0f ? XMath.Log(sum) : 0f;
        lse[row] = sum > 0f ? rowMax + logSum : float.NegativeInfinity;
        if (diagnostics)
        {
            // Entropy = Lse - sum P z = log l - s1 / l, free of the O(|z|) cancellation of the literal formula.
            entropy[row] = sum > 0f ? logSum - shiftedSum * inv : 0f;
            sinkMass[row] = sinkSum * inv;
            maxProb[row] = inv;
        }
    }

    private static int Min(int a, int b) => a < b ? a : b;

    private static int Max(int a, int b) => a > b ? a : b;

    private static float Abs(int x) => x < 0 ? -x : x;
}
