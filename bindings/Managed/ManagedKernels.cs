// SIMD building blocks of the Managed backend: one register-blocked GEMM micro-kernel (4 rows x 64 columns) and a fast
// float exp, both on Vector512 (AVX-512 on the machines we time; elsewhere .NET emulates Vector512, correct but slow).
//
// Shapes: a micro-kernel call computes C[4, W] (+)= A[4, K] . B[K, W], W = 64 or 16 columns. A is read through two
// strides (row, column) so the same kernel serves Q K^T (A = Q tile), P V (A = P tile) and P^T dO (A = P tile read
// transposed); B is row-major with leading dimension ldb; C is row-major with leading dimension ldc.
//
// Versions (time with `dotnet run -c Release --project perf -- attention-managed`):
//   v1 (2026-11-28) 4 x 64 register block: per k step 4 B loads, 4 broadcast A loads, 16 independent FMA chains,
//                   enough to cover 2 FMA pipes x 4 cycles latency with room to spare; 32 zmm registers are enough.
//                   The JIT keeps all 16 accumulators in zmm0-15 and the B vectors in zmm16-19 (checked with
//                   DOTNET_JitDisasm=Scores4x64): no spills.
//   v2 (2026-11-28) Scores4x64: the same block summed in chunks of 16 k steps, for accuracy at 1e3-scale logits.
//
// On hardware without AVX-512 .NET runs Vector512 through its Vector256-based software fallback: correct (the Managed
// tests pass with DOTNET_EnableAVX512=0) but slow (one core: forward ~20 GFLOP/s instead of ~185).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class ManagedKernels
{
    /// <summary>Columns of the wide micro-kernel (four Vector512 of floats).</summary>
    internal const int Width = 64;

    /// <summary>Lanes of one Vector512 of floats: head dimensions are padded to a multiple of this.</summary>
    internal const int Lanes = 16;

    /// <summary>Head-dimension steps per partial sum of <see cref="Scores4x64"/>.</summary>
    internal const int ScoreChunk = 16;

    /// <summary>Rows of every micro-kernel call.</summary>
    internal const int Rows = 4;

    /// <summary>Below this exp flushes to zero (exp(-87.34) is the smallest normal float).</summary>
    private const float ExpLow = -87.33654f;

    /// <summary>
    /// C[4, width] (+)= A[4, kLen] . B[kLen, width] for width a multiple of 16: 64-column blocks first, then 16-column ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Gemm4(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, int width,
        bool accumulate)
    {
        var col = 0;
        for (; col + Width <= width; col += Width)
            Gemm4x64(a, aRow, aCol, b + col, ldb, kLen, c + col, ldc, accumulate);
        for (; col < width; col += Lanes)
            Gemm4x16(a, aRow, aCol, b + col, ldb, kLen, c + col, ldc, accumulate);
    }

    /// <summary>C[4, 64] (+)= A[4, kLen] . B[kLen, 64]; A element (r, k) at a[r * aRow + k * aCol].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Gemm4x64(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, bool accumulate)
    {
        Vector512<float> c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        if (accumulate)
        {
            c00 = Vector512.Load(c0); c01 = Vector512.Load(c0 + 16); c02 = Vector512.Load(c0 + 32); c03 = Vector512.Load(c0 + 48);
            c10 = Vector512.Load(c1); c11 = Vector512.Load(c1 + 16); c12 = Vector512.Load(c1 + 32); c13 = Vector512.Load(c1 + 48);
            c20 = Vector512.Load(c2); c21 = Vector512.Load(c2 + 16); c22 = Vector512.Load(c2 + 32); c23 = Vector512.Load(c2 + 48);
            c30 = Vector512.Load(c3); c31 = Vector512.Load(c3 + 16); c32 = Vector512.Load(c3 + 32); c33 = Vector512.Load(c3 + 48);
        }
        else
        {
            c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = Vector512<float>.Zero;
            c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = Vector512<float>.Zero;
        }
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k = 0; k < kLen; k++)
        {
            var b0 = Vector512.Load(b);
            var b1 = Vector512.Load(b + 16);
            var b2 = Vector512.Load(b + 32);
            var b3 = Vector512.Load(b + 48);
            var x = Vector512.Create(*a0);
            c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
            c02 = Vector512.FusedMultiplyAdd(x, b2, c02); c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
            x = Vector512.Create(*a1);
            c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
            c12 = Vector512.FusedMultiplyAdd(x, b2, c12); c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
            x = Vector512.Create(*a2);
            c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
            c22 = Vector512.FusedMultiplyAdd(x, b2, c22); c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
            x = Vector512.Create(*a3);
            c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
            c32 = Vector512.FusedMultiplyAdd(x, b2, c32); c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol;
            b += ldb;
        }
        c00.Store(c0); c01.Store(c0 + 16); c02.Store(c0 + 32); c03.Store(c0 + 48);
        c10.Store(c1); c11.Store(c1 + 16); c12.Store(c1 + 32); c13.Store(c1 + 48);
        c20.Store(c2); c21.Store(c2 + 16); c22.Store(c2 + 32); c23.Store(c2 + 48);
        c30.Store(c3); c31.Store(c3 + 16); c32.Store(c3 + 32); c33.Store(c3 + 48);
    }

    /// <summary>
    /// C[4, 64] = A[4, kLen] . B[kLen, 64] summed in chunks of <see cref="ScoreChunk"/>: each chunk starts from zero
    /// and is added to C, so a rounding error grows with the chunk's partial sums, not the whole dot product's.
    /// For scores that matters: at 1e3-scale logits the sequential FMA chain's error alone was as large as the naive
    /// float32 reference's total error (2026-11-28: D = 59, x31 inputs, 2.25x the naive max error before, within 2x after).
    /// The extra adds run on the FADD pipes, next to the FMAs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Scores4x64(float* a, nint aRow, float* b, int kLen, float* c)
    {
        float* c0 = c, c1 = c + Width, c2 = c + 2 * Width, c3 = c + 3 * Width;
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k0 = 0; k0 < kLen; k0 += ScoreChunk)
        {
            var c00 = Vector512<float>.Zero; var c01 = c00; var c02 = c00; var c03 = c00;
            var c10 = c00; var c11 = c00; var c12 = c00; var c13 = c00;
            var c20 = c00; var c21 = c00; var c22 = c00; var c23 = c00;
            var c30 = c00; var c31 = c00; var c32 = c00; var c33 = c00;
            var end = Math.Min(kLen, k0 + ScoreChunk);
            for (var k = k0; k < end; k++)
            {
                var b0 = Vector512.Load(b);
                var b1 = Vector512.Load(b + 16);
                var b2 = Vector512.Load(b + 32);
                var b3 = Vector512.Load(b + 48);
                var x = Vector512.Create(a0[k]);
                c00 = Vector512.FusedMultiplyAdd(x, b0, c00); c01 = Vector512.FusedMultiplyAdd(x, b1, c01);
                c02 = Vector512.FusedMultiplyAdd(x, b2, c02); c03 = Vector512.FusedMultiplyAdd(x, b3, c03);
                x = Vector512.Create(a1[k]);
                c10 = Vector512.FusedMultiplyAdd(x, b0, c10); c11 = Vector512.FusedMultiplyAdd(x, b1, c11);
                c12 = Vector512.FusedMultiplyAdd(x, b2, c12); c13 = Vector512.FusedMultiplyAdd(x, b3, c13);
                x = Vector512.Create(a2[k]);
                c20 = Vector512.FusedMultiplyAdd(x, b0, c20); c21 = Vector512.FusedMultiplyAdd(x, b1, c21);
                c22 = Vector512.FusedMultiplyAdd(x, b2, c22); c23 = Vector512.FusedMultiplyAdd(x, b3, c23);
                x = Vector512.Create(a3[k]);
                c30 = Vector512.FusedMultiplyAdd(x, b0, c30); c31 = Vector512.FusedMultiplyAdd(x, b1, c31);
                c32 = Vector512.FusedMultiplyAdd(x, b2, c32); c33 = Vector512.FusedMultiplyAdd(x, b3, c33);
                b += Width;
            }
            if (k0 > 0)
            {
                c00 += Vector512.Load(c0); c01 += Vector512.Load(c0 + 16); c02 += Vector512.Load(c0 + 32); c03 += Vector512.Load(c0 + 48);
                c10 += Vector512.Load(c1); c11 += Vector512.Load(c1 + 16); c12 += Vector512.Load(c1 + 32); c13 += Vector512.Load(c1 + 48);
                c20 += Vector512.Load(c2); c21 += Vector512.Load(c2 + 16); c22 += Vector512.Load(c2 + 32); c23 += Vector512.Load(c2 + 48);
                c30 += Vector512.Load(c3); c31 += Vector512.Load(c3 + 16); c32 += Vector512.Load(c3 + 32); c33 += Vector512.Load(c3 + 48);
            }
            c00.Store(c0); c01.Store(c0 + 16); c02.Store(c0 + 32); c03.Store(c0 + 48);
            c10.Store(c1); c11.Store(c1 + 16); c12.Store(c1 + 32); c13.Store(c1 + 48);
            c20.Store(c2); c21.Store(c2 + 16); c22.Store(c2 + 32); c23.Store(c2 + 48);
            c30.Store(c3); c31.Store(c3 + 16); c32.Store(c3 + 32); c33.Store(c3 + 48);
        }
    }

    /// <summary>C[4, 16] (+)= A[4, kLen] . B[kLen, 16]: the tail of head dimensions that are not a multiple of 64.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Gemm4x16(float* a, nint aRow, nint aCol, float* b, nint ldb, int kLen, float* c, nint ldc, bool accumulate)
    {
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        Vector512<float> c00, c10, c20, c30;
        if (accumulate)
        {
            c00 = Vector512.Load(c0); c10 = Vector512.Load(c1); c20 = Vector512.Load(c2); c30 = Vector512.Load(c3);
        }
        else
        {
            c00 = c10 = c20 = c30 = Vector512<float>.Zero;
        }
        float* a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow;
        for (var k = 0; k < kLen; k++)
        {
            var b0 = Vector512.Load(b);
            c00 = Vector512.FusedMultiplyAdd(Vector512.Create(*a0), b0, c00);
            c10 = Vector512.FusedMultiplyAdd(Vector512.Create(*a1), b0, c10);
            c20 = Vector512.FusedMultiplyAdd(Vector512.Create(*a2), b0, c20);
            c30 = Vector512.FusedMultiplyAdd(Vector512.Create(*a3), b0, c30);
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol;
            b += ldb;
        }
        c00.Store(c0); c10.Store(c1); c20.Store(c2); c30.Store(c3);
    }

    /// <summary>
    /// exp(x) for float lanes, flushing to 0 below -87.34 (so exp(-inf) = 0). Cody-Waite reduction x = n ln2 + r with
    /// |r| &lt;= ln2/2, Cephes' degree-6 polynomial for exp(r) (about 1 ulp), 2^n built in the exponent bits. n is rounded
    /// by the 1.5 * 2^23 shifter: its low mantissa bits then hold n, which also saves a float-to-int conversion.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Exp(Vector512<float> x)
    {
        var underflow = Vector512.LessThan(x, Vector512.Create(ExpLow));
        x = Vector512.Min(Vector512.Max(x, Vector512.Create(ExpLow)), Vector512.Create(88.3762626647949f));
        var shifter = Vector512.Create(12582912f); // 1.5 * 2^23
        var t = Vector512.FusedMultiplyAdd(x, Vector512.Create(1.44269504088896341f), shifter);
        var n = t - shifter;
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var y = Vector512.FusedMultiplyAdd(Vector512.Create(1.9875691500e-4f), r, Vector512.Create(1.3981999507e-3f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(8.3334519073e-3f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(4.1665795894e-2f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(1.6666665459e-1f));
        y = Vector512.FusedMultiplyAdd(y, r, Vector512.Create(5.0000001201e-1f));
        y = Vector512.FusedMultiplyAdd(y, r * r, r + Vector512<float>.One);
        var pow2 = Vector512.ShiftLeft(t.AsInt32() + Vector512.Create(127), 23).AsSingle();
        return Vector512.ConditionalSelect(underflow.AsSingle(), Vector512<float>.Zero, y * pow2);
    }

    /// <summary>Largest lane of <paramref name="v"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float MaxAcross(Vector512<float> v)
    {
        var h = Vector256.Max(v.GetLower(), v.GetUpper());
        var q = Vector128.Max(h.GetLower(), h.GetUpper());
        return MathF.Max(MathF.Max(q.GetElement(0), q.GetElement(1)), MathF.Max(q.GetElement(2), q.GetElement(3)));
    }
}
