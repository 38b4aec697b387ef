// Selective scan on the Managed backend: SIMD across L channels of one group (they share B and C, so each step
// broadcasts one B and one C value; L = 8 on Vector256, 4 on Vector128: ScanLanes.cs, chosen per call from
// SimdWidth.ActiveBits), ManagedParallel.For across (batch, group, channel block). Time runs in tiles of
// SelectiveScan.ChunkLength steps: a tile of each [B, Dc, L] input is transposed once into time-major vectors of 8
// channels (ScanTiles, shared with the linear recurrence), dt, the gate and their derivatives are computed on those
// vectors, then each state n runs the recurrence over the tile. The state entering each tile is the saved chunk state, so the forward's ChunkStates mean
// the same thing on every backend.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups; a block is up to L channels of one group
// (padding lanes hold zeros: A = 0, u = 0 and a zero gate keep them inert).
// The backward walks tiles last to first, recomputes the tile's states from the saved chunk state, then runs the
// reverse recurrence. dB and dC sum over a group's channels: lanes in float64, blocks in block order after the
// parallel loop; sums over time go float within a tile, float64 across tiles; so results are bitwise repeatable for
// any thread count and their error does not grow with L. The hot methods skip tiered compilation
// (AggressiveOptimization): tier-0 code of vector loops is an order of magnitude slower, and a training step
// calls each block once, so on-stack replacement would not rescue the first calls.
//
// Performance notes (2026-11-28, shared 2-core AVX-512 machine, B = 1, Dc = 256, Nst = 16, softplus, D, z): the
// per-element scalar softplus/silu and strided per-step gathers of the first version cost as much as the recurrence
// itself (ratio 2.5 against the sequential loop); tile transposes and vector softplus/silu removed them.
// 2026-12-02: width-generic. The Vector256 code ran in .NET's software fallback on 128-bit machines (forward 0.14-0.19
// Melem/s, 7-30x slower than the sequential loop, B1 Dc256 L512-2048, DOTNET_EnableAVX2=0); a 4-lane Vector128
// specialisation replaces it there. The 8-lane results on AVX2/AVX-512 machines are bit for bit the earlier ones.
using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class SelectiveScanManaged
{
    private const int Tile = ScanTiles.Steps;

    private readonly record struct Block(int B, int G, int D0, int Width);

    private static int BlocksPerGroup(SelectiveScanParams p, int lanes) => (p.ChannelsPerGroup + lanes - 1) / lanes;

    private static Block BlockAt(SelectiveScanParams p, int index, int lanes)
    {
        var perGroup = BlocksPerGroup(p, lanes);
        var bg = index / perGroup; // b G + g
        var k = index - bg * perGroup;
        var g = bg % p.G;
        var d0 = g * p.ChannelsPerGroup + k * lanes;
        return new Block(bg / p.G, g, d0, Math.Min(lanes, p.ChannelsPerGroup - k * lanes));
    }

    // 1 / (1 + e^-x), lane-wise, with the float64-accurate exp.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV Sigmoid<TS, TV>(TV x) where TS : struct, IScanLanes<TV> where TV : struct =>
        TS.Divide(TS.Broadcast(1f), TS.Add(TS.Broadcast(1f), TS.ExpAccurate(TS.Subtract(TS.Zero, x))));

    // d dt / d raw: sigmoid for softplus (1 above the threshold), 1 for the identity.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV DtDerivative<TS, TV>(bool softplus, TV raw) where TS : struct, IScanLanes<TV> where TV : struct =>
        softplus
            ? TS.Select(TS.GreaterThan(raw, TS.Broadcast(20f)), TS.Broadcast(1f), Sigmoid<TS, TV>(raw))
            : TS.Broadcast(1f);

    // One value per channel of the block (zeros in padding lanes); off the hot path.
    private static TV Gather<TS, TV>(float* source, Block blk, long start, long stride) where TS : struct, IScanLanes<TV> where TV : struct =>
        ScanTiles.Gather<TS, TV>(source, blk.Width, start, stride);

    // One worker's tiles, kept per worker slot between calls (ManagedParallel.WorkerLocal) and grown on demand, so a
    // training loop does not allocate them.
    private sealed class Scratch<TV> where TV : struct
    {
        public static Scratch<TV> ForThisWorker(int states)
        {
            var s = ManagedParallel.WorkerLocal<Scratch<TV>>();
            if (s.States < states) s.Grow(states);
            return s;
        }

        // Sizes the per-state buffers for `states` (they are only ever grown).
        private void Grow(int states)
        {
            States = states;
            A = new TV[states];
            H = new TV[states];
            DA = new double[states * ScanTiles.MaxLanes];
            Tiles = new TV[states * Tile];
        }

        public int States { get; private set; }

        public readonly float[] Stage = new float[Tile * ScanTiles.MaxLanes]; // [Tile, L] transpose buffer
        public readonly TV[] Dt = new TV[Tile];       // [Tile] x L channels
        public readonly TV[] U = new TV[Tile];        // [Tile]
        public readonly TV[] DtU = new TV[Tile];      // [Tile] dt u
        public readonly TV[] Y = new TV[Tile];        // [Tile] y (forward) or du (backward)
        public readonly TV[] Raw = new TV[Tile];      // [Tile] delta + bias
        public readonly TV[] Z = new TV[Tile];        // [Tile]
        public readonly TV[] Gate = new TV[Tile];     // [Tile] dL/dy
        public readonly TV[] Work = new TV[Tile];     // [Tile] pre-gate y, dz
        public readonly TV[] DtGrad = new TV[Tile];   // [Tile] dL/ddt, then ddelta
        public TV[] A { get; private set; } = [];     // [Nst]
        public TV[] H { get; private set; } = [];     // [Nst] state, or the dh carry
        public double[] DA { get; private set; } = []; // [Nst, L] dA summed over time
        public TV[] Tiles { get; private set; } = []; // [Nst, Tile] states of a tile
    }

    // u, raw = delta + bias, dt and dt u of one tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LoadSteps<TS, TV>(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, long start, int len,
        TV bias, Scratch<TV> s) where TS : struct, IScanLanes<TV> where TV : struct
    {
        ScanTiles.Load<TS, TV>(x.U, start, p.L, blk.Width, len, s.Stage, s.U);
        ScanTiles.Load<TS, TV>(x.Delta, start, p.L, blk.Width, len, s.Stage, s.Raw);
        for (var t = 0; t < len; t++)
        {
            var raw = TS.Add(s.Raw[t], bias);
            s.Raw[t] = raw;
            s.Dt[t] = p.DeltaSoftplus ? TS.SoftplusAccurate(raw) : raw;
            s.DtU[t] = TS.Multiply(s.Dt[t], s.U[t]);
        }
    }

    public static void Forward(SelectiveScanParams p, SelectiveScanHostInputs x, float* output, float* preGate,
        float* lastState, float* chunkStates)
    {
        if (SimdWidth.ActiveBits == 128) RunForward<Simd128, Vector128<float>>(p, x, output, preGate, lastState, chunkStates);
        else RunForward<Simd256, Vector256<float>>(p, x, output, preGate, lastState, chunkStates);
    }

    private static void RunForward<TS, TV>(SelectiveScanParams p, SelectiveScanHostInputs x, float* output, float* preGate,
        float* lastState, float* chunkStates) where TS : struct, IScanLanes<TV> where TV : struct
    {
        var body = new ForwardBlocks<TS, TV> { P = p, X = x, Output = output, PreGate = preGate, LastState = lastState, ChunkStates = chunkStates };
        ManagedParallel.For(p.B * p.G * BlocksPerGroup(p, TS.Lanes), ref body);
    }

    private struct ForwardBlocks<TS, TV> : IParallelBody where TS : struct, IScanLanes<TV> where TV : struct
    {
        public SelectiveScanParams P;
        public SelectiveScanHostInputs X;
        public float* Output, PreGate, LastState, ChunkStates;

        public readonly void Run(int index) =>
            ForwardBlock<TS, TV>(P, X, BlockAt(P, index, TS.Lanes), Scratch<TV>.ForThisWorker(P.Nst), Output, PreGate, LastState, ChunkStates);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock<TS, TV>(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, Scratch<TV> s,
        float* output, float* preGate, float* lastState, float* chunkStates) where TS : struct, IScanLanes<TV> where TV : struct
    {
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather<TS, TV>(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = Gather<TS, TV>(x.InitialState, blk, (long)row0 * p.Nst + n, p.Nst);
        }
        var bias = Gather<TS, TV>(x.DeltaBias, blk, blk.D0, 1);
        var skip = Gather<TS, TV>(x.D, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        for (var chunk = 0; chunk < p.Chunks; chunk++)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            var start = (long)row0 * p.L + l0;
            LoadSteps<TS, TV>(p, x, blk, start, len, bias, s);
            Array.Clear(s.Y);
            for (var n = 0; n < p.Nst; n++)
            {
                var h = s.H[n];
                for (var j = 0; j < blk.Width; j++)
                    chunkStates[(((long)row0 + j) * p.Chunks + chunk) * p.Nst + n] = TS.GetElement(h, j);
                var a = s.A[n];
                var bRow = new ReadOnlySpan<float>(x.B + bcBase + (long)n * p.L + l0, len);
                var cRow = new ReadOnlySpan<float>(x.C + bcBase + (long)n * p.L + l0, len);
                for (var t = 0; t < len; t++)
                {
                    h = TS.Add(TS.Multiply(TS.ExpAccurate(TS.Multiply(s.Dt[t], a)), h), TS.Multiply(s.DtU[t], TS.Broadcast(bRow[t])));
                    s.Y[t] = TS.Add(s.Y[t], TS.Multiply(TS.Broadcast(cRow[t]), h));
                }
                s.H[n] = h;
            }
            for (var t = 0; t < len; t++) s.Y[t] = TS.Add(s.Y[t], TS.Multiply(skip, s.U[t]));
            if (x.Z != null)
            {
                ScanTiles.Store<TS, TV>(s.Y, preGate, start, p.L, blk.Width, len, s.Stage);
                ScanTiles.Load<TS, TV>(x.Z, start, p.L, blk.Width, len, s.Stage, s.Z);
                for (var t = 0; t < len; t++) s.Y[t] = TS.Multiply(s.Y[t], TS.Multiply(s.Z[t], Sigmoid<TS, TV>(s.Z[t])));
            }
            ScanTiles.Store<TS, TV>(s.Y, output, start, p.L, blk.Width, len, s.Stage);
        }
        for (var n = 0; n < p.Nst; n++)
            for (var j = 0; j < blk.Width; j++)
                lastState[((long)row0 + j) * p.Nst + n] = TS.GetElement(s.H[n], j);
    }

    public static void Backward(SelectiveScanParams p, SelectiveScanHostInputs x, float* dOut, float* chunkStates,
        float* preGate, float* du, float* dDelta, float* dA, float* dB, float* dC,
        float* dD, float* dz, float* dDeltaBias, float* dInitialState)
    {
        var lanes = SimdWidth.ActiveBits == 128 ? Simd128.Lanes : Simd256.Lanes;
        var perGroup = BlocksPerGroup(p, lanes);
        var blocks = p.B * p.G * perGroup;
        var stateTimes = (long)p.Nst * p.L;
        // With one block per group a block's sums are dB and dC themselves; otherwise per-block partials, kept per thread
        // so a training step does not allocate them anew (every slot is overwritten before it is read).
        var direct = perGroup == 1;
        var partialLength = direct ? 0 : blocks * stateTimes;
        var buffers = BackwardBuffers.ForThisThread(2 * partialLength, (long)p.B * p.Dc * (p.Nst + 2));
        var partialB = direct ? dB : buffers.Partials;                        // [B, G, blocks per group, Nst, L]
        var partialC = direct ? dC : buffers.Partials + partialLength;        // [B, G, blocks per group, Nst, L]
        var rowSums = buffers.RowSums;                                        // [B, Dc, Nst + 2]: dA, dD, ddeltaBias
        var io = new BackwardIo
        {
            P = p, X = x, DOut = dOut, ChunkStates = chunkStates, PreGate = preGate, DU = du, DDelta = dDelta, DZ = dz,
            DInitialState = dInitialState, PartialB = partialB, PartialC = partialC, StateTimes = stateTimes, RowSums = rowSums,
        };
        if (lanes == Simd128.Lanes)
        {
            var body = new BackwardBlocks<Simd128, Vector128<float>> { Io = io };
            ManagedParallel.For(blocks, ref body);
        }
        else
        {
            var body = new BackwardBlocks<Simd256, Vector256<float>> { Io = io };
            ManagedParallel.For(blocks, ref body);
        }
        if (!direct)
        {
            for (var bg = 0; bg < p.B * p.G; bg++)
            {
                var targetB = new Span<float>(dB + bg * stateTimes, (int)stateTimes);
                var targetC = new Span<float>(dC + bg * stateTimes, (int)stateTimes);
                targetB.Clear();
                targetC.Clear();
                for (var k = 0; k < perGroup; k++)
                {
                    var offset = (bg * perGroup + k) * stateTimes;
                    TensorPrimitives.Add(targetB, new ReadOnlySpan<float>(partialB + offset, (int)stateTimes), targetB);
                    TensorPrimitives.Add(targetC, new ReadOnlySpan<float>(partialC + offset, (int)stateTimes), targetC);
                }
            }
        }
        for (var d = 0; d < p.Dc; d++)
        for (var k = 0; k < p.Nst + 2; k++)
        {
            var sum = 0.0;
            for (var b = 0; b < p.B; b++) sum += rowSums[((long)b * p.Dc + d) * (p.Nst + 2) + k];
            if (k < p.Nst) dA[d * p.Nst + k] = (float)sum;
            else if (k == p.Nst && dD != null) dD[d] = (float)sum;
            else if (k == p.Nst + 1 && dDeltaBias != null) dDeltaBias[d] = (float)sum;
        }
    }

    // The backward's inputs and outputs, shared by every block.
    private struct BackwardIo
    {
        public SelectiveScanParams P;
        public SelectiveScanHostInputs X;
        public float* DOut, ChunkStates, PreGate, DU, DDelta, DZ, DInitialState, PartialB, PartialC;
        public long StateTimes;
        public double* RowSums;
    }

    private struct BackwardBlocks<TS, TV> : IParallelBody where TS : struct, IScanLanes<TV> where TV : struct
    {
        public BackwardIo Io;

        public readonly void Run(int index) =>
            BackwardBlock<TS, TV>(Io, BlockAt(Io.P, index, TS.Lanes), Scratch<TV>.ForThisWorker(Io.P.Nst), index * Io.StateTimes);
    }

    // The backward's per-call buffers (dB and dC partials, row sums), pinned, kept per thread and grown on demand.
    private sealed class BackwardBuffers
    {
        [ThreadStatic] private static BackwardBuffers? current;

        private float[] partials = [];
        private double[] rowSums = [];

        public float* Partials { get; private set; }
        public double* RowSums { get; private set; }

        public static BackwardBuffers ForThisThread(long partialLength, long rowSumLength)
        {
            var b = current ??= new BackwardBuffers();
            if (b.partials.Length < Math.Max(partialLength, 1))
            {
                b.partials = GC.AllocateUninitializedArray<float>(checked((int)Math.Max(partialLength, 1)), pinned: true);
                b.Partials = (float*)Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(b.partials));
            }
            if (b.rowSums.Length < Math.Max(rowSumLength, 1))
            {
                b.rowSums = GC.AllocateArray<double>(checked((int)Math.Max(rowSumLength, 1)), pinned: true);
                b.RowSums = (double*)Unsafe.AsPointer(ref System.Runtime.InteropServices.MemoryMarshal.GetArrayDataReference(b.rowSums));
            }
            return b;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardBlock<TS, TV>(in BackwardIo io, Block blk, Scratch<TV> s, long partialBase)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var (p, x) = (io.P, io.X);
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather<TS, TV>(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = TS.Zero; // the dh carry: a_{l+1} dh_{l+1} for the step after the current tile
        }
        Array.Clear(s.DA);
        var bias = Gather<TS, TV>(x.DeltaBias, blk, blk.D0, 1);
        var skip = Gather<TS, TV>(x.D, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        Span<double> sumSkip = stackalloc double[ScanTiles.MaxLanes];
        Span<double> sumBias = stackalloc double[ScanTiles.MaxLanes];
        sumSkip.Clear();
        sumBias.Clear();
        var one = TS.Broadcast(1f);
        for (var chunk = p.Chunks - 1; chunk >= 0; chunk--)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            var start = (long)row0 * p.L + l0;
            LoadSteps<TS, TV>(p, x, blk, start, len, bias, s);
            ScanTiles.Load<TS, TV>(io.DOut, start, p.L, blk.Width, len, s.Stage, s.Gate);
            if (x.Z != null)
            {
                // dz = dOut (y + D u) silu'(z); the gradient reaching y is dOut silu(z).
                ScanTiles.Load<TS, TV>(x.Z, start, p.L, blk.Width, len, s.Stage, s.Z);
                ScanTiles.Load<TS, TV>(io.PreGate, start, p.L, blk.Width, len, s.Stage, s.Work);
                for (var t = 0; t < len; t++)
                {
                    var sig = Sigmoid<TS, TV>(s.Z[t]);
                    s.Work[t] = TS.Multiply(TS.Multiply(s.Gate[t], s.Work[t]),
                        TS.Multiply(sig, TS.Add(one, TS.Multiply(s.Z[t], TS.Subtract(one, sig)))));
                    s.Gate[t] = TS.Multiply(s.Gate[t], TS.Multiply(s.Z[t], sig));
                }
                ScanTiles.Store<TS, TV>(s.Work, io.DZ, start, p.L, blk.Width, len, s.Stage);
            }
            var tileSkip = TS.Zero;
            for (var t = 0; t < len; t++)
            {
                s.Y[t] = TS.Multiply(s.Gate[t], skip); // du accumulates here
                s.DtGrad[t] = TS.Zero;
                tileSkip = TS.Add(tileSkip, TS.Multiply(s.Gate[t], s.U[t]));
            }
            for (var n = 0; n < p.Nst; n++)
            {
                // Recompute the tile's states from the state saved at its start, then run the reverse recurrence.
                var h = Gather<TS, TV>(io.ChunkStates, blk, ((long)row0 * p.Chunks + chunk) * p.Nst + n, (long)p.Chunks * p.Nst);
                var hStart = h;
                var a = s.A[n];
                var bRow = new ReadOnlySpan<float>(x.B + bcBase + (long)n * p.L + l0, len);
                for (var t = 0; t < len; t++)
                {
                    h = TS.Add(TS.Multiply(TS.ExpAccurate(TS.Multiply(s.Dt[t], a)), h), TS.Multiply(s.DtU[t], TS.Broadcast(bRow[t])));
                    s.Tiles[n * Tile + t] = h;
                }
                Reverse<TS, TV>(s, n, len, hStart, bRow, new ReadOnlySpan<float>(x.C + bcBase + (long)n * p.L + l0, len),
                    new Span<float>(io.PartialB + partialBase + (long)n * p.L + l0, len),
                    new Span<float>(io.PartialC + partialBase + (long)n * p.L + l0, len));
            }
            var tileBias = TS.Zero;
            for (var t = 0; t < len; t++)
            {
                s.DtGrad[t] = TS.Multiply(s.DtGrad[t], DtDerivative<TS, TV>(p.DeltaSoftplus, s.Raw[t]));
                tileBias = TS.Add(tileBias, s.DtGrad[t]);
            }
            ScanTiles.Store<TS, TV>(s.Y, io.DU, start, p.L, blk.Width, len, s.Stage);
            ScanTiles.Store<TS, TV>(s.DtGrad, io.DDelta, start, p.L, blk.Width, len, s.Stage);
            for (var j = 0; j < TS.Lanes; j++)
            {
                sumSkip[j] += TS.GetElement(tileSkip, j);
                sumBias[j] += TS.GetElement(tileBias, j);
            }
        }
        for (var j = 0; j < blk.Width; j++)
        {
            var row = (long)row0 + j;
            for (var n = 0; n < p.Nst; n++)
            {
                io.RowSums[row * (p.Nst + 2) + n] = s.DA[n * ScanTiles.MaxLanes + j];
                if (io.DInitialState != null) io.DInitialState[row * p.Nst + n] = TS.GetElement(s.H[n], j);
            }
            io.RowSums[row * (p.Nst + 2) + p.Nst] = sumSkip[j];
            io.RowSums[row * (p.Nst + 2) + p.Nst + 1] = sumBias[j];
        }
    }

    // Reverse recurrence of state n over one tile: dh_l = g_l C_l + carry, then carry = a_l dh_l. dB and dC sum over
    // the block's channels in float64 (TS.ChannelSum): a group's channels can cancel, and float32 products and pairwise
    // sums cost dB and dC up to 3 ulps against the naive loop's 1 (2026-11-28).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Reverse<TS, TV>(Scratch<TV> s, int n, int len, TV hStart,
        ReadOnlySpan<float> bRow, ReadOnlySpan<float> cRow, Span<float> dBRow, Span<float> dCRow)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var a = s.A[n];
        var dh = s.H[n];
        var dAn = TS.Zero;
        for (var t = len - 1; t >= 0; t--)
        {
            var dt = s.Dt[t];
            var h = s.Tiles[n * Tile + t];
            var hPrev = t > 0 ? s.Tiles[n * Tile + t - 1] : hStart;
            var b = TS.Broadcast(bRow[t]);
            dh = TS.Add(dh, TS.Multiply(s.Gate[t], TS.Broadcast(cRow[t])));
            var decay = TS.ExpAccurate(TS.Multiply(dt, a));
            var dDecay = TS.Multiply(TS.Multiply(dh, hPrev), decay); // dL/d(dt A)
            dAn = TS.Add(dAn, TS.Multiply(dDecay, dt));
            s.DtGrad[t] = TS.Add(s.DtGrad[t], TS.Add(TS.Multiply(dDecay, a), TS.Multiply(TS.Multiply(dh, s.U[t]), b)));
            s.Y[t] = TS.Add(s.Y[t], TS.Multiply(TS.Multiply(dh, dt), b));
            dBRow[t] = TS.ChannelSum(TS.Multiply(dh, dt), s.U[t]);
            dCRow[t] = TS.ChannelSum(s.Gate[t], h);
            dh = TS.Multiply(decay, dh);
        }
        s.H[n] = dh;
        for (var j = 0; j < TS.Lanes; j++) s.DA[n * ScanTiles.MaxLanes + j] += TS.GetElement(dAn, j);
    }
}
