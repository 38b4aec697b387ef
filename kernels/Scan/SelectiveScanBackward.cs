// Selective scan (Mamba S6) backward: gradients of a scalar loss for u, delta, A, B, C, D, z, deltaBias and the
// initial state, given dL/dout and what the forward saved (the state entering every chunk, and y before the gate).
//
//   g_l = dout_l silu(z_l) (dout_l without z);  dz_l = dout_l (y_l + D u_l) silu'(z_l);  dD = sum_l g_l u_l;
//   dh_l = g_l C_l + a_{l+1} dh_{l+1}  (a reverse scan; a_l = exp(dt_l A));  dC_l += g_l h_l;
//   da_l = dh_l h_{l-1};  dA += da_l a_l dt_l;  ddt_l = sum_n (dh_l B_l u_l + da_l a_l A);  du_l = g_l D + sum_n dh_l dt_l B_l;
//   dB_l += dh_l dt_l u_l;  ddelta_l = ddt_l act'(delta_l + bias);  ddeltaBias = sum_l ddelta_l;  dh0 = a_0 dh_0.
//
// Versions (validate and time each with `routekit-perf scan --backend cuda|opencl|ilgpu-cpu --variant N`, paired with
// forward version N; the deterministic and atomic gradient sinks are modes of one version, both timed):
//   1. SelectiveScanBackward.ChunkedKernel: one warp per (batch, channel) row walking the chunks last to first (as
//      Mamba's backward does): per state n it recomputes the chunk's states from the saved incoming state with the
//      forward warp scan, then runs the reverse warp scan on (a_{l+1}, g_l C_l) with dh carried across chunks in
//      shared memory. dB and dC sum over the channels of a group: IGradientSink either writes per-row partials that
//      ReduceChannelsKernel sums in channel order (deterministic) or adds them atomically (not bitwise repeatable).
//      dA, dD, ddeltaBias are summed over time per row (warp butterfly, then chunk by chunk in one lane) and over
//      the batch by ReduceBatchKernel, always in a fixed order.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups; Chunks = ceil(L / 32).
//
// Memory: the deterministic mode needs partials of B Dc Nst L floats each for dB and dC (a device workspace); the
// atomic mode needs none. Performance notes: not yet timed on a GPU (2026-11-28).
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Scan;

/// <summary>Device code of the selective-scan backward.</summary>
public static class SelectiveScanBackward
{
    /// <summary>The backward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("ChunkedKernel", "one warp per row, chunks last to first, forward recompute from saved states then reverse warp scan"),
    ];

    /// <summary>
    /// Version 1. Grid: ceil(B Dc / 4) groups of 4 warps, as the forward. Writes du, ddelta, dz (with z), the dB/dC
    /// contributions through <typeparamref name="TSink"/>, the row partials and dh0 (with an initial state).
    /// </summary>
    public static void ChunkedKernel<TDelta, TOp, TSink>(
        SelectiveScanViews scan, SelectiveScanBackwardViews grad, ScanKernelParams p)
        where TDelta : struct, IDeltaActivation
        where TOp : struct, IScanOp
        where TSink : struct, IGradientSink
    {
        const int maxStates = SelectiveScanForward.MaxStates;
        var dhCarry = SharedMemory.Allocate<float>(SelectiveScanForward.WarpsPerGroup * maxStates); // [warps, MaxStates]
        var dASum = SharedMemory.Allocate<float>(SelectiveScanForward.WarpsPerGroup * maxStates);   // [warps, MaxStates]
        var warp = Group.IdxX / WarpScan.ChunkLength;
        var lane = Warp.LaneIdx;
        var row = Grid.IdxX * SelectiveScanForward.WarpsPerGroup + warp; // b Dc + d
        if (row >= p.Rows) return; // the whole warp leaves together

        var d = row % p.Dc;
        var b = row / p.Dc;
        var g = d / p.ChannelsPerGroup;
        var rowBase = (long)row * p.L;
        var stateBase = (long)row * p.Nst;
        var bcBase = (long)(b * p.G + g) * p.Nst * p.L;
        var partialBase = (long)row * p.Nst * p.L;
        var carryBase = warp * maxStates;
        var bias = p.HasDeltaBias != 0 ? scan.DeltaBias[d] : 0f;
        var skip = p.HasD != 0 ? scan.D[d] : 0f;

        // Every lane writes every slot with the same value and reads back its own write: no barrier needed. dASum is
        // only ever touched by lane 0.
        for (var n = 0; n < p.Nst; n++)
        {
            dhCarry[carryBase + n] = 0f;
            if (lane == 0) dASum[carryBase + n] = 0f;
        }
        var dSkipSum = 0f;
        var dBiasSum = 0f;

        for (var chunk = p.Chunks - 1; chunk >= 0; chunk--)
        {
            var l = chunk * WarpScan.ChunkLength + lane;
            var inRange = l < p.L;
            var uv = inRange ? scan.U[rowBase + l] : 0f;
            var raw = inRange ? scan.Delta[rowBase + l] + bias : 0f;
            var dt = inRange ? default(TDelta).Apply(raw) : 0f;
            var dtu = dt * uv;
            var dout = inRange ? grad.DOut[rowBase + l] : 0f;
            var gate = dout;
            if (p.HasZ != 0 && inRange)
            {
                var zv = scan.Z[rowBase + l];
                gate = dout * ScanMath.Silu(zv);
                grad.DZ[rowBase + l] = dout * grad.PreGate[rowBase + l] * ScanMath.SiluDerivative(zv);
            }
            var dtGrad = 0f;
            var du = gate * skip;
            var savedBase = ((long)row * p.Chunks + chunk) * p.Nst;
            for (var n = 0; n < p.Nst; n++)
            {
                var an = scan.A[d * p.Nst + n];
                var bcIndex = bcBase + (long)n * p.L + l;
                var bv = inRange ? scan.B[bcIndex] : 0f;
                var cv = inRange ? scan.C[bcIndex] : 0f;
                var hStart = grad.ChunkStates[savedBase + n];

                // Recompute h_l (and h_{l-1}) inside the chunk from the saved incoming state.
                var decay = inRange ? ScanMath.Exp(dt * an) : 1f;
                var scanA = decay;
                var scanB = dtu * bv;
                WarpScan.Forward<TOp>(ref scanA, ref scanB);
                default(TOp).Combine(1f, hStart, ref scanA, ref scanB);
                var h = scanB;
                var hPrev = Warp.ShuffleUp(h, 1);
                if (lane == 0) hPrev = hStart;

                // Reverse scan: dh_l = g_l C_l + a_{l+1} dh_{l+1}; lane 31's successor term is the carry, which
                // already holds a_{l+1} dh_{l+1} from the later chunk.
                var next = Warp.ShuffleDown(decay, 1);
                var revA = lane == WarpScan.ChunkLength - 1 ? 1f : next;
                var revB = gate * cv;
                WarpScan.Reverse<TOp>(ref revA, ref revB);
                default(TOp).Combine(1f, dhCarry[carryBase + n], ref revA, ref revB);
                var dh = revB;
                dhCarry[carryBase + n] = Warp.Shuffle(decay * dh, 0);

                var da = dh * hPrev * decay; // dL/d(dt A) at step l
                dtGrad += dh * bv * uv + da * an;
                du += dh * dt * bv;
                var dASlice = WarpScan.Sum(inRange ? da * dt : 0f);
                if (lane == 0) dASum[carryBase + n] += dASlice;
                if (inRange)
                {
                    var directIndex = bcIndex;
                    var partialIndex = partialBase + (long)n * p.L + l;
                    default(TSink).Add(grad.DBTarget, partialIndex, directIndex, dh * dtu);
                    default(TSink).Add(grad.DCTarget, partialIndex, directIndex, gate * h);
                }
            }
            var dDelta = dtGrad * default(TDelta).Derivative(raw);
            if (inRange)
            {
                grad.DU[rowBase + l] = du;
                grad.DDelta[rowBase + l] = dDelta;
            }
            var dSkipSlice = WarpScan.Sum(gate * uv);
            var dBiasSlice = WarpScan.Sum(inRange ? dDelta : 0f);
            dSkipSum += dSkipSlice;
            dBiasSum += dBiasSlice;
        }

        var partials = (long)row * (p.Nst + 2);
        for (var n = lane; n < p.Nst; n += WarpScan.ChunkLength)
        {
            if (p.HasInitialState != 0) grad.DInitialState[stateBase + n] = dhCarry[carryBase + n];
        }
        if (lane == 0)
        {
            for (var n = 0; n < p.Nst; n++) grad.RowPartials[partials + n] = dASum[carryBase + n];
            grad.RowPartials[partials + p.Nst] = dSkipSum;
            grad.RowPartials[partials + p.Nst + 1] = dBiasSum;
        }
    }

    /// <summary>
    /// Deterministic dB and dC: one thread per element of <c>[B, G, Nst, L]</c> sums the partials of the group's
    /// channels in channel order.
    /// </summary>
    public static void ReduceChannelsKernel(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> partials, // [B, Dc, Nst, L]
        ArrayView1D<float, Stride1D.Dense> result,   // [B, G, Nst, L]
        int channelsPerGroup, int stateTimes)        // Dc / G, Nst L
    {
        int index = i;
        var bg = index / stateTimes; // b G + g
        var offset = index - bg * stateTimes;
        var first = (long)bg * channelsPerGroup * stateTimes + offset; // row b Dc + g Dc/G
        var sum = 0f;
        for (var k = 0; k < channelsPerGroup; k++) sum += partials[first + (long)k * stateTimes];
        result[i] = sum;
    }

    /// <summary>
    /// Sums per-row partials over the batch in batch order: <c>result[j] = sum_b partials[(b Dc + j / width) stride + offset + j % width]</c>,
    /// one thread per output element (dA with width Nst, dD and ddeltaBias with width 1).
    /// </summary>
    public static void ReduceBatchKernel(
        Index1D j,
        ArrayView1D<float, Stride1D.Dense> partials, // [B, Dc, Nst + 2]
        ArrayView1D<float, Stride1D.Dense> result,   // [Dc, width]
        int batch, int channels, int width, int stride, int offset)
    {
        int index = j;
        var d = index / width;
        var k = index - d * width;
        var sum = 0f;
        for (var b = 0; b < batch; b++) sum += partials[((long)b * channels + d) * stride + offset + k];
        result[j] = sum;
    }
}
