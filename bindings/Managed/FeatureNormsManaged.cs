// Feature norms and collapse reductions on the Managed backend, Parallel.For over row blocks. Shapes: R rows, F (or C)
// features per row. The feature-norm forward's fast path is written once over the width strategies of SimdWidth.cs
// (shared with Sgemm.cs) and runs on the widest accelerated width: Vector512, else Vector256, else Vector128 (never an emulated one). Its float64
// fallback and the backward are SIMD over System.Numerics.Vector<T> (the JIT picks 128 bits on NEON/SSE machines, 256 on
// AVX2 and AVX-512 ones); the collapse reductions below them are scalar loops with Kahan-compensated float32 sums.
//
// Feature-norm forward versions (time with `routekit-perf featurenorms`):
//   1  (2026-11) Kahan-compensated float32 per Vector512 lane. Squares of |x| > 1.8e19 overflowed float32 and the
//      compensation turned the infinity into NaN (L2 = NaN from F = 32, the first full SIMD step, for rows whose L2
//      fits), squares of |x| < 1e-23 underflowed to 0 (L2 = 0), and Vector512 was emulated on 128/256-bit machines.
//   2  (2026-12-02) float64 accumulation of |x| and x^2: each float lane widens to two double lanes. |x| and x^2 of any
//      finite float32 are normal doubles (x^2 in [2e-90, 1.2e77]), so for any finite row neither sum can overflow,
//      underflow or turn NaN, and their rounding (F eps64 relative) sits far below float32's half ulp: L1 and L2 are
//      correctly rounded to float32 in practice, and a norm beyond float.MaxValue shows as +inf for the caller to
//      refuse. x is still read once; four independent double accumulators per sum hide the add latency.
//      Correct at every magnitude, but at R=65536, F=2048 (quiet machine) 33.7 GB/s = 71% of the read bandwidth: on one
//      core it computes only ~20 GB/s from cache, under a core's share of the memory stream.
//   3  (2026-12-02) float32 fast path, float64 where needed. A row is cut into blocks of 2048 floats (8 KiB); per block
//      sum|x| and sum x^2 are float32 on the widest accelerated vector (Vector512/256/128, one generic kernel), four
//      independent accumulators each, whose lanes are summed in float64 and added to float64 row totals. A block whose
//      float32 sum of squares is outside [2^-100, float.MaxValue] (or NaN) is summed again in float64 by the version-2
//      code from L1 (see MinBlockSumSquares: this catches any overflow, any underflow that could matter, and NaN/inf,
//      and passes every block with 2^-50 <= max|x| < 2^58), so rows of 1e20, 1e-30, subnormals and mixes give what
//      version 2 gives; count and max are exact either way. x is read once unless a block falls back. Measured with
//      `routekit-perf featurenorms --allow-busy`, version 2 and 3 back to back, three pairs at 02:20-02:23 UTC as the
//      other engineers' load went away (1-min load average still decaying 162 -> 18, 81 processes; the read bandwidth
//      of each run 43.7-49.4 GB/s, near the quiet 47.6): R=65536, F=2048 before 74%, 78%, 66% of read (33.5, 36.9,
//      32.6 GB/s), after 83%, 115%, 99% (37.7, 52.3, 43.2 GB/s); F=16384 before 74/81/71%, after 96/101/138%; F=512
//      before 62/70/70%, after 85/98/95%. Above 100% the read-bandwidth probe itself read low; rerun quietly with
//      perf/results/run-quiet.sh for the record. From cache on one core (CPU time): 20 -> 56-65 GB/s at F=2048 and
//      16384, 19 -> 37-39 GB/s at F=512, so two cores now out-compute the read stream.
// Backward: dx = dL1 sign(x) + dL2 (x / L2); the ratio |x / L2| <= 1 is formed first, so neither dL2 x (overflows at
// |x| ~ 1e38) nor 1 / L2 (overflows for L2 < 3e-39) appears.
using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace RouteKit;

internal static class FeatureNormsManaged
{
    private const int RowsPerTask = 16;

    public static void Forward(float[] x, int rows, int features, float[] l1, float[] l2, float[] l0, float[] max, float[] nan)
    {
        var bits = SimdWidth.WidestBits == 0 ? 0 : SimdWidth.ActiveBits;
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var r = block * RowsPerTask; r < end; r++)
            {
                var (s1, s2, count, m) = Row(x.AsSpan(r * features, features), bits);
                l1[r] = (float)s1;
                l2[r] = (float)Math.Sqrt(s2);
                l0[r] = count;
                max[r] = m;
                nan[r] = count > 0 ? (float)(s1 / count) : 0f;
            }
        });
    }

    // One row (or block): (sum|x|, sum x^2, #{x > 0}, max x), the sums in float64 (version 2; the fallback of version 3).
    private static (double L1, double SumSquares, int Count, float Max) Row64(ReadOnlySpan<float> row)
    {
        var w = Vector<float>.Count;
        Vector<double> l1a = default, l1b = default, l1c = default, l1d = default;
        Vector<double> s2a = default, s2b = default, s2c = default, s2d = default;
        Vector<int> cnt = default;
        var mx = new Vector<float>(float.NegativeInfinity);
        ref var p = ref MemoryMarshal.GetReference(row);
        var f = 0;
        for (; f <= row.Length - 2 * w; f += 2 * w)
        {
            var va = Vector.LoadUnsafe(ref p, (nuint)f);
            var vb = Vector.LoadUnsafe(ref p, (nuint)(f + w));
            Vector.Widen(va, out var a0, out var a1);
            Vector.Widen(vb, out var b0, out var b1);
            l1a += Vector.Abs(a0);
            l1b += Vector.Abs(a1);
            l1c += Vector.Abs(b0);
            l1d += Vector.Abs(b1);
            s2a += a0 * a0;
            s2b += a1 * a1;
            s2c += b0 * b0;
            s2d += b1 * b1;
            cnt -= Vector.GreaterThan(va, Vector<float>.Zero);
            cnt -= Vector.GreaterThan(vb, Vector<float>.Zero);
            mx = Vector.Max(mx, Vector.Max(va, vb));
        }
        var l1 = Vector.Sum(l1a + l1b + (l1c + l1d));
        var l2 = Vector.Sum(s2a + s2b + (s2c + s2d));
        var count = Vector.Sum(cnt);
        var m = float.NegativeInfinity;
        for (var i = 0; i < w; i++) m = Math.Max(m, mx[i]);
        for (; f < row.Length; f++)
        {
            var v = row[f];
            l1 += Math.Abs(v);
            l2 += (double)v * v;
            if (v > 0) count++;
            m = Math.Max(m, v);
        }
        return (l1, l2, count, m);
    }

    // ---- float32 fast path (version 3) ----

    // Block length in floats: 8 KiB, so a block the range check sends back to float64 is re-read from L1. A multiple
    // of 4 x 16 (four Vector512 accumulators) so every block but a row's last runs the unrolled loop only.
    private const int BlockFloats = 2048;

    // A block's float32 sums are kept when its float32 sum of squares S2 lies in [2^-100, float.MaxValue]; otherwise
    // (overflow, underflow, NaN or infinity in x) the block is summed again in float64 (Row64). Why that is safe:
    //  - overflow: every partial sum of squares is non-negative and S2 is their total, so a finite S2 means no square and
    //    no partial sum overflowed; then every |x| < 2^64 and the |x| sum (<= 2048 * 2^64) is finite too.
    //  - underflow: a square or sum that lands below 2^-126 is still rounded, not flushed (no FTZ/DAZ in .NET), with an
    //    absolute error <= 2^-150 each; over a block's 2048 squares and 2048 adds that is < 2^-138 in all, < 2^-38 of an
    //    S2 >= 2^-100, far under float32's 2^-24. |x| is exact, so the L1 sum has only the usual relative rounding.
    //  - NaN or +-inf in x make S2 NaN or +inf and fail the check, so such rows give exactly what float64 gives.
    //  - an all-zero block (S1 == 0: a sum of non-negative floats is 0 only if every term is 0) is exact and kept.
    // In terms of x: any block with 2^-50 <= max|x| < 2^58 passes, so rows of 1e20, 1e-30 and subnormals fall back.
    private const float MinBlockSumSquares = 7.8886090522101181e-31f; // 2^-100

    // The width of this call (SimdWidth.ActiveBits, read once on the calling thread); 0 when the hardware accelerates no
    // vector width at all (then the float64 path runs alone).
    private static (double L1, double SumSquares, int Count, float Max) Row(ReadOnlySpan<float> row, int bits) => bits switch
    {
        512 => RowFast<Vector512<float>, Simd512>(row),
        256 => RowFast<Vector256<float>, Simd256>(row),
        128 => RowFast<Vector128<float>, Simd128>(row),
        _ => Row64(row),
    };

    // One row in blocks: float32 sums per block with four independent accumulators each, folded into float64 row
    // totals; a block failing the range check above is summed again in float64. Count and max are exact either way.
    private static (double L1, double SumSquares, int Count, float Max) RowFast<TV, TW>(ReadOnlySpan<float> row)
        where TV : struct where TW : struct, ISimdWidth<TV>
    {
        var w = TW.Lanes;
        ref var p = ref MemoryMarshal.GetReference(row);
        double l1 = 0, l2 = 0;
        var count = 0;
        var mx = TW.Broadcast(float.NegativeInfinity);
        var f = 0;
        // Vector part of the row: whole vectors, in blocks of BlockFloats.
        var vectorEnd = row.Length - row.Length % w;
        while (f < vectorEnd)
        {
            var start = f;
            var end = Math.Min(vectorEnd, f + BlockFloats);
            TV s1a = default, s1b = default, s1c = default, s1d = default;
            TV s2a = default, s2b = default, s2c = default, s2d = default;
            TV cnt = default;
            for (; f <= end - 4 * w; f += 4 * w)
            {
                var va = TW.Load(ref p, (nuint)f);
                var vb = TW.Load(ref p, (nuint)(f + w));
                var vc = TW.Load(ref p, (nuint)(f + 2 * w));
                var vd = TW.Load(ref p, (nuint)(f + 3 * w));
                s1a = TW.Add(s1a, TW.Abs(va));
                s1b = TW.Add(s1b, TW.Abs(vb));
                s1c = TW.Add(s1c, TW.Abs(vc));
                s1d = TW.Add(s1d, TW.Abs(vd));
                s2a = TW.MultiplyAdd(va, va, s2a);
                s2b = TW.MultiplyAdd(vb, vb, s2b);
                s2c = TW.MultiplyAdd(vc, vc, s2c);
                s2d = TW.MultiplyAdd(vd, vd, s2d);
                cnt = TW.CountPositive(TW.CountPositive(cnt, va), vb);
                cnt = TW.CountPositive(TW.CountPositive(cnt, vc), vd);
                mx = TW.Max(mx, TW.Max(TW.Max(va, vb), TW.Max(vc, vd)));
            }
            for (; f < end; f += w)
            {
                var v = TW.Load(ref p, (nuint)f);
                s1a = TW.Add(s1a, TW.Abs(v));
                s2a = TW.MultiplyAdd(v, v, s2a);
                cnt = TW.CountPositive(cnt, v);
                mx = TW.Max(mx, v);
            }
            // Lane counts are at most BlockFloats / w, exact in float32.
            count += (int)TW.SumWidened(cnt);
            var b1 = TW.SumWidened(TW.Add(TW.Add(s1a, s1b), TW.Add(s1c, s1d)));
            var b2 = TW.SumWidened(TW.Add(TW.Add(s2a, s2b), TW.Add(s2c, s2d)));
            if (b2 >= MinBlockSumSquares && b2 <= float.MaxValue || b1 == 0)
            {
                l1 += b1;
                l2 += b2;
            }
            else
            {
                var (r1, r2, _, _) = Row64(row.Slice(start, end - start));
                l1 += r1;
                l2 += r2;
            }
        }
        var m = TW.MaxAcross(mx);
        // The last row.Length % w elements, in float64.
        for (; f < row.Length; f++)
        {
            var v = row[f];
            l1 += Math.Abs(v);
            l2 += (double)v * v;
            if (v > 0) count++;
            m = Math.Max(m, v);
        }
        return (l1, l2, count, m);
    }

    public static void Backward(float[] x, int rows, int features, float[] l2, float[]? dL1, float[]? dL2, float[] dx)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var r = block * RowsPerTask; r < end; r++)
            {
                var norm = l2[r];
                // An all-zero row gets no L2 gradient: g2 = 0, and a divisor of 1 keeps 0 / 0 out of the sum.
                var g2 = dL2 is not null && norm > 0f ? dL2[r] : 0f;
                BackwardRow(x.AsSpan(r * features, features), dx.AsSpan(r * features, features), dL1?[r] ?? 0f, g2, norm > 0f ? norm : 1f);
            }
        });
    }

    // dx = g1 sign(x) + g2 (x / norm), sign(0) = 0.
    private static void BackwardRow(ReadOnlySpan<float> x, Span<float> dx, float g1, float g2, float norm)
    {
        var w = Vector<float>.Count;
        var vg1 = new Vector<float>(g1);
        var vg2 = new Vector<float>(g2);
        var vNorm = new Vector<float>(norm);
        ref var px = ref MemoryMarshal.GetReference(x);
        ref var pdx = ref MemoryMarshal.GetReference(dx);
        var f = 0;
        for (; f <= x.Length - w; f += w)
        {
            var v = Vector.LoadUnsafe(ref px, (nuint)f);
            // Comparison masks are -1 where true: (v < 0) - (v > 0) is sign(v).
            var sign = Vector.ConvertToSingle(Vector.LessThan(v, Vector<float>.Zero) - Vector.GreaterThan(v, Vector<float>.Zero));
            (vg1 * sign + vg2 * (v / vNorm)).StoreUnsafe(ref pdx, (nuint)f);
        }
        for (; f < x.Length; f++)
        {
            var v = x[f];
            dx[f] = g1 * (v > 0f ? 1f : v < 0f ? -1f : 0f) + g2 * (v / norm);
        }
    }

    public static void Gram(float[] x, int rows, int columns, float[] gram)
    {
        Parallel.For(0, columns, a =>
        {
            var g = gram.AsSpan(a * columns, columns);
            g.Clear();
            for (var i = 0; i < rows; i++)
            {
                var xa = x[i * columns + a];
                if (xa == 0f) continue;
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(x.AsSpan(i * columns, columns), xa, g, g);
            }
        });
    }

    // Column-wise Kahan sums of x_ic * weight_i (weight 1, or 1/|x_i| with zero rows skipped).
    public static void ColumnSums(float[] x, int rows, int columns, float[]? rowNorms, float[] sums)
    {
        const int ColumnsPerTask = 256;
        Parallel.For(0, (columns + ColumnsPerTask - 1) / ColumnsPerTask, block =>
        {
            var c0 = block * ColumnsPerTask;
            var width = Math.Min(ColumnsPerTask, columns - c0);
            Span<float> sum = stackalloc float[width], comp = stackalloc float[width];
            for (var i = 0; i < rows; i++)
            {
                var scale = 1f;
                if (rowNorms is not null)
                {
                    if (rowNorms[i] <= 0f) continue;
                    scale = rowNorms[i];
                }
                var row = x.AsSpan(i * columns + c0, width);
                for (var c = 0; c < width; c++)
                {
                    var y = (rowNorms is null ? row[c] : row[c] / scale) - comp[c];
                    var t = sum[c] + y;
                    comp[c] = t - sum[c] - y;
                    sum[c] = t;
                }
            }
            sum.CopyTo(sums.AsSpan(c0, width));
        });
    }

    public static void RowDeviation(float[] x, int rows, int columns, float[] mean, float[] deviation)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var r = block * RowsPerTask; r < end; r++)
            {
                float sum = 0f, comp = 0f;
                var row = x.AsSpan(r * columns, columns);
                for (var c = 0; c < columns; c++)
                {
                    var d = row[c] - mean[c];
                    var y = d * d - comp;
                    var t = sum + y;
                    comp = t - sum - y;
                    sum = t;
                }
                deviation[r] = sum;
            }
        });
    }
}
