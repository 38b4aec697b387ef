// Selective scan on the Managed backend: Vector256 SIMD across 8 channels of one group (they share B and C, so each
// step broadcasts one B and one C value), ManagedParallel.For across (batch, group, channel block). Time runs in tiles of
// SelectiveScan.ChunkLength steps: a tile of each [B, Dc, L] input is transposed once into time-major vectors of 8
// channels (ScanTiles, shared with the linear recurrence), dt, the gate and their derivatives are computed on those
// vectors, then each state n runs the recurrence over the tile. The state entering each tile is the saved chunk state, so the forward's ChunkStates mean
// the same thing on every backend.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups; a block is up to 8 channels of one group
// (padding lanes hold zeros: A = 0, u = 0 and a zero gate keep them inert).
// The backward walks tiles last to first, recomputes the tile's states from the saved chunk state, then runs the
// reverse recurrence. dB and dC sum over a group's channels: lanes by Vector256.Sum, blocks in block order after the
// parallel loop; sums over time go float within a tile, float64 across tiles; so results are bitwise repeatable for
// any thread count and their error does not grow with L. The hot methods skip tiered compilation
// (AggressiveOptimization): tier-0 code of Vector256 loops is an order of magnitude slower, and a training step
// calls each block once, so on-stack replacement would not rescue the first calls.
//
// Performance notes (2026-11-28, shared 2-core AVX-512 machine, B = 1, Dc = 256, Nst = 16, softplus, D, z): the
// per-element scalar softplus/silu and strided per-step gathers of the first version cost as much as the recurrence
// itself (ratio 2.5 against the sequential loop); tile transposes and vector softplus/silu removed them.
using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class SelectiveScanManaged
{
    private const int Lanes = ScanTiles.Lanes;
    private const int Tile = ScanTiles.Steps;

    private readonly record struct Block(int B, int G, int D0, int Width);

    private static int BlocksPerGroup(SelectiveScanParams p) => (p.ChannelsPerGroup + Lanes - 1) / Lanes;

    private static Block BlockAt(SelectiveScanParams p, int index)
    {
        var perGroup = BlocksPerGroup(p);
        var bg = index / perGroup; // b G + g
        var k = index - bg * perGroup;
        var g = bg % p.G;
        var d0 = g * p.ChannelsPerGroup + k * Lanes;
        return new Block(bg / p.G, g, d0, Math.Min(Lanes, p.ChannelsPerGroup - k * Lanes));
    }

    // exp of eight float lanes, evaluated in float64 and rounded once to float32, so the decays are correctly rounded
    // (like MathF.Exp) almost always. Vector256.Exp on float lanes is off by an ulp for 77% of A dt in [-5e5, -1e-4]
    // (measured 2026-11-28), and a long scan accumulates the decay's rounding: L steps of a biased decay drift by L
    // ulps, which broke the 2x rule at L = 4099. Vector256.Exp on double lanes is accurate but 3x slower than this:
    // Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, Taylor to r^9 (truncation 7e-12 relative, far below float32's
    // 6e-8 ulp), then 2^k added to the exponent bits. Clamping to [-160, 100] keeps 2^k a normal double; the
    // narrowing then gives float32's 0, subnormals and infinity exactly where MathF.Exp does.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Exp(Vector256<float> x)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var e = Exp(Vector512.Create(Vector256.WidenLower(x), Vector256.WidenUpper(x)));
            return Vector256.Narrow(e.GetLower(), e.GetUpper());
        }
        var (lower, upper) = Vector256.Widen(x);
        return Vector256.Narrow(Exp(lower), Exp(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<double> Exp(Vector512<double> x)
    {
        x = Vector512.Max(Vector512.Min(x, Vector512.Create(ExpHigh)), Vector512.Create(ExpLow));
        var k = Vector512.Round(x * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-Ln2High), x);
        r = Vector512.FusedMultiplyAdd(k, Vector512.Create(-Ln2Low), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(1.0 / 362880), r, Vector512.Create(1.0 / 40320));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 5040));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 720));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 120));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 24));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(1.0 / 6));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(0.5));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        p = Vector512.FusedMultiplyAdd(p, r, Vector512<double>.One);
        return (p.AsInt64() + (Vector512.ConvertToInt64(k) << 52)).AsDouble();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Exp(Vector256<double> x)
    {
        x = Vector256.Max(Vector256.Min(x, Vector256.Create(ExpHigh)), Vector256.Create(ExpLow));
        var k = Vector256.Round(x * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(k, Vector256.Create(-Ln2High), x);
        r = Vector256.FusedMultiplyAdd(k, Vector256.Create(-Ln2Low), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(1.0 / 362880), r, Vector256.Create(1.0 / 40320));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 5040));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 720));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 120));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 24));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(1.0 / 6));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(0.5));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        p = Vector256.FusedMultiplyAdd(p, r, Vector256<double>.One);
        return (p.AsInt64() + (Vector256.ConvertToInt64(k) << 52)).AsDouble();
    }

    private const double ExpHigh = 100, ExpLow = -160;
    private const double Log2E = 1.4426950408889634;
    private const double Ln2High = 0.6931471805599453, Ln2Low = 2.3190468138462996e-17;

    // 1 / (1 + e^-x), lane-wise.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sigmoid(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + Exp(-x));

    // softplus(x) = log(1 + e^x) with PyTorch's threshold (x above 20) and e^x below -15 (where 1 + e^x rounds to 1),
    // evaluated in float64 lanes and rounded once.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Softplus(Vector256<float> x)
    {
        var (lower, upper) = Vector256.Widen(x);
        return Vector256.Narrow(Softplus(lower), Softplus(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<double> Softplus(Vector256<double> x)
    {
        var e = Exp(x);
        var mid = Vector256.Log(Vector256<double>.One + e);
        var result = Vector256.ConditionalSelect(Vector256.LessThan(x, Vector256.Create(-15.0)), e, mid);
        return Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256.Create(20.0)), x, result);
    }

    // d dt / d raw: sigmoid for softplus (1 above the threshold), 1 for the identity.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> DtDerivative(bool softplus, Vector256<float> raw) =>
        softplus
            ? Vector256.ConditionalSelect(Vector256.GreaterThan(raw, Vector256.Create(20f)), Vector256<float>.One, Sigmoid(raw))
            : Vector256<float>.One;

    // One value per channel of the block (zeros in padding lanes); off the hot path.
    private static Vector256<float> Gather(float* source, Block blk, long start, long stride) =>
        ScanTiles.Gather(source, blk.Width, start, stride);

    // One worker's tiles, kept per worker slot between calls (ManagedParallel.WorkerLocal) and grown on demand, so a
    // training loop does not allocate them.
    private sealed class Scratch
    {
        public static Scratch ForThisWorker(int states)
        {
            var s = ManagedParallel.WorkerLocal<Scratch>();
            if (s.States < states) s.Grow(states);
            return s;
        }

        // Sizes the per-state buffers for `states` (they are only ever grown).
        private void Grow(int states)
        {
            States = states;
            A = new Vector256<float>[states];
            H = new Vector256<float>[states];
            DA = new double[states * Lanes];
            Tiles = new Vector256<float>[states * Tile];
        }

        public int States { get; private set; }

        public readonly float[] Stage = new float[Tile * Lanes];                  // [Tile, 8] transpose buffer
        public readonly Vector256<float>[] Dt = new Vector256<float>[Tile];       // [Tile] x 8 channels
        public readonly Vector256<float>[] U = new Vector256<float>[Tile];        // [Tile]
        public readonly Vector256<float>[] DtU = new Vector256<float>[Tile];      // [Tile] dt u
        public readonly Vector256<float>[] Y = new Vector256<float>[Tile];        // [Tile] y (forward) or du (backward)
        public readonly Vector256<float>[] Raw = new Vector256<float>[Tile];      // [Tile] delta + bias
        public readonly Vector256<float>[] Z = new Vector256<float>[Tile];        // [Tile]
        public readonly Vector256<float>[] Gate = new Vector256<float>[Tile];     // [Tile] dL/dy
        public readonly Vector256<float>[] Work = new Vector256<float>[Tile];     // [Tile] pre-gate y, dz
        public readonly Vector256<float>[] DtGrad = new Vector256<float>[Tile];   // [Tile] dL/ddt, then ddelta
        public Vector256<float>[] A { get; private set; } = [];                   // [Nst]
        public Vector256<float>[] H { get; private set; } = [];                   // [Nst] state, or the dh carry
        public double[] DA { get; private set; } = [];                            // [Nst, 8] dA summed over time
        public Vector256<float>[] Tiles { get; private set; } = [];               // [Nst, Tile] states of a tile
    }

    // u, raw = delta + bias, dt and dt u of one tile.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void LoadSteps(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, long start, int len,
        Vector256<float> bias, Scratch s)
    {
        ScanTiles.Load(x.U, start, p.L, blk.Width, len, s.Stage, s.U);
        ScanTiles.Load(x.Delta, start, p.L, blk.Width, len, s.Stage, s.Raw);
        for (var t = 0; t < len; t++)
        {
            var raw = s.Raw[t] + bias;
            s.Raw[t] = raw;
            s.Dt[t] = p.DeltaSoftplus ? Softplus(raw) : raw;
            s.DtU[t] = s.Dt[t] * s.U[t];
        }
    }

    public static void Forward(SelectiveScanParams p, SelectiveScanHostInputs x, float* output, float* preGate,
        float* lastState, float* chunkStates)
    {
        var body = new ForwardBlocks { P = p, X = x, Output = output, PreGate = preGate, LastState = lastState, ChunkStates = chunkStates };
        ManagedParallel.For(p.B * p.G * BlocksPerGroup(p), ref body);
    }

    private struct ForwardBlocks : IParallelBody
    {
        public SelectiveScanParams P;
        public SelectiveScanHostInputs X;
        public float* Output, PreGate, LastState, ChunkStates;

        public readonly void Run(int index) =>
            ForwardBlock(P, X, BlockAt(P, index), Scratch.ForThisWorker(P.Nst), Output, PreGate, LastState, ChunkStates);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, Scratch s,
        float* output, float* preGate, float* lastState, float* chunkStates)
    {
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = Gather(x.InitialState, blk, (long)row0 * p.Nst + n, p.Nst);
        }
        var bias = Gather(x.DeltaBias, blk, blk.D0, 1);
        var skip = Gather(x.D, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        for (var chunk = 0; chunk < p.Chunks; chunk++)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            var start = (long)row0 * p.L + l0;
            LoadSteps(p, x, blk, start, len, bias, s);
            Array.Clear(s.Y);
            for (var n = 0; n < p.Nst; n++)
            {
                var h = s.H[n];
                for (var j = 0; j < blk.Width; j++)
                    chunkStates[(((long)row0 + j) * p.Chunks + chunk) * p.Nst + n] = h[j];
                var a = s.A[n];
                var bRow = new ReadOnlySpan<float>(x.B + bcBase + (long)n * p.L + l0, len);
                var cRow = new ReadOnlySpan<float>(x.C + bcBase + (long)n * p.L + l0, len);
                for (var t = 0; t < len; t++)
                {
                    h = Exp(s.Dt[t] * a) * h + s.DtU[t] * bRow[t];
                    s.Y[t] += cRow[t] * h;
                }
                s.H[n] = h;
            }
            for (var t = 0; t < len; t++) s.Y[t] += skip * s.U[t];
            if (x.Z != null)
            {
                ScanTiles.Store(s.Y, preGate, start, p.L, blk.Width, len, s.Stage);
                ScanTiles.Load(x.Z, start, p.L, blk.Width, len, s.Stage, s.Z);
                for (var t = 0; t < len; t++) s.Y[t] *= s.Z[t] * Sigmoid(s.Z[t]);
            }
            ScanTiles.Store(s.Y, output, start, p.L, blk.Width, len, s.Stage);
        }
        for (var n = 0; n < p.Nst; n++)
            for (var j = 0; j < blk.Width; j++)
                lastState[((long)row0 + j) * p.Nst + n] = s.H[n][j];
    }

    public static void Backward(SelectiveScanParams p, SelectiveScanHostInputs x, float* dOut, float* chunkStates,
        float* preGate, float* du, float* dDelta, float* dA, float* dB, float* dC,
        float* dD, float* dz, float* dDeltaBias, float* dInitialState)
    {
        var perGroup = BlocksPerGroup(p);
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
        var body = new BackwardBlocks
        {
            P = p, X = x, DOut = dOut, ChunkStates = chunkStates, PreGate = preGate, DU = du, DDelta = dDelta, DZ = dz,
            DInitialState = dInitialState, PartialB = partialB, PartialC = partialC, StateTimes = stateTimes, RowSums = rowSums,
        };
        ManagedParallel.For(blocks, ref body);
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

    private struct BackwardBlocks : IParallelBody
    {
        public SelectiveScanParams P;
        public SelectiveScanHostInputs X;
        public float* DOut, ChunkStates, PreGate, DU, DDelta, DZ, DInitialState, PartialB, PartialC;
        public long StateTimes;
        public double* RowSums;

        public readonly void Run(int index) =>
            BackwardBlock(P, X, BlockAt(P, index), Scratch.ForThisWorker(P.Nst), DOut, ChunkStates, PreGate, DU, DDelta, DZ,
                DInitialState, PartialB, PartialC, index * StateTimes, RowSums);
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
    private static void BackwardBlock(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, Scratch s,
        float* dOut, float* chunkStates, float* preGate, float* du, float* dDelta, float* dz,
        float* dInitialState, float* partialB, float* partialC, long partialBase, double* rowSums)
    {
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = Vector256<float>.Zero; // the dh carry: a_{l+1} dh_{l+1} for the step after the current tile
        }
        Array.Clear(s.DA);
        var bias = Gather(x.DeltaBias, blk, blk.D0, 1);
        var skip = Gather(x.D, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        Span<double> sumSkip = stackalloc double[Lanes];
        Span<double> sumBias = stackalloc double[Lanes];
        sumSkip.Clear();
        sumBias.Clear();
        for (var chunk = p.Chunks - 1; chunk >= 0; chunk--)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            var start = (long)row0 * p.L + l0;
            LoadSteps(p, x, blk, start, len, bias, s);
            ScanTiles.Load(dOut, start, p.L, blk.Width, len, s.Stage, s.Gate);
            if (x.Z != null)
            {
                // dz = dOut (y + D u) silu'(z); the gradient reaching y is dOut silu(z).
                ScanTiles.Load(x.Z, start, p.L, blk.Width, len, s.Stage, s.Z);
                ScanTiles.Load(preGate, start, p.L, blk.Width, len, s.Stage, s.Work);
                for (var t = 0; t < len; t++)
                {
                    var sig = Sigmoid(s.Z[t]);
                    s.Work[t] = s.Gate[t] * s.Work[t] * (sig * (Vector256<float>.One + s.Z[t] * (Vector256<float>.One - sig)));
                    s.Gate[t] *= s.Z[t] * sig;
                }
                ScanTiles.Store(s.Work, dz, start, p.L, blk.Width, len, s.Stage);
            }
            var tileSkip = Vector256<float>.Zero;
            for (var t = 0; t < len; t++)
            {
                s.Y[t] = s.Gate[t] * skip; // du accumulates here
                s.DtGrad[t] = Vector256<float>.Zero;
                tileSkip += s.Gate[t] * s.U[t];
            }
            for (var n = 0; n < p.Nst; n++)
            {
                // Recompute the tile's states from the state saved at its start, then run the reverse recurrence.
                var h = Gather(chunkStates, blk, ((long)row0 * p.Chunks + chunk) * p.Nst + n, (long)p.Chunks * p.Nst);
                var hStart = h;
                var a = s.A[n];
                var bRow = new ReadOnlySpan<float>(x.B + bcBase + (long)n * p.L + l0, len);
                for (var t = 0; t < len; t++)
                {
                    h = Exp(s.Dt[t] * a) * h + s.DtU[t] * bRow[t];
                    s.Tiles[n * Tile + t] = h;
                }
                Reverse(s, n, len, hStart, bRow, new ReadOnlySpan<float>(x.C + bcBase + (long)n * p.L + l0, len),
                    new Span<float>(partialB + partialBase + (long)n * p.L + l0, len),
                    new Span<float>(partialC + partialBase + (long)n * p.L + l0, len));
            }
            var tileBias = Vector256<float>.Zero;
            for (var t = 0; t < len; t++)
            {
                s.DtGrad[t] *= DtDerivative(p.DeltaSoftplus, s.Raw[t]);
                tileBias += s.DtGrad[t];
            }
            ScanTiles.Store(s.Y, du, start, p.L, blk.Width, len, s.Stage);
            ScanTiles.Store(s.DtGrad, dDelta, start, p.L, blk.Width, len, s.Stage);
            for (var j = 0; j < Lanes; j++)
            {
                sumSkip[j] += tileSkip[j];
                sumBias[j] += tileBias[j];
            }
        }
        for (var j = 0; j < blk.Width; j++)
        {
            var row = (long)row0 + j;
            for (var n = 0; n < p.Nst; n++)
            {
                rowSums[row * (p.Nst + 2) + n] = s.DA[n * Lanes + j];
                if (dInitialState != null) dInitialState[row * p.Nst + n] = s.H[n][j];
            }
            rowSums[row * (p.Nst + 2) + p.Nst] = sumSkip[j];
            rowSums[row * (p.Nst + 2) + p.Nst + 1] = sumBias[j];
        }
    }

    // sum_j x_j y_j over the 8 channels, products and sum in float64, rounded once: a group's channels can cancel, and
    // float32 products and pairwise sums cost dB and dC up to 3 ulps against the naive loop's 1 (2026-11-28).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ChannelSum(Vector256<float> x, Vector256<float> y)
    {
        var (xLower, xUpper) = Vector256.Widen(x);
        var (yLower, yUpper) = Vector256.Widen(y);
        return (float)Vector256.Sum(Vector256.FusedMultiplyAdd(xLower, yLower, xUpper * yUpper));
    }

    // Reverse recurrence of state n over one tile: dh_l = g_l C_l + carry, then carry = a_l dh_l.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Reverse(Scratch s, int n, int len, Vector256<float> hStart,
        ReadOnlySpan<float> bRow, ReadOnlySpan<float> cRow, Span<float> dBRow, Span<float> dCRow)
    {
        var a = s.A[n];
        var dh = s.H[n];
        var dAn = Vector256<float>.Zero;
        for (var t = len - 1; t >= 0; t--)
        {
            var dt = s.Dt[t];
            var h = s.Tiles[n * Tile + t];
            var hPrev = t > 0 ? s.Tiles[n * Tile + t - 1] : hStart;
            dh += s.Gate[t] * cRow[t];
            var decay = Exp(dt * a);
            var dDecay = dh * hPrev * decay; // dL/d(dt A)
            dAn += dDecay * dt;
            s.DtGrad[t] += dDecay * a + dh * s.U[t] * bRow[t];
            s.Y[t] += dh * dt * bRow[t];
            dBRow[t] = ChannelSum(dh * dt, s.U[t]);
            dCRow[t] = ChannelSum(s.Gate[t], h);
            dh = decay * dh;
        }
        s.H[n] = dh;
        for (var j = 0; j < Lanes; j++) s.DA[n * Lanes + j] += dAn[j];
    }
}
