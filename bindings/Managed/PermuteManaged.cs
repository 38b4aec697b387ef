// Permute.SwapMiddle on the Managed backend: x [A, P, Q, R] -> y [A, Q, P, R]. A memory-bound copy: square tiles of
// (p, q) so that both the strided reads of x and the contiguous writes of y stay in L1 (for R = 1 a 32 x 32 tile of
// floats is 4 KB), runs of R copied whole; ManagedParallel.For over (a, tile row) once the tensor is large (no
// allocation per call).
//
// Versions:
//   1  (2026-12-03) tile edge 32 for R < 4, 8 for R < 32, 1 (plain run copies) above. Not timed yet.
//   2  (2026-12-03) Parallel.For and its closure (~2.1 KB per call) replaced by ManagedParallel.For over a struct
//      body (issue 11); same tiles, same (exact) copy.
namespace RouteKit;

internal static class PermuteManaged
{
    /// <summary>Below this many elements the copy runs on the calling thread.</summary>
    private const int ParallelThreshold = 1 << 15;

    public static unsafe void SwapMiddle(ReadOnlySpan<float> x, Span<float> y, int a, int p, int q, int r)
    {
        var edge = r < 4 ? 32 : r < 32 ? 8 : 1;
        int tilesP = (p + edge - 1) / edge, tilesQ = (q + edge - 1) / edge;
        fixed (float* px = x, py = y)
        {
            var body = new TileRows { X = px, Y = py, P = p, Q = q, R = r, Edge = edge, TilesP = tilesP, TilesQ = tilesQ };
            if ((long)a * p * q * r < ParallelThreshold)
                for (var item = 0; item < a * tilesP; item++) body.Run(item);
            else
                ManagedParallel.For(a * tilesP, ref body);
        }
    }

    // One item: the tile row p0 = (item % tilesP) edge of matrix item / tilesP, all its tiles along q.
    private unsafe struct TileRows : IParallelBody
    {
        public float* X, Y;
        public int P, Q, R, Edge, TilesP, TilesQ;

        public readonly void Run(int item)
        {
            var matrix = item / TilesP;
            var p0 = item % TilesP * Edge;
            for (var tq = 0; tq < TilesQ; tq++)
                CopyTile(X, Y, matrix, p0, Math.Min(P, p0 + Edge), tq * Edge, Math.Min(Q, (tq + 1) * Edge), P, Q, R);
        }
    }

    // y[m, qq, pp, :] = x[m, pp, qq, :] for pp in [p0, p1), qq in [q0, q1): inner loop along pp, so y is written in order.
    private static unsafe void CopyTile(float* x, float* y, int matrix, int p0, int p1, int q0, int q1, int p, int q, int r)
    {
        var baseOffset = (long)matrix * p * q * r;
        for (var qq = q0; qq < q1; qq++)
        {
            var dst = y + baseOffset + ((long)qq * p + p0) * r;
            var src = x + baseOffset + ((long)p0 * q + qq) * r;
            var stride = (long)q * r;
            if (r == 1)
                for (var pp = p0; pp < p1; pp++, src += stride) *dst++ = *src;
            else
                for (var pp = p0; pp < p1; pp++, src += stride, dst += r)
                    new ReadOnlySpan<float>(src, r).CopyTo(new Span<float>(dst, r));
        }
    }
}
