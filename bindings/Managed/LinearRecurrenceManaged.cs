// Linear recurrence on the Managed backend: SIMD across L rows (L independent recurrences per instruction, the rows
// transposed tile by tile with ScanTiles; L = 8 on Vector256, 4 on Vector128: ScanLanes.cs, chosen per call from
// SimdWidth.ActiveBits), ManagedParallel.For across blocks of L rows.
// Shapes: rows = B C, T time steps; a, x, h, dH, dA, dX [rows, T]; h0, last, dH0 [rows]; a block is up to L rows.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class LinearRecurrenceManaged
{
    private const int Tile = ScanTiles.Steps;

    // One worker's tiles, kept per worker slot between calls (ManagedParallel.WorkerLocal) so a training loop does not
    // allocate them.
    private sealed class Scratch<TV> where TV : struct
    {
        public static Scratch<TV> ForThisWorker() => ManagedParallel.WorkerLocal<Scratch<TV>>();

        public readonly float[] Stage = new float[Tile * ScanTiles.MaxLanes]; // [Tile, L] transpose buffer
        public readonly TV[] A = new TV[Tile];  // [Tile] x L rows
        public readonly TV[] X = new TV[Tile];  // [Tile] x, then dX
        public readonly TV[] H = new TV[Tile];  // [Tile] h, then dA
    }

    public static void Forward(int rows, int steps, ReadOnlySpan<float> a, ReadOnlySpan<float> x, ReadOnlySpan<float> h0, Span<float> h,
        Span<float> last)
    {
        fixed (float* pa = a, px = x, ph0 = h0, ph = h, pl = last)
        {
            if (SimdWidth.ActiveBits == 128) RunForward<Simd128, Vector128<float>>(pa, px, ph0, ph, pl, rows, steps);
            else RunForward<Simd256, Vector256<float>>(pa, px, ph0, ph, pl, rows, steps);
        }
    }

    private static void RunForward<TS, TV>(float* a, float* x, float* h0, float* h, float* last, int rows, int steps)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var body = new ForwardBlocks<TS, TV> { A = a, X = x, H0 = h0, H = h, Last = last, Rows = rows, Steps = steps };
        ManagedParallel.For((rows + TS.Lanes - 1) / TS.Lanes, ref body);
    }

    private struct ForwardBlocks<TS, TV> : IParallelBody where TS : struct, IScanLanes<TV> where TV : struct
    {
        public float* A, X, H0, H, Last;
        public int Rows, Steps;

        public readonly void Run(int block) =>
            ForwardBlock<TS, TV>(block * TS.Lanes, Math.Min(TS.Lanes, Rows - block * TS.Lanes), Steps, A, X, H0, H, Last, Scratch<TV>.ForThisWorker());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock<TS, TV>(int row0, int width, int steps, float* a, float* x, float* h0, float* h,
        float* last, Scratch<TV> s) where TS : struct, IScanLanes<TV> where TV : struct
    {
        var state = ScanTiles.Gather<TS, TV>(h0, width, row0, 1);
        for (var t0 = 0; t0 < steps; t0 += Tile)
        {
            var len = Math.Min(Tile, steps - t0);
            var start = (long)row0 * steps + t0;
            ScanTiles.Load<TS, TV>(a, start, steps, width, len, s.Stage, s.A);
            ScanTiles.Load<TS, TV>(x, start, steps, width, len, s.Stage, s.X);
            for (var t = 0; t < len; t++)
            {
                state = TS.Add(TS.Multiply(s.A[t], state), s.X[t]);
                s.H[t] = state;
            }
            ScanTiles.Store<TS, TV>(s.H, h, start, steps, width, len, s.Stage);
        }
        ScanTiles.Scatter<TS, TV>(state, last, width, row0, 1);
    }

    public static void Backward(int rows, int steps, ReadOnlySpan<float> a, ReadOnlySpan<float> h0, ReadOnlySpan<float> h,
        ReadOnlySpan<float> dH, Span<float> dA, Span<float> dX, Span<float> dH0)
    {
        fixed (float* pa = a, ph0 = h0, ph = h, pdh = dH, pda = dA, pdx = dX, pdh0 = dH0)
        {
            if (SimdWidth.ActiveBits == 128) RunBackward<Simd128, Vector128<float>>(pa, ph0, ph, pdh, pda, pdx, pdh0, rows, steps);
            else RunBackward<Simd256, Vector256<float>>(pa, ph0, ph, pdh, pda, pdx, pdh0, rows, steps);
        }
    }

    private static void RunBackward<TS, TV>(float* a, float* h0, float* h, float* dH, float* dA, float* dX, float* dH0, int rows, int steps)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var body = new BackwardBlocks<TS, TV> { A = a, H0 = h0, H = h, DH = dH, DA = dA, DX = dX, DH0 = dH0, Rows = rows, Steps = steps };
        ManagedParallel.For((rows + TS.Lanes - 1) / TS.Lanes, ref body);
    }

    private struct BackwardBlocks<TS, TV> : IParallelBody where TS : struct, IScanLanes<TV> where TV : struct
    {
        public float* A, H0, H, DH, DA, DX, DH0;
        public int Rows, Steps;

        public readonly void Run(int block) =>
            BackwardBlock<TS, TV>(block * TS.Lanes, Math.Min(TS.Lanes, Rows - block * TS.Lanes), Steps, A, H0, H, DH, DA, DX, DH0,
                Scratch<TV>.ForThisWorker());
    }

    // Tiles last to first: dh_t = dH_t + carry, dX_t = dh_t, dA_t = dh_t h_{t-1}, carry = a_t dh_t.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardBlock<TS, TV>(int row0, int width, int steps, float* a, float* h0, float* h, float* dH,
        float* dA, float* dX, float* dH0, Scratch<TV> s) where TS : struct, IScanLanes<TV> where TV : struct
    {
        var carry = TS.Zero; // a_{t+1} dh_{t+1} for the step after the current tile
        var initial = ScanTiles.Gather<TS, TV>(h0, width, row0, 1);
        for (var t0 = (steps - 1) / Tile * Tile; t0 >= 0; t0 -= Tile)
        {
            var len = Math.Min(Tile, steps - t0);
            var start = (long)row0 * steps + t0;
            ScanTiles.Load<TS, TV>(a, start, steps, width, len, s.Stage, s.A);
            ScanTiles.Load<TS, TV>(dH, start, steps, width, len, s.Stage, s.X);
            ScanTiles.Load<TS, TV>(h, start, steps, width, len, s.Stage, s.H);
            var before = t0 > 0 ? ScanTiles.Gather<TS, TV>(h, width, start - 1, steps) : initial; // h_{t0-1}
            for (var t = len - 1; t >= 0; t--)
            {
                var dh = TS.Add(s.X[t], carry);
                carry = TS.Multiply(s.A[t], dh);
                s.X[t] = dh;
                s.H[t] = TS.Multiply(dh, t > 0 ? s.H[t - 1] : before);
            }
            ScanTiles.Store<TS, TV>(s.X, dX, start, steps, width, len, s.Stage);
            ScanTiles.Store<TS, TV>(s.H, dA, start, steps, width, len, s.Stage);
        }
        if (dH0 != null) ScanTiles.Scatter<TS, TV>(carry, dH0, width, row0, 1);
    }
}
