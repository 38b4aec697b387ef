// Linear recurrence, the recurrent mixer's core (DESIGN.md section 4): h_t = a_t h_{t-1} + x_t, h_{-1} = h0 or 0.
// Backward: dh_t = dH_t + a_{t+1} dh_{t+1} (a reverse scan), dX_t = dh_t, dA_t = dh_t h_{t-1}, dh0 = a_0 dh_0.
//
// Versions (validate and time each with `routekit-perf scan --op linear --backend cuda|opencl|ilgpu-cpu --variant N`):
//   1. LinearRecurrenceKernels.ForwardKernel / BackwardKernel: the selective scan's chunked machinery with one state:
//      one warp per (batch, channel) row, 32-step chunks combined by WarpScan with AffineScanOp, the state carried
//      across chunks by a shuffle broadcast (one state fits in a register, so no shared memory). Every h is an
//      output, so the backward needs no saved chunk states: h_{t-1} is read back.
//
// Shapes: B batch, C channels, T time steps; rows = B C.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Scan;

/// <summary>Device code of the linear recurrence.</summary>
public static class LinearRecurrenceKernels
{
    /// <summary>Warps (rows) per group.</summary>
    public const int WarpsPerGroup = 4;

    /// <summary>The versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("ForwardKernel+BackwardKernel", "one warp per row, 32-step chunks scanned by warp shuffles, carry by broadcast"),
    ];

    /// <summary>Version 1 forward. Grid: ceil(rows / 4) groups of 4 warps; warp w of group g serves row 4 g + w.</summary>
    public static void ForwardKernel<TOp>(
        ArrayView1D<float, Stride1D.Dense> a,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> x,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> h0, // [B, C], read only with hasInitial
        ArrayView1D<float, Stride1D.Dense> h,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> last, // [B, C] h_{T-1}
        int rows, int steps, int hasInitial)
        where TOp : struct, IScanOp
    {
        var lane = Warp.LaneIdx;
        var row = Grid.IdxX * WarpsPerGroup + Group.IdxX / WarpScan.ChunkLength;
        if (row >= rows) return; // the whole warp leaves together
        var rowBase = (long)row * steps;
        var carry = hasInitial != 0 ? h0[row] : 0f;
        for (var t0 = 0; t0 < steps; t0 += WarpScan.ChunkLength)
        {
            var t = t0 + lane;
            var inRange = t < steps;
            var scanA = inRange ? a[rowBase + t] : 1f;
            var scanB = inRange ? x[rowBase + t] : 0f;
            WarpScan.Forward<TOp>(ref scanA, ref scanB);
            default(TOp).Combine(1f, carry, ref scanA, ref scanB);
            if (inRange) h[rowBase + t] = scanB;
            carry = Warp.Shuffle(scanB, WarpScan.ChunkLength - 1);
        }
        if (lane == 0) last[row] = carry;
    }

    /// <summary>Version 1 backward: chunks last to first, the reverse warp scan on (a_{t+1}, dH_t).</summary>
    public static void BackwardKernel<TOp>(
        ArrayView1D<float, Stride1D.Dense> a,   // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> h0,  // [B, C], read only with hasInitial
        ArrayView1D<float, Stride1D.Dense> h,   // [B, C, T] the forward's states
        ArrayView1D<float, Stride1D.Dense> dH,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> dA,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> dX,  // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> dH0, // [B, C], written only with hasInitial
        int rows, int steps, int hasInitial)
        where TOp : struct, IScanOp
    {
        var lane = Warp.LaneIdx;
        var row = Grid.IdxX * WarpsPerGroup + Group.IdxX / WarpScan.ChunkLength;
        if (row >= rows) return;
        var rowBase = (long)row * steps;
        var start = hasInitial != 0 ? h0[row] : 0f;
        var carry = 0f; // a_{t+1} dh_{t+1} for the step after this chunk
        var chunks = (steps + WarpScan.ChunkLength - 1) / WarpScan.ChunkLength;
        for (var chunk = chunks - 1; chunk >= 0; chunk--)
        {
            var t = chunk * WarpScan.ChunkLength + lane;
            var inRange = t < steps;
            var decay = inRange ? a[rowBase + t] : 1f;
            var next = Warp.ShuffleDown(decay, 1);
            var revA = lane == WarpScan.ChunkLength - 1 ? 1f : next;
            var revB = inRange ? dH[rowBase + t] : 0f;
            WarpScan.Reverse<TOp>(ref revA, ref revB);
            default(TOp).Combine(1f, carry, ref revA, ref revB);
            var dh = revB;
            carry = Warp.Shuffle(decay * dh, 0);
            if (!inRange) continue;
            var hPrev = t > 0 ? h[rowBase + t - 1] : start;
            dX[rowBase + t] = dh;
            dA[rowBase + t] = dh * hPrev;
        }
        if (hasInitial != 0 && lane == 0) dH0[row] = carry;
    }
}
