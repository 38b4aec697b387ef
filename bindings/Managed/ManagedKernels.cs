// SIMD building blocks of the Managed attention: register-blocked GEMM micro-kernels over 4 rows and a fast float exp,
// written once over the vector width (ISimdWidth, SimdWidth.cs) and specialised per width by the JIT.
//
// Shapes: a micro-kernel call computes C[4, W] (+)= A[4, K] . B[K, W], W = 64 or 16 columns. A is read through two
// strides (row, column) so the same kernel serves Q K^T (A = Q tile), P V (A = P tile) and P^T dO (A = P tile read
// transposed); B is row-major with leading dimension ldb; C is row-major with leading dimension ldc.
//
// Register blocks per width (L = lanes per vector): a 64-column block is one 4 x 4-vector block at 512 bits (16
// accumulators in zmm0-15, the B vectors in zmm16-19: AVX-512 has 32 registers) and 64 / 2L strips of 4 x 2 vectors at
// 256 and 128 bits (8 accumulators + 2 B + 1 broadcast: AVX2, SSE have 16 registers, so a 4 x 4 block would spill).
// Per k step a 4 x 2 strip does 8 FMAs for 6 loads (2 B, 4 broadcast A): FMA-bound on 2 load + 2 FMA ports, and its
// 8 independent chains cover 2 FMA pipes x 4 cycles of latency.
//
// Versions (time with `routekit-perf attention-managed`, each width with `routekit-perf widths`):
//   v1 (2026-11-28) 4 x 64 register block on Vector512: per k step 4 B loads, 4 broadcast A loads, 16 independent FMA
//                   chains. Checked with DOTNET_JitDisasm=Scores4x64: no spills.
//   v2 (2026-11-28) Scores4x64: the same block summed in chunks of 16 k steps, for accuracy at 1e3-scale logits.
//   v3 (2026-12-02) width-generic: the same kernels over ISimdWidth, 4 x 2-vector strips below 512 bits. Vector512
//                   code on a machine without AVX-512 ran through .NET's software fallback (B1 H4 N2048 D64 forward:
//                   ~43 GFLOP/s with AVX2, 0.7 GFLOP/s with 128-bit vectors only); see perf/results/widths-*.md.
using System.Runtime.CompilerServices;

namespace RouteKit;

internal static unsafe class ManagedKernels
{
    /// <summary>Columns of the wide micro-kernel call (a key block).</summary>
    internal const int Width = 64;

    /// <summary>Head dimensions are padded to a multiple of this: 16 floats, a whole number of vectors at every width.</summary>
    internal const int Lanes = 16;

    /// <summary>Head-dimension steps per partial sum of <see cref="Scores4x64{TS, TV}"/>.</summary>
    internal const int ScoreChunk = 16;

    /// <summary>Rows of every micro-kernel call.</summary>
    internal const int Rows = 4;

    /// <summary>Below this exp flushes to zero (exp(-87.34) is the smallest normal float).</summary>
    private const float ExpLow = -87.33654f;

    /// <summary>
    /// C[4, width] (+)= A[4, kLen] . B[kLen, width] for width a multiple of 16: 64-column blocks first, then 16-column ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Gemm4<TS, TV>(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, int width,
        bool accumulate)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var col = 0;
        for (; col + Width <= width; col += Width)
        {
            if (TS.Lanes == 16) Block4<TS, TV>(a, aRow, aCol, b + col, ldb, kLen, c + col, ldc, accumulate);
            else
                for (var s = 0; s < Width; s += 2 * TS.Lanes)
                    Block2<TS, TV>(a, aRow, aCol, b + col + s, ldb, kLen, c + col + s, ldc, accumulate);
        }
        for (; col < width; col += Lanes)
        {
            if (TS.Lanes == 16) Block1<TS, TV>(a, aRow, aCol, b + col, ldb, kLen, c + col, ldc, accumulate);
            else
                for (var s = 0; s < Lanes; s += 2 * TS.Lanes)
                    Block2<TS, TV>(a, aRow, aCol, b + col + s, ldb, kLen, c + col + s, ldc, accumulate);
        }
    }

    /// <summary>C[4, 4L] (+)= A[4, kLen] . B[kLen, 4L]; A element (r, k) at a[r * aRow + k * aCol].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block4<TS, TV>(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, bool accumulate)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var l = TS.Lanes;
        TV c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        if (accumulate)
        {
            c00 = TS.Load(c0); c01 = TS.Load(c0 + l); c02 = TS.Load(c0 + 2 * l); c03 = TS.Load(c0 + 3 * l);
            c10 = TS.Load(c1); c11 = TS.Load(c1 + l); c12 = TS.Load(c1 + 2 * l); c13 = TS.Load(c1 + 3 * l);
            c20 = TS.Load(c2); c21 = TS.Load(c2 + l); c22 = TS.Load(c2 + 2 * l); c23 = TS.Load(c2 + 3 * l);
            c30 = TS.Load(c3); c31 = TS.Load(c3 + l); c32 = TS.Load(c3 + 2 * l); c33 = TS.Load(c3 + 3 * l);
        }
        else
        {
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = TS.Zero;
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = TS.Zero;
        }
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k = 0; k < kLen; k++)
        {
            var b0 = TS.Load(b);
            var b1 = TS.Load(b + l);
            var b2 = TS.Load(b + 2 * l);
            var b3 = TS.Load(b + 3 * l);
            var x = TS.Broadcast(*a0);
            c00 = TS.MultiplyAdd(x, b0, c00); c01 = TS.MultiplyAdd(x, b1, c01);
            c02 = TS.MultiplyAdd(x, b2, c02); c03 = TS.MultiplyAdd(x, b3, c03);
            x = TS.Broadcast(*a1);
            c10 = TS.MultiplyAdd(x, b0, c10); c11 = TS.MultiplyAdd(x, b1, c11);
            c12 = TS.MultiplyAdd(x, b2, c12); c13 = TS.MultiplyAdd(x, b3, c13);
            x = TS.Broadcast(*a2);
            c20 = TS.MultiplyAdd(x, b0, c20); c21 = TS.MultiplyAdd(x, b1, c21);
            c22 = TS.MultiplyAdd(x, b2, c22); c23 = TS.MultiplyAdd(x, b3, c23);
            x = TS.Broadcast(*a3);
            c30 = TS.MultiplyAdd(x, b0, c30); c31 = TS.MultiplyAdd(x, b1, c31);
            c32 = TS.MultiplyAdd(x, b2, c32); c33 = TS.MultiplyAdd(x, b3, c33);
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol;
            b += ldb;
        }
        TS.Store(c00, c0); TS.Store(c01, c0 + l); TS.Store(c02, c0 + 2 * l); TS.Store(c03, c0 + 3 * l);
        TS.Store(c10, c1); TS.Store(c11, c1 + l); TS.Store(c12, c1 + 2 * l); TS.Store(c13, c1 + 3 * l);
        TS.Store(c20, c2); TS.Store(c21, c2 + l); TS.Store(c22, c2 + 2 * l); TS.Store(c23, c2 + 3 * l);
        TS.Store(c30, c3); TS.Store(c31, c3 + l); TS.Store(c32, c3 + 2 * l); TS.Store(c33, c3 + 3 * l);
    }

    /// <summary>C[4, 2L] (+)= A[4, kLen] . B[kLen, 2L]: the strip of the widths with 16 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block2<TS, TV>(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, bool accumulate)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var l = TS.Lanes;
        TV c00, c01, c10, c11, c20, c21, c30, c31;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        if (accumulate)
        {
            c00 = TS.Load(c0); c01 = TS.Load(c0 + l); c10 = TS.Load(c1); c11 = TS.Load(c1 + l);
            c20 = TS.Load(c2); c21 = TS.Load(c2 + l); c30 = TS.Load(c3); c31 = TS.Load(c3 + l);
        }
        else
        {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = TS.Zero;
        }
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k = 0; k < kLen; k++)
        {
            var b0 = TS.Load(b);
            var b1 = TS.Load(b + l);
            var x = TS.Broadcast(*a0);
            c00 = TS.MultiplyAdd(x, b0, c00); c01 = TS.MultiplyAdd(x, b1, c01);
            x = TS.Broadcast(*a1);
            c10 = TS.MultiplyAdd(x, b0, c10); c11 = TS.MultiplyAdd(x, b1, c11);
            x = TS.Broadcast(*a2);
            c20 = TS.MultiplyAdd(x, b0, c20); c21 = TS.MultiplyAdd(x, b1, c21);
            x = TS.Broadcast(*a3);
            c30 = TS.MultiplyAdd(x, b0, c30); c31 = TS.MultiplyAdd(x, b1, c31);
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol;
            b += ldb;
        }
        TS.Store(c00, c0); TS.Store(c01, c0 + l); TS.Store(c10, c1); TS.Store(c11, c1 + l);
        TS.Store(c20, c2); TS.Store(c21, c2 + l); TS.Store(c30, c3); TS.Store(c31, c3 + l);
    }

    /// <summary>C[4, L] (+)= A[4, kLen] . B[kLen, L]: the 16-column tail at 512 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block1<TS, TV>(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, bool accumulate)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        TV c00, c10, c20, c30;
        if (accumulate)
        {
            c00 = TS.Load(c0); c10 = TS.Load(c1); c20 = TS.Load(c2); c30 = TS.Load(c3);
        }
        else
        {
            c00 = c10 = c20 = c30 = TS.Zero;
        }
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k = 0; k < kLen; k++)
        {
            var b0 = TS.Load(b);
            c00 = TS.MultiplyAdd(TS.Broadcast(*a0), b0, c00);
            c10 = TS.MultiplyAdd(TS.Broadcast(*a1), b0, c10);
            c20 = TS.MultiplyAdd(TS.Broadcast(*a2), b0, c20);
            c30 = TS.MultiplyAdd(TS.Broadcast(*a3), b0, c30);
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol;
            b += ldb;
        }
        TS.Store(c00, c0); TS.Store(c10, c1); TS.Store(c20, c2); TS.Store(c30, c3);
    }

    /// <summary>
    /// C[4, 64] = A[4, kLen] . B[kLen, 64] (B and C with leading dimension 64) summed in chunks of
    /// <see cref="ScoreChunk"/>: each chunk starts from zero and is added to C, so a rounding error grows with the chunk's
    /// partial sums, not the whole dot product's. For scores that matters: at 1e3-scale logits the sequential FMA chain's
    /// error alone was as large as the naive float32 reference's total error (2026-11-28: D = 59, x31 inputs, 2.25x the
    /// naive max error before, within 2x after). The extra adds run on the FADD pipes, next to the FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Scores4x64<TS, TV>(float* a, nint aRow, float* b, int kLen, float* c)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        if (TS.Lanes == 16) ScoresBlock4<TS, TV>(a, aRow, b, kLen, c);
        else
            for (var s = 0; s < Width; s += 2 * TS.Lanes)
                ScoresBlock2<TS, TV>(a, aRow, b + s, kLen, c + s);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoresBlock4<TS, TV>(float* a, nint aRow, float* b, int kLen, float* c)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var l = TS.Lanes;
        float* c0 = c, c1 = c + Width, c2 = c + 2 * Width, c3 = c + 3 * Width;
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k0 = 0; k0 < kLen; k0 += ScoreChunk)
        {
            var c00 = TS.Zero; var c01 = c00; var c02 = c00; var c03 = c00;
            var c10 = c00; var c11 = c00; var c12 = c00; var c13 = c00;
            var c20 = c00; var c21 = c00; var c22 = c00; var c23 = c00;
            var c30 = c00; var c31 = c00; var c32 = c00; var c33 = c00;
            var end = Math.Min(kLen, k0 + ScoreChunk);
            for (var k = k0; k < end; k++)
            {
                var b0 = TS.Load(b);
                var b1 = TS.Load(b + l);
                var b2 = TS.Load(b + 2 * l);
                var b3 = TS.Load(b + 3 * l);
                var x = TS.Broadcast(a0[k]);
                c00 = TS.MultiplyAdd(x, b0, c00); c01 = TS.MultiplyAdd(x, b1, c01);
                c02 = TS.MultiplyAdd(x, b2, c02); c03 = TS.MultiplyAdd(x, b3, c03);
                x = TS.Broadcast(a1[k]);
                c10 = TS.MultiplyAdd(x, b0, c10); c11 = TS.MultiplyAdd(x, b1, c11);
                c12 = TS.MultiplyAdd(x, b2, c12); c13 = TS.MultiplyAdd(x, b3, c13);
                x = TS.Broadcast(a2[k]);
                c20 = TS.MultiplyAdd(x, b0, c20); c21 = TS.MultiplyAdd(x, b1, c21);
                c22 = TS.MultiplyAdd(x, b2, c22); c23 = TS.MultiplyAdd(x, b3, c23);
                x = TS.Broadcast(a3[k]);
                c30 = TS.MultiplyAdd(x, b0, c30); c31 = TS.MultiplyAdd(x, b1, c31);
                c32 = TS.MultiplyAdd(x, b2, c32); c33 = TS.MultiplyAdd(x, b3, c33);
                b += Width;
            }
            if (k0 > 0)
            {
                c00 = TS.Add(c00, TS.Load(c0)); c01 = TS.Add(c01, TS.Load(c0 + l)); c02 = TS.Add(c02, TS.Load(c0 + 2 * l)); c03 = TS.Add(c03, TS.Load(c0 + 3 * l));
                c10 = TS.Add(c10, TS.Load(c1)); c11 = TS.Add(c11, TS.Load(c1 + l)); c12 = TS.Add(c12, TS.Load(c1 + 2 * l)); c13 = TS.Add(c13, TS.Load(c1 + 3 * l));
                c20 = TS.Add(c20, TS.Load(c2)); c21 = TS.Add(c21, TS.Load(c2 + l)); c22 = TS.Add(c22, TS.Load(c2 + 2 * l)); c23 = TS.Add(c23, TS.Load(c2 + 3 * l));
                c30 = TS.Add(c30, TS.Load(c3)); c31 = TS.Add(c31, TS.Load(c3 + l)); c32 = TS.Add(c32, TS.Load(c3 + 2 * l)); c33 = TS.Add(c33, TS.Load(c3 + 3 * l));
            }
            TS.Store(c00, c0); TS.Store(c01, c0 + l); TS.Store(c02, c0 + 2 * l); TS.Store(c03, c0 + 3 * l);
            TS.Store(c10, c1); TS.Store(c11, c1 + l); TS.Store(c12, c1 + 2 * l); TS.Store(c13, c1 + 3 * l);
            TS.Store(c20, c2); TS.Store(c21, c2 + l); TS.Store(c22, c2 + 2 * l); TS.Store(c23, c2 + 3 * l);
            TS.Store(c30, c3); TS.Store(c31, c3 + l); TS.Store(c32, c3 + 2 * l); TS.Store(c33, c3 + 3 * l);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ScoresBlock2<TS, TV>(float* a, nint aRow, float* b, int kLen, float* c)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var l = TS.Lanes;
        float* c0 = c, c1 = c + Width, c2 = c + 2 * Width, c3 = c + 3 * Width;
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k0 = 0; k0 < kLen; k0 += ScoreChunk)
        {
            var c00 = TS.Zero; var c01 = c00; var c10 = c00; var c11 = c00;
            var c20 = c00; var c21 = c00; var c30 = c00; var c31 = c00;
            var end = Math.Min(kLen, k0 + ScoreChunk);
            for (var k = k0; k < end; k++)
            {
                var b0 = TS.Load(b);
                var b1 = TS.Load(b + l);
                var x = TS.Broadcast(a0[k]);
                c00 = TS.MultiplyAdd(x, b0, c00); c01 = TS.MultiplyAdd(x, b1, c01);
                x = TS.Broadcast(a1[k]);
                c10 = TS.MultiplyAdd(x, b0, c10); c11 = TS.MultiplyAdd(x, b1, c11);
                x = TS.Broadcast(a2[k]);
                c20 = TS.MultiplyAdd(x, b0, c20); c21 = TS.MultiplyAdd(x, b1, c21);
                x = TS.Broadcast(a3[k]);
                c30 = TS.MultiplyAdd(x, b0, c30); c31 = TS.MultiplyAdd(x, b1, c31);
                b += Width;
            }
            if (k0 > 0)
            {
                c00 = TS.Add(c00, TS.Load(c0)); c01 = TS.Add(c01, TS.Load(c0 + l));
                c10 = TS.Add(c10, TS.Load(c1)); c11 = TS.Add(c11, TS.Load(c1 + l));
                c20 = TS.Add(c20, TS.Load(c2)); c21 = TS.Add(c21, TS.Load(c2 + l));
                c30 = TS.Add(c30, TS.Load(c3)); c31 = TS.Add(c31, TS.Load(c3 + l));
            }
            TS.Store(c00, c0); TS.Store(c01, c0 + l); TS.Store(c10, c1); TS.Store(c11, c1 + l);
            TS.Store(c20, c2); TS.Store(c21, c2 + l); TS.Store(c30, c3); TS.Store(c31, c3 + l);
        }
    }

    /// <summary>
    /// exp(x) for float lanes, flushing to 0 below -87.34 (so exp(-inf) = 0). Cody-Waite reduction x = n ln2 + r with
    /// |r| &lt;= ln2/2, Cephes' degree-6 polynomial for exp(r) (about 1 ulp), 2^n built in the exponent bits. n is rounded
    /// by the 1.5 * 2^23 shifter: its low mantissa bits then hold n, which also saves a float-to-int conversion. The
    /// split ln2 constant has few enough bits that n ln2_hi is exact without a fused multiply-add, too.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static TV Exp<TS, TV>(TV x) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var low = TS.Broadcast(ExpLow);
        var underflow = TS.LessThan(x, low);
        x = TS.Min(TS.Max(x, low), TS.Broadcast(88.3762626647949f));
        var shifter = TS.Broadcast(12582912f); // 1.5 * 2^23
        var t = TS.MultiplyAdd(x, TS.Broadcast(1.44269504088896341f), shifter);
        var n = TS.Subtract(t, shifter);
        var r = TS.MultiplyAdd(n, TS.Broadcast(-0.693359375f), x);
        r = TS.MultiplyAdd(n, TS.Broadcast(2.12194440e-4f), r);
        var y = TS.MultiplyAdd(TS.Broadcast(1.9875691500e-4f), r, TS.Broadcast(1.3981999507e-3f));
        y = TS.MultiplyAdd(y, r, TS.Broadcast(8.3334519073e-3f));
        y = TS.MultiplyAdd(y, r, TS.Broadcast(4.1665795894e-2f));
        y = TS.MultiplyAdd(y, r, TS.Broadcast(1.6666665459e-1f));
        y = TS.MultiplyAdd(y, r, TS.Broadcast(5.0000001201e-1f));
        y = TS.MultiplyAdd(y, TS.Multiply(r, r), TS.Add(r, TS.Broadcast(1f)));
        return TS.Select(underflow, TS.Zero, TS.Multiply(y, TS.Pow2FromShifted(t)));
    }
}
