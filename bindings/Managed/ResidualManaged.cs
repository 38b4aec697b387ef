// Residual add on the Managed backend: y = x + r and dst += src over n elements, through TensorPrimitives.Add (SIMD at
// the widest accelerated width, any tail handled), Parallel.For over chunks once n is large. TensorPrimitives allows a
// destination that coincides exactly with an input, which is the only overlap the op permits (y is x or r, or is
// distinct), so the in-place residual stream needs no copy.
//
// Versions:
//   1  (2026-12-02) chunks of ChunkSize floats, one TensorPrimitives.Add each; memory-bound (12 bytes moved per element).
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
            nint ax = (nint)px, ar = (nint)pr, ay = (nint)py;
            Parallel.For(0, (n + ChunkSize - 1) / ChunkSize, k =>
            {
                var start = k * ChunkSize;
                var count = Math.Min(ChunkSize, n - start);
                TensorPrimitives.Add(new ReadOnlySpan<float>((float*)ax + start, count), new ReadOnlySpan<float>((float*)ar + start, count),
                    new Span<float>((float*)ay + start, count));
            });
        }
    }

    /// <summary>dst += src.</summary>
    public static void AddInto(Span<float> dst, ReadOnlySpan<float> src) => Add(dst, src, dst);
}
