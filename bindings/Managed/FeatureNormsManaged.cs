// Feature norms and collapse reductions on the Managed backend, Parallel.For over row blocks. Shapes: R rows, F (or C)
// features per row. The feature-norm forward and backward are SIMD over System.Numerics.Vector<T>, written once for any
// width (the JIT picks 128 bits on NEON/SSE machines, 256 on AVX2 and AVX-512 ones), so no width is emulated; the
// collapse reductions below them are scalar loops with Kahan-compensated float32 sums.
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
// Backward: dx = dL1 sign(x) + dL2 (x / L2); the ratio |x / L2| <= 1 is formed first, so neither dL2 x (overflows at
// |x| ~ 1e38) nor 1 / L2 (overflows for L2 < 3e-39) appears.
using System.Numerics;
using System.Runtime.InteropServices;

namespace RouteKit;

internal static class FeatureNormsManaged
{
    private const int RowsPerTask = 16;

    public static void Forward(float[] x, int rows, int features, float[] l1, float[] l2, float[] l0, float[] max, float[] nan)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var r = block * RowsPerTask; r < end; r++)
            {
                var (s1, s2, count, m) = Row(x.AsSpan(r * features, features));
                l1[r] = (float)s1;
                l2[r] = (float)Math.Sqrt(s2);
                l0[r] = count;
                max[r] = m;
                nan[r] = count > 0 ? (float)(s1 / count) : 0f;
            }
        });
    }

    // One row: (sum|x|, sum x^2, #{x > 0}, max x), the sums in float64.
    private static (double L1, double SumSquares, int Count, float Max) Row(ReadOnlySpan<float> row)
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
