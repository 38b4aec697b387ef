// Selective scan (Mamba S6) forward, selective_scan_ref semantics (DESIGN.md section 4):
//   dt = act(delta + deltaBias), act = softplus or identity;  h_l = exp(dt_l A) h_{l-1} + dt_l B_l u_l  (h_{-1} = h0 or 0);
//   y_l = C_l . h_l + D u_l;  out = y silu(z) (or y without z).
//
// Versions (validate and time each with `routekit-perf scan --backend cuda|opencl|ilgpu-cpu --variant N`; forward
// version N is timed with backward version N):
//   1. SelectiveScanForward.ChunkedKernel: one warp per (batch, channel) row, chunks of 32 time steps (one per lane);
//      for each state n the 32 pairs (exp(dt A_n), dt B_n u) are combined by the warp scan of ScanCommon.cs, the
//      chunk's incoming state is applied and lane 31's state carries to the next chunk. y accumulates over n in a
//      register per lane, so u, delta, z are read once and B, C once per state. The incoming state of every chunk
//      is saved (chunkStates) for the backward.
//
// Shapes: B batch, Dc channels, L time steps, Nst states per channel, G groups (channel d reads B and C of group
// d / (Dc / G)); Chunks = ceil(L / 32).
//
// Why the state carry lives in shared memory: a per-lane array of Nst carries would spill to .local (ILGPU 1.5.3
// does not unroll loops), so each warp keeps its Nst carries in a static shared slice. Every lane writes the same
// value (the shuffle-broadcast state of lane 31) and later reads its own write, so no barrier is needed.
//
// Performance notes: not yet timed on a GPU (2026-11-28). Parallelism is B Dc warps, each walking L / 32 chunks
// serially: small B Dc with long L leaves an H100 under-occupied; a version that also splits L across warps (a
// second-level scan of chunk aggregates, as Mamba's block scan does) is the next step.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Scan;

/// <summary>Device code of the selective-scan forward.</summary>
public static class SelectiveScanForward
{
    /// <summary>Warps (rows) per group.</summary>
    public const int WarpsPerGroup = 4;

    /// <summary>Largest number of states per channel (the shared carry is sized for it).</summary>
    public const int MaxStates = 256;

    /// <summary>The forward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("ChunkedKernel", "one warp per row, 32-step chunks scanned by warp shuffles, state carried in shared memory"),
    ];

    /// <summary>
    /// Version 1. Grid: ceil(B Dc / 4) groups of 4 warps (128 threads), warp w of group g serves row 4 g + w.
    /// Writes out, preGate (only with z), lastState and chunkStates.
    /// </summary>
    public static void ChunkedKernel<TDelta, TOp>(SelectiveScanViews scan, SelectiveScanForwardViews result, ScanKernelParams p)
        where TDelta : struct, IDeltaActivation
        where TOp : struct, IScanOp
    {
        var carry = SharedMemory.Allocate<float>(WarpsPerGroup * MaxStates); // [warps, MaxStates]
        var warp = Group.IdxX / WarpScan.ChunkLength;
        var lane = Warp.LaneIdx;
        var row = Grid.IdxX * WarpsPerGroup + warp; // b Dc + d
        if (row >= p.Rows) return; // the whole warp leaves together, so its shuffles stay full

        var d = row % p.Dc;
        var b = row / p.Dc;
        var g = d / p.ChannelsPerGroup;
        var rowBase = (long)row * p.L;
        var stateBase = (long)row * p.Nst;
        var bcBase = (long)(b * p.G + g) * p.Nst * p.L;
        var carryBase = warp * MaxStates;
        var bias = p.HasDeltaBias != 0 ? scan.DeltaBias[d] : 0f;
        var skip = p.HasD != 0 ? scan.D[d] : 0f;

        for (var n = 0; n < p.Nst; n++)
            carry[carryBase + n] = p.HasInitialState != 0 ? scan.InitialState[stateBase + n] : 0f;

        for (var chunk = 0; chunk < p.Chunks; chunk++)
        {
            var l = chunk * WarpScan.ChunkLength + lane;
            var inRange = l < p.L;
            var uv = inRange ? scan.U[rowBase + l] : 0f;
            var dt = inRange ? default(TDelta).Apply(scan.Delta[rowBase + l] + bias) : 0f;
            var dtu = dt * uv;
            var sum = 0f;
            var saveBase = ((long)row * p.Chunks + chunk) * p.Nst;
            for (var n = 0; n < p.Nst; n++)
            {
                var hStart = carry[carryBase + n];
                if (lane == 0) result.ChunkStates[saveBase + n] = hStart;
                var bcIndex = bcBase + (long)n * p.L + l;
                var decay = inRange ? ScanMath.Exp(dt * scan.A[d * p.Nst + n]) : 1f;
                var input = inRange ? dtu * scan.B[bcIndex] : 0f;
                WarpScan.Forward<TOp>(ref decay, ref input);
                // The chunk's incoming state is one more (earlier) element of the scan: (anything, hStart).
                default(TOp).Combine(1f, hStart, ref decay, ref input);
                var h = input;
                if (inRange) sum += scan.C[bcIndex] * h;
                carry[carryBase + n] = Warp.Shuffle(h, WarpScan.ChunkLength - 1);
            }
            if (!inRange) continue;
            var pre = sum + skip * uv;
            if (p.HasZ != 0)
            {
                result.PreGate[rowBase + l] = pre;
                result.Output[rowBase + l] = pre * ScanMath.Silu(scan.Z[rowBase + l]);
            }
            else
            {
                result.Output[rowBase + l] = pre;
            }
        }

        for (var n = lane; n < p.Nst; n += WarpScan.ChunkLength)
            result.LastState[stateBase + n] = carry[carryBase + n];
    }
}
