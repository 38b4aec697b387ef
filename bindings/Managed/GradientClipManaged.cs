// Global-norm gradient clip on the Managed backend. Shapes: N gradients [N]. SIMD over System.Numerics.Vector<float>
// (any width: 128 bits on NEON/SSE, 256 on AVX2 and AVX-512 machines), ManagedParallel.For over fixed chunks.
//
// Versions:
//   1  (2026-12-02) float64 sums of g^2 per fixed chunk, added in chunk order (no overflow or underflow for any finite
//      float32 g, and the same bits for any thread count), then one scaling sweep when the coefficient is < 1.
// Timing (2026-12-02, Release, 2-core EPYC shared with other builds, load1 415 at the time, so an upper bound;
// median of 7 through the public op, validation included): N = 4,194,304: 5.8 ms (nothing clipped).
using System.Numerics;
using System.Runtime.InteropServices;

namespace RouteKit;

internal static unsafe class GradientClipManaged
{
    private const int Chunk = 1 << 14;

    /// <summary>Returns ||g||_2 in float64 and scales g by min(1, maxNorm / (norm + 1e-6)).</summary>
    public static double ClipGlobalNorm(Span<float> gradients, float maxNorm)
    {
        var n = gradients.Length;
        var chunks = (n + Chunk - 1) / Chunk;
        var partial = System.Buffers.ArrayPool<double>.Shared.Rent(chunks);
        try
        {
            fixed (float* pg = gradients)
            fixed (double* pp = partial)
            {
                var body = new SquareSums { G = pg, Partial = pp, N = n };
                ManagedParallel.For(chunks, ref body);
            }
            var sum = 0.0;
            for (var c = 0; c < chunks; c++) sum += partial[c];
            var norm = Math.Sqrt(sum);
            var coefficient = maxNorm / (norm + 1e-6);
            if (coefficient < 1.0)
                System.Numerics.Tensors.TensorPrimitives.Multiply(gradients, (float)coefficient, gradients);
            return norm;
        }
        finally
        {
            System.Buffers.ArrayPool<double>.Shared.Return(partial);
        }
    }

    // Sum of g^2 of one fixed chunk in float64, into Partial[chunk].
    private struct SquareSums : IParallelBody
    {
        public float* G;
        public double* Partial;
        public int N;

        public readonly void Run(int chunk)
        {
            var span = new ReadOnlySpan<float>(G + chunk * Chunk, Math.Min(Chunk, N - chunk * Chunk));
            var w = Vector<float>.Count;
            Vector<double> a = default, b = default;
            ref var p = ref MemoryMarshal.GetReference(span);
            var i = 0;
            for (; i <= span.Length - w; i += w)
            {
                Vector.Widen(Vector.LoadUnsafe(ref p, (nuint)i), out var lo, out var hi);
                a += lo * lo;
                b += hi * hi;
            }
            var s = Vector.Sum(a + b);
            for (; i < span.Length; i++) s += (double)span[i] * span[i];
            Partial[chunk] = s;
        }
    }
}
