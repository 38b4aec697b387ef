// Managed SGEMM for the Linear layer: C[M, N] = A[M, K] . B[K, N], written once over the vector width and specialised
// at start-up to the widest accelerated one (Vector512 on AVX-512, Vector256 on AVX2, Vector128 on SSE and Arm NEON),
// so no machine runs an emulated width. A and B are read through (row, column) strides, so the three products of a
// linear layer need no transposed copies: y = x W^T, dx = dy W and dW = dy^T x (bindings/Ops/Linear.cs).
//
// Shapes: M rows of C, N columns of C, K the contracted dimension. MR = 6 rows x NR = 2 vectors per micro-kernel.
//
// Versions (time with `routekit-perf gemm`):
//   v1 (2026-12-02) BLIS-style: the output is cut into MC x NC tiles, one task each, claimed by the caller and pooled
//      thread-pool workers (Parallel.For allocated ~2 KB per call, see Job); deterministic: every element is summed by
//      one thread in one order whatever the schedule. A task walks K in KC blocks; per block it
//      packs A[MC, KC] into MR-row micro-panels ([KC][MR], zero-padded) and B[KC, NC] into NR-vector micro-panels
//      ([KC][NR * lanes], zero-padded) in 64-byte aligned per-thread buffers allocated once per thread (so repeated calls
//      allocate nothing), then runs the 6 x 2-vector micro-kernel over them: 12 accumulators + 2 B vectors + 1 broadcast
//      = 15 registers, which fits AVX2's 16 ymm as well as AVX-512's and NEON's 32 (BLIS's Haswell kernel shape). Per k
//      step 2 loads and 6 broadcasts feed 12 independent FMA chains, enough for 2 FMA pipes x 4-5 cycles latency.
//      KC = 128 keeps one B micro-panel (KC x 2 vectors, 16 KiB at 512 bits) in half of L1 while the A block (48 KiB) sits
//      in L2. 2026-12-02, 2-core AMD EPYC (AVX-512 with BF16, so Zen 4 or later: 32 KiB L1D), one thread
//      (DOTNET_PROCESSOR_COUNT=1), load average ~200: KC = 256 (a 32 KiB micro-panel, all of L1) gave 106 / 96 / 86
//      GFLOP per CPU-second at 512^3 / 1024^3 / 2048^3, KC = 128 gave 119 / 102 / 96, against one core's FMA peak of
//      ~205; within the busy machine's noise (+-10% between runs) but the same sign at every size. Retune on a quiet
//      machine. (v2 below did, and reversed it.) The JIT keeps the 12 accumulators in zmm0-11 and the B vectors in zmm12-13 and broadcasts from memory
//      (checked with DOTNET_JitDisasm=Micro): no spills.
//      The first K block stores, later ones add to C: each C element is a sequential FMA chain over k, like the naive
//      loop, so the error is the naive error (no error-free tricks needed for the 2x rule). Multiply-add is
//      MultiplyAddEstimate: fused where the hardware has FMA, multiply then add where it does not (.NET groups FMA
//      with AVX2, so DOTNET_EnableAVX2=0 may turn it off), never the software-emulated fused operation.
//   v2 (2026-12-02) KC = 256 instead of 128, measured on a quiet machine (1-minute load 0.93-0.94 at start, routekit-perf
//      gemm, 2 threads): KC = 128 gave 45% / 54% / 49% of the FMA peak at 512^3 / 1024^3 / 2048^3 (0.60x / 0.71x /
//      0.65x ONNX Runtime), KC = 256 gave 49% / 59% / 54% (0.70x / 0.74x / 0.69x). MC = 192 with KC = 256 was worse
//      (42% / 51% / 52%). Half as many C tile reloads per element; the B micro-panel now fills L1.
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

/// <summary>One matrix operand: base pointer and the strides of its (row, column) element.</summary>
/// <param name="Data">Element (r, c) is at Data[r * Row + c * Column].</param>
/// <param name="Row">Stride between rows, in floats.</param>
/// <param name="Column">Stride between columns, in floats.</param>
internal readonly unsafe record struct MatrixOperand(nint Data, nint Row, nint Column)
{
    public float* Pointer => (float*)Data;
}

/// <summary>The register-blocked, packed, parallel SGEMM of the Managed backend (see the file header).</summary>
internal static unsafe class Sgemm
{
    /// <summary>Rows of the micro-kernel.</summary>
    internal const int MR = 6;

    /// <summary>Vectors (of the chosen width) per micro-kernel row.</summary>
    internal const int NR = 2;

    /// <summary>K block: one B micro-panel (KC x NR vectors, 32 KiB at 512 bits) fills L1 (v2, see the file header).</summary>
    internal const int KC = 256;

    /// <summary>Rows per task and per packed A block (a multiple of <see cref="MR"/>).</summary>
    internal const int MC = 96;

    /// <summary>Columns per task and per packed B block (a multiple of NR x 16, the widest micro-panel).</summary>
    internal const int NC = 512;

    /// <summary>The vector width in bits the GEMM runs at on this machine: the widest hardware-accelerated one.</summary>
    internal static readonly int VectorBits = Math.Max(SimdWidth.WidestBits, 128);

    /// <summary>
    /// One worker slot's packing buffers (ManagedParallel.WorkerLocal), allocated once per slot and freed with the calling
    /// thread's job; per pool thread ([ThreadStatic]) they leaked with every retired thread.
    /// </summary>
    private sealed class Packs
    {
        public readonly float* A = (float*)NativeMemory.AlignedAlloc((nuint)(MC * KC * sizeof(float)), 64); // [MC / MR][KC][MR]
        public readonly float* B = (float*)NativeMemory.AlignedAlloc((nuint)(NC * KC * sizeof(float)), 64); // [NC / (NR lanes)][KC][NR lanes]

        ~Packs()
        {
            NativeMemory.AlignedFree(A);
            NativeMemory.AlignedFree(B);
        }
    }

    /// <summary>
    /// C[M, N] = A[M, K] . B[K, N] (overwriting C, row-major with leading dimension <paramref name="ldc"/>); A and B
    /// through their strides. The caller keeps all three pinned for the call. <paramref name="vectorBits"/> forces a
    /// width (128, 256 or 512; tests run every width on one machine), 0 takes SimdWidth.ActiveBits (the widest accelerated width unless a test or benchmark forced one).
    /// </summary>
    internal static void Multiply(int m, int n, int k, MatrixOperand a, MatrixOperand b, float* c, nint ldc, int vectorBits = 0)
    {
        if (vectorBits is not (0 or 128 or 256 or 512))
            throw new ArgumentOutOfRangeException(nameof(vectorBits), vectorBits, "128, 256, 512, or 0 for the widest accelerated width.");
        var bits = vectorBits == 0 ? SimdWidth.ActiveBits : vectorBits;
        var job = new Job(m, n, k, a, b, c, ldc, bits, null, 0);
        if (job.TilesM > 1)
        {
            // Several row tiles read the same B: pack all of it once, in parallel over (k block, micro-panel), into this
            // thread's shared buffer, instead of once per row tile (a [4448, 384] x [384, 1536] BERT product packed its
            // weights 47 times). The packed layout is the per-tile one laid end to end: block k0 starts at k0 * nPad,
            // the panel of columns q (a multiple of the panel width) at q * kc within it.
            var width = NR * (bits / 32);
            var nPad = (n + width - 1) / width * width;
            var shared = SharedPack.For((long)k * nPad);
            var pack = new PackJob(b, shared, n, k, nPad, width);
            ManagedParallel.For(pack.Units, ref pack);
            job = new Job(m, n, k, a, b, c, ldc, bits, shared, nPad);
        }
        ManagedParallel.For(job.TilesM * job.TilesN, ref job);
    }

    /// <summary>The calling thread's buffer for a whole packed B, grown as needed and freed with the thread.</summary>
    private sealed class SharedPack
    {
        [ThreadStatic] private static SharedPack? current;
        private float* data;
        private long capacity;

        public static float* For(long floats)
        {
            var pack = current ??= new SharedPack();
            if (pack.capacity < floats)
            {
                NativeMemory.AlignedFree(pack.data);
                pack.data = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
                pack.capacity = floats;
            }
            return pack.data;
        }

        ~SharedPack() => NativeMemory.AlignedFree(data);
    }

    // Packs one (k block, micro-panel) of B per index into the shared buffer.
    private readonly struct PackJob : IParallelBody
    {
        private readonly MatrixOperand b;
        private readonly nint dst;
        private readonly int n, k, nPad, width, panels;

        public PackJob(MatrixOperand b, float* dst, int n, int k, int nPad, int width)
        {
            (this.b, this.dst, this.n, this.k, this.nPad, this.width) = (b, (nint)dst, n, k, nPad, width);
            panels = nPad / width;
            Units = (k + KC - 1) / KC * panels;
        }

        public int Units { get; }

        public void Run(int index)
        {
            var k0 = index / panels * KC;
            var q = index % panels * width;
            var kc = Math.Min(KC, k - k0);
            PackPanels(b, (float*)dst + (nint)k0 * nPad + (nint)q * kc, q, k0, Math.Min(width, n - q), kc, width);
        }
    }

    /// <summary>db[O] = sum over t of dy[t, o] for dy [T, O], summed in t order (deterministic), vectorised over o.</summary>
    internal static void ColumnSums(ReadOnlySpan<float> dy, int tokens, int outputs, Span<float> db)
    {
        db[..outputs].Clear();
        for (var t = 0; t < tokens; t++)
            TensorPrimitives.Add(db[..outputs], dy.Slice(t * outputs, outputs), db[..outputs]);
    }

    /// <summary>y[t, :] += b for every row of y [T, O].</summary>
    internal static void AddRowVector(Span<float> y, int tokens, int outputs, ReadOnlySpan<float> b)
    {
        for (var t = 0; t < tokens; t++)
        {
            var row = y.Slice(t * outputs, outputs);
            TensorPrimitives.Add(row, b, row);
        }
    }

    // One call's arguments and its tiles: the body of ManagedParallel.For (bindings/Managed/ManagedParallel.cs), which fans
    // the tiles out over the caller and pooled thread-pool workers without allocating (Parallel.For allocated ~2 KB per
    // call, measured 2026-12-02: 6.3 KB for a forward + backward).
    private readonly struct Job : IParallelBody
    {
        private readonly int m, n, k;
        private readonly MatrixOperand a, b;
        private readonly nint c, ldc;
        private readonly int bits;
        private readonly nint packedB; // the whole B packed by PackJob (rows of nPad columns per k), or 0: each tile packs its own block
        private readonly int nPad;

        public Job(int m, int n, int k, MatrixOperand a, MatrixOperand b, float* c, nint ldc, int bits, float* packedB, int nPad)
        {
            (this.m, this.n, this.k, this.a, this.b, this.c, this.ldc, this.bits) = (m, n, k, a, b, (nint)c, ldc, bits);
            (this.packedB, this.nPad) = ((nint)packedB, nPad);
            TilesM = (m + MC - 1) / MC;
            // Column blocks of NC, narrowed (in whole micro-panels) when there are fewer than two tiles per worker slot:
            // a [63, 384] x [384, 384] product (one BERT sentence) is one MC x NC tile, which left every core but one
            // idle. Every element of C is still summed by one tile in the same k order, so results do not change.
            var width = NR * (bits / 32);
            var ncTile = NC;
            var wanted = 2 * ManagedParallel.SlotCount;
            if (TilesM * ((n + NC - 1) / NC) < wanted)
            {
                var perRow = (wanted + TilesM - 1) / TilesM;
                ncTile = Math.Min(NC, Math.Max(width, ((n + perRow - 1) / perRow + width - 1) / width * width));
            }
            NcTile = ncTile;
            TilesN = (n + ncTile - 1) / ncTile;
        }

        public int TilesM { get; }
        public int TilesN { get; }
        private int NcTile { get; }

        public void Run(int tile)
        {
            var i0 = tile / TilesN * MC;
            var j0 = tile % TilesN * NcTile;
            var mc = Math.Min(MC, m - i0);
            var nc = Math.Min(NcTile, n - j0);
            switch (bits)
            {
                case 512: Tile<Simd512, Vector512<float>>(i0, j0, mc, nc); break;
                case 256: Tile<Simd256, Vector256<float>>(i0, j0, mc, nc); break;
                default: Tile<Simd128, Vector128<float>>(i0, j0, mc, nc); break;
            }
        }

        private void Tile<TLanes, TVector>(int i0, int j0, int mc, int nc)
            where TLanes : struct, ISimdWidth<TVector> where TVector : struct
        {
            var width = NR * TLanes.Lanes;                                   // columns per B micro-panel
            var packs = ManagedParallel.WorkerLocal<Packs>();
            var pa = packs.A;
            var pb = packs.B;
            var cTile = (float*)c + i0 * ldc + j0;
            var edge = stackalloc float[MR * NR * 16];                       // [MR, width]: partial tiles land here first
            for (var k0 = 0; k0 < k; k0 += KC)
            {
                var kc = Math.Min(KC, k - k0);
                PackA(pa, i0, k0, mc, kc);
                if (packedB != 0) pb = (float*)packedB + (nint)k0 * nPad + (nint)j0 * kc;
                else PackPanels(b, pb, j0, k0, nc, kc, width);
                var accumulate = k0 > 0;
                for (var q = 0; q < nc; q += width)
                {
                    var cols = Math.Min(width, nc - q);
                    var bPanel = pb + (nint)q * kc;
                    for (var p = 0; p < mc; p += MR)
                    {
                        var rows = Math.Min(MR, mc - p);
                        var aPanel = pa + (nint)p * kc;
                        var cBlock = cTile + p * ldc + q;
                        if (rows == MR && cols == width)
                        {
                            Micro<TLanes, TVector>(aPanel, bPanel, kc, cBlock, ldc, accumulate);
                            continue;
                        }
                        Micro<TLanes, TVector>(aPanel, bPanel, kc, edge, width, accumulate: false);
                        for (var r = 0; r < rows; r++)
                        for (var col = 0; col < cols; col++)
                            cBlock[r * ldc + col] = accumulate ? cBlock[r * ldc + col] + edge[r * width + col] : edge[r * width + col];
                    }
                }
            }
        }

        // A[i0 .. i0 + mc, k0 .. k0 + kc] into micro-panels [mc / MR][kc][MR]; rows past mc are zero.
        private void PackA(float* dst, int i0, int k0, int mc, int kc)
        {
            var src = a.Pointer + i0 * a.Row + k0 * a.Column;
            for (var p = 0; p < mc; p += MR)
            {
                var panel = dst + (nint)p * kc;
                var rows = Math.Min(MR, mc - p);
                if (a.Column == 1)
                {
                    // Rows contiguous in k (x, dy): walk each row along k.
                    for (var r = 0; r < MR; r++)
                    {
                        var row = src + (p + r) * a.Row;
                        if (r < rows) for (var kk = 0; kk < kc; kk++) panel[kk * MR + r] = row[kk];
                        else for (var kk = 0; kk < kc; kk++) panel[kk * MR + r] = 0f;
                    }
                }
                else
                {
                    // Columns contiguous in rows (dy^T): walk each k across the rows.
                    for (var kk = 0; kk < kc; kk++)
                    {
                        var col = src + kk * a.Column + p * a.Row;
                        var r = 0;
                        for (; r < rows; r++) panel[kk * MR + r] = col[r * a.Row];
                        for (; r < MR; r++) panel[kk * MR + r] = 0f;
                    }
                }
            }
        }
    }

    // B[k0 .. k0 + kc, j0 .. j0 + nc] into micro-panels [nc / width][kc][width]; columns past nc are zero.
    private static void PackPanels(MatrixOperand b, float* dst, int j0, int k0, int nc, int kc, int width)
    {
        var src = b.Pointer + k0 * b.Row + j0 * b.Column;
        for (var q = 0; q < nc; q += width)
        {
            var panel = dst + (nint)q * kc;
            var cols = Math.Min(width, nc - q);
            if (b.Column == 1)
            {
                // Rows contiguous in columns (W in dx = dy W, x in dW = dy^T x): copy row segments.
                for (var kk = 0; kk < kc; kk++)
                {
                    var row = src + kk * b.Row + q;
                    var to = panel + kk * width;
                    Buffer.MemoryCopy(row, to, width * sizeof(float), cols * sizeof(float));
                    for (var col = cols; col < width; col++) to[col] = 0f;
                }
            }
            else
            {
                // Columns contiguous in k (W^T in y = x W^T): walk each column along k.
                for (var col = 0; col < width; col++)
                {
                    var column = src + (q + col) * b.Column;
                    if (col < cols) for (var kk = 0; kk < kc; kk++) panel[kk * width + col] = column[kk * b.Row];
                    else for (var kk = 0; kk < kc; kk++) panel[kk * width + col] = 0f;
                }
            }
        }
    }

    /// <summary>C[MR, NR lanes] (+)= A-panel [kc][MR] . B-panel [kc][NR lanes]; C row-major with leading dimension ldc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro<TLanes, TVector>(float* a, float* b, int kc, float* c, nint ldc, bool accumulate)
        where TLanes : struct, ISimdWidth<TVector> where TVector : struct
    {
        var lanes = TLanes.Lanes;
        TVector c00 = TLanes.Zero, c01 = TLanes.Zero, c10 = TLanes.Zero, c11 = TLanes.Zero, c20 = TLanes.Zero, c21 = TLanes.Zero;
        TVector c30 = TLanes.Zero, c31 = TLanes.Zero, c40 = TLanes.Zero, c41 = TLanes.Zero, c50 = TLanes.Zero, c51 = TLanes.Zero;
        for (var kk = 0; kk < kc; kk++)
        {
            var b0 = TLanes.Load(b);
            var b1 = TLanes.Load(b + lanes);
            var x = TLanes.Broadcast(a[0]);
            c00 = TLanes.MultiplyAdd(x, b0, c00); c01 = TLanes.MultiplyAdd(x, b1, c01);
            x = TLanes.Broadcast(a[1]);
            c10 = TLanes.MultiplyAdd(x, b0, c10); c11 = TLanes.MultiplyAdd(x, b1, c11);
            x = TLanes.Broadcast(a[2]);
            c20 = TLanes.MultiplyAdd(x, b0, c20); c21 = TLanes.MultiplyAdd(x, b1, c21);
            x = TLanes.Broadcast(a[3]);
            c30 = TLanes.MultiplyAdd(x, b0, c30); c31 = TLanes.MultiplyAdd(x, b1, c31);
            x = TLanes.Broadcast(a[4]);
            c40 = TLanes.MultiplyAdd(x, b0, c40); c41 = TLanes.MultiplyAdd(x, b1, c41);
            x = TLanes.Broadcast(a[5]);
            c50 = TLanes.MultiplyAdd(x, b0, c50); c51 = TLanes.MultiplyAdd(x, b1, c51);
            a += MR;
            b += 2 * lanes;
        }
        Store<TLanes, TVector>(c, lanes, c00, c01, accumulate);
        Store<TLanes, TVector>(c + ldc, lanes, c10, c11, accumulate);
        Store<TLanes, TVector>(c + 2 * ldc, lanes, c20, c21, accumulate);
        Store<TLanes, TVector>(c + 3 * ldc, lanes, c30, c31, accumulate);
        Store<TLanes, TVector>(c + 4 * ldc, lanes, c40, c41, accumulate);
        Store<TLanes, TVector>(c + 5 * ldc, lanes, c50, c51, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TLanes, TVector>(float* c, int lanes, TVector v0, TVector v1, bool accumulate)
        where TLanes : struct, ISimdWidth<TVector> where TVector : struct
    {
        if (accumulate)
        {
            v0 = TLanes.Add(TLanes.Load(c), v0);
            v1 = TLanes.Add(TLanes.Load(c + lanes), v1);
        }
        TLanes.Store(v0, c);
        TLanes.Store(v1, c + lanes);
    }
}
