// Permute.SwapMiddle on the Managed backend: x [A, P, Q, R] -> y [A, Q, P, R]. A memory-bound copy: square tiles of
// (p, q) so that both the strided reads of x and the contiguous writes of y stay in L1 (for R = 1 a 32 x 32 tile of
// floats is 4 KB), runs of R copied whole; Parallel.For over (a, tile row) once the tensor is large.
//
// Versions:
//   1  (2026-12-03) tile edge 32 for R < 4, 8 for R < 32, 1 (plain run copies) above. Not timed yet.
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
            // Spans cannot enter the parallel body; it gets the pinned addresses instead.
            nint ax = (nint)px, ay = (nint)py;
            void Row(int item)
            {
                var matrix = item / tilesP;
                var p0 = item % tilesP * edge;
                for (var tq = 0; tq < tilesQ; tq++)
                    CopyTile((float*)ax, (float*)ay, matrix, p0, Math.Min(p, p0 + edge), tq * edge, Math.Min(q, (tq + 1) * edge), p, q, r);
            }
            if ((long)a * p * q * r < ParallelThreshold)
                for (var item = 0; item < a * tilesP; item++) Row(item);
            else
                Parallel.For(0, a * tilesP, Row);
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
