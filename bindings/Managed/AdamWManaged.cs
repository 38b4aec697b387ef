// AdamW step on the Managed backend. Shapes: N parameters, every buffer [N].
// SIMD over System.Numerics.Vector<float>, written once for any width (the JIT picks 128 bits on NEON/SSE, 256 on AVX2
// and AVX-512 machines), Parallel.For over fixed chunks.
//
// Versions:
//   AdamW 1 (2026-12-02) one fused sweep per chunk: decay, both moments, the update; the step's constants are folded
//      in float64 by the launcher. Memory-bound: 5 reads and 3 writes per parameter.
// Timing (2026-12-02, Release, 2-core EPYC shared with other builds, load1 415 at the time, so an upper bound;
// median of 7 through the public op, validation included): N = 4,194,304: 19.1 ms.
using System.Numerics;
using System.Runtime.InteropServices;

namespace RouteKit;

internal static class AdamWManaged
{
    private const int Chunk = 1 << 14;

    public static void Update(float[] parameters, float[] gradients, float[] m, float[] v, float[] decayMask,
        float lrDecay, float beta1, float beta2, float stepSize, float sqrtCorrection2, float eps)
    {
        var n = parameters.Length;
        Parallel.For(0, (n + Chunk - 1) / Chunk, chunk =>
        {
            var start = chunk * Chunk;
            var end = Math.Min(n, start + Chunk);
            var w = Vector<float>.Count;
            ref var pp = ref MemoryMarshal.GetArrayDataReference(parameters);
            ref var pg = ref MemoryMarshal.GetArrayDataReference(gradients);
            ref var pm = ref MemoryMarshal.GetArrayDataReference(m);
            ref var pv = ref MemoryMarshal.GetArrayDataReference(v);
            ref var pk = ref MemoryMarshal.GetArrayDataReference(decayMask);
            Vector<float> b1 = new(beta1), b2 = new(beta2), c1 = new(1f - beta1), c2 = new(1f - beta2);
            Vector<float> decay = new(lrDecay), size = new(stepSize), root2 = new(sqrtCorrection2), epsilon = new(eps);
            var i = start;
            for (; i <= end - w; i += w)
            {
                var o = (nuint)i;
                var g = Vector.LoadUnsafe(ref pg, o);
                var p = Vector.LoadUnsafe(ref pp, o) * (Vector<float>.One - Vector.LoadUnsafe(ref pk, o) * decay);
                var mi = b1 * Vector.LoadUnsafe(ref pm, o) + c1 * g;
                var vi = b2 * Vector.LoadUnsafe(ref pv, o) + c2 * g * g;
                mi.StoreUnsafe(ref pm, o);
                vi.StoreUnsafe(ref pv, o);
                (p - size * mi / (Vector.SquareRoot(vi) / root2 + epsilon)).StoreUnsafe(ref pp, o);
            }
            for (; i < end; i++)
            {
                var g = gradients[i];
                var p = parameters[i] * (1f - decayMask[i] * lrDecay);
                m[i] = beta1 * m[i] + (1f - beta1) * g;
                v[i] = beta2 * v[i] + (1f - beta2) * g * g;
                parameters[i] = p - stepSize * m[i] / (MathF.Sqrt(v[i]) / sqrtCorrection2 + eps);
            }
        });
    }
}
