// Residual add on the Managed backend: y = x + r and dst += src over n elements, through TensorPrimitives.Add (SIMD at
// the widest accelerated width, any tail handled), ManagedParallel.For over chunks once n is large (no allocation per
// call). TensorPrimitives allows a destination that coincides exactly with an input, which is the only overlap the op
// permits (y is x or r, or is distinct), so the in-place residual stream needs no copy.
//
// Versions:
//   1  (2026-12-02) chunks of ChunkSize floats, one TensorPrimitives.Add each; memory-bound (12 bytes moved per element).
//   2  (2026-12-03) Parallel.For (~1.9 KB per call) replaced by ManagedParallel.For over a struct body: no allocation
//      per call (issue 11); same chunks, same results.
using System.Numerics.Tensors;

namespace RouteKit;

internal static unsafe class ResidualManaged
{
    /// <summary>Elements per task, and the size under which a call runs on the caller alone.</summary>
    private const int ChunkSize = 1 << 16;

    /// <summary>y = x + r; y may be x or r.</summary>
    public static void Add(ReadOnlySpan<float> x, ReadOnlySpan<float> r, Span<float> y)
    {
        var n = y.Length;
        if (n <= ChunkSize)
        {
            TensorPrimitives.Add(x, r, y);
            return;
        }
        fixed (float* px = x, pr = r, py = y)
        {
            var body = new Chunks { X = px, R = pr, Y = py, N = n };
            ManagedParallel.For((n + ChunkSize - 1) / ChunkSize, ref body);
        }
    }

    private struct Chunks : IParallelBody
    {
        public float* X, R, Y;
        public int N;

        public readonly void Run(int k)
        {
            var start = k * ChunkSize;
            var count = Math.Min(ChunkSize, N - start);
            TensorPrimitives.Add(new ReadOnlySpan<float>(X + start, count), new ReadOnlySpan<float>(R + start, count),
                new Span<float>(Y + start, count));
        }
    }

    /// <summary>dst += src.</summary>
    public static void AddInto(Span<float> dst, ReadOnlySpan<float> src) => Add(dst, src, dst);
}
