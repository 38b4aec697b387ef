// Linear recurrence on the Managed backend: Vector256 SIMD across 8 rows (8 independent recurrences per
// instruction, the rows transposed tile by tile with ScanTiles), ManagedParallel.For across blocks of 8 rows.
// Shapes: rows = B C, T time steps; a, x, h, dH, dA, dX [rows, T]; h0, last, dH0 [rows]; a block is up to 8 rows.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class LinearRecurrenceManaged
{
    private const int Lanes = ScanTiles.Lanes;
    private const int Tile = ScanTiles.Steps;

    // One worker's tiles, kept per worker slot between calls (ManagedParallel.WorkerLocal) so a training loop does not
    // allocate them.
    private sealed class Scratch
    {
        public static Scratch ForThisWorker() => ManagedParallel.WorkerLocal<Scratch>();

        public readonly float[] Stage = new float[Tile * Lanes];            // [Tile, 8] transpose buffer
        public readonly Vector256<float>[] A = new Vector256<float>[Tile];  // [Tile] x 8 rows
        public readonly Vector256<float>[] X = new Vector256<float>[Tile];  // [Tile] x, then dX
        public readonly Vector256<float>[] H = new Vector256<float>[Tile];  // [Tile] h, then dA
    }

    public static void Forward(int rows, int steps, ReadOnlySpan<float> a, ReadOnlySpan<float> x, ReadOnlySpan<float> h0, Span<float> h,
        Span<float> last)
    {
        fixed (float* pa = a, px = x, ph0 = h0, ph = h, pl = last)
        {
            var body = new ForwardBlocks { A = pa, X = px, H0 = ph0, H = ph, Last = pl, Rows = rows, Steps = steps };
            ManagedParallel.For((rows + Lanes - 1) / Lanes, ref body);
        }
    }

    private struct ForwardBlocks : IParallelBody
    {
        public float* A, X, H0, H, Last;
        public int Rows, Steps;

        public readonly void Run(int block) =>
            ForwardBlock(block * Lanes, Math.Min(Lanes, Rows - block * Lanes), Steps, A, X, H0, H, Last, Scratch.ForThisWorker());
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock(int row0, int width, int steps, float* a, float* x, float* h0, float* h,
        float* last, Scratch s)
    {
        var state = ScanTiles.Gather(h0, width, row0, 1);
        for (var t0 = 0; t0 < steps; t0 += Tile)
        {
            var len = Math.Min(Tile, steps - t0);
            var start = (long)row0 * steps + t0;
            ScanTiles.Load(a, start, steps, width, len, s.Stage, s.A);
            ScanTiles.Load(x, start, steps, width, len, s.Stage, s.X);
            for (var t = 0; t < len; t++)
            {
                state = s.A[t] * state + s.X[t];
                s.H[t] = state;
            }
            ScanTiles.Store(s.H, h, start, steps, width, len, s.Stage);
        }
        ScanTiles.Scatter(state, last, width, row0, 1);
    }

    public static void Backward(int rows, int steps, ReadOnlySpan<float> a, ReadOnlySpan<float> h0, ReadOnlySpan<float> h,
        ReadOnlySpan<float> dH, Span<float> dA, Span<float> dX, Span<float> dH0)
    {
        fixed (float* pa = a, ph0 = h0, ph = h, pdh = dH, pda = dA, pdx = dX, pdh0 = dH0)
        {
            var body = new BackwardBlocks { A = pa, H0 = ph0, H = ph, DH = pdh, DA = pda, DX = pdx, DH0 = pdh0, Rows = rows, Steps = steps };
            ManagedParallel.For((rows + Lanes - 1) / Lanes, ref body);
        }
    }

    private struct BackwardBlocks : IParallelBody
    {
        public float* A, H0, H, DH, DA, DX, DH0;
        public int Rows, Steps;

        public readonly void Run(int block) =>
            BackwardBlock(block * Lanes, Math.Min(Lanes, Rows - block * Lanes), Steps, A, H0, H, DH, DA, DX, DH0, Scratch.ForThisWorker());
    }

    // Tiles last to first: dh_t = dH_t + carry, dX_t = dh_t, dA_t = dh_t h_{t-1}, carry = a_t dh_t.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardBlock(int row0, int width, int steps, float* a, float* h0, float* h, float* dH,
        float* dA, float* dX, float* dH0, Scratch s)
    {
        var carry = Vector256<float>.Zero; // a_{t+1} dh_{t+1} for the step after the current tile
        var initial = ScanTiles.Gather(h0, width, row0, 1);
        for (var t0 = (steps - 1) / Tile * Tile; t0 >= 0; t0 -= Tile)
        {
            var len = Math.Min(Tile, steps - t0);
            var start = (long)row0 * steps + t0;
            ScanTiles.Load(a, start, steps, width, len, s.Stage, s.A);
            ScanTiles.Load(dH, start, steps, width, len, s.Stage, s.X);
            ScanTiles.Load(h, start, steps, width, len, s.Stage, s.H);
            var before = t0 > 0 ? ScanTiles.Gather(h, width, start - 1, steps) : initial; // h_{t0-1}
            for (var t = len - 1; t >= 0; t--)
            {
                var dh = s.X[t] + carry;
                carry = s.A[t] * dh;
                s.X[t] = dh;
                s.H[t] = dh * (t > 0 ? s.H[t - 1] : before);
            }
            ScanTiles.Store(s.X, dX, start, steps, width, len, s.Stage);
            ScanTiles.Store(s.H, dA, start, steps, width, len, s.Stage);
        }
        if (dH0 != null) ScanTiles.Scatter(carry, dH0, width, row0, 1);
    }
}
