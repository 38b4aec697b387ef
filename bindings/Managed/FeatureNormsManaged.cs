// Feature norms and collapse reductions on the Managed backend: Vector512 SIMD, Parallel.For over row blocks.
// Shapes: R rows, F (or C) features per row.
// Accumulation: Kahan-compensated float32 in every SIMD lane (two independent accumulator sets so the 4-add latency
// chain of a Kahan step does not bound throughput), lanes combined in float64 at the end of a row. The result's error
// is ~2 eps |sum|, independent of F, so F = 16384 rows of mixed sign stay well inside the 2x rule.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    // One row: (sum|x|, sum x^2, #{x > 0}, max x).
    private static (double L1, double L2Squared, int Count, float Max) Row(ReadOnlySpan<float> row)
    {
        var w = Vector512<float>.Count;
        Vector512<float> s1a = default, c1a = default, s2a = default, c2a = default;
        Vector512<float> s1b = default, c1b = default, s2b = default, c2b = default;
        Vector512<int> cnt = default;
        var mx = Vector512.Create(float.NegativeInfinity);
        ref var p = ref MemoryMarshal.GetReference(row);
        var f = 0;
        for (; f <= row.Length - 2 * w; f += 2 * w)
        {
            var va = Vector512.LoadUnsafe(ref p, (nuint)f);
            var vb = Vector512.LoadUnsafe(ref p, (nuint)(f + w));
            Kahan(ref s1a, ref c1a, Vector512.Abs(va));
            Kahan(ref s2a, ref c2a, va * va);
            Kahan(ref s1b, ref c1b, Vector512.Abs(vb));
            Kahan(ref s2b, ref c2b, vb * vb);
            cnt -= Vector512.GreaterThan(va, Vector512<float>.Zero).AsInt32();
            cnt -= Vector512.GreaterThan(vb, Vector512<float>.Zero).AsInt32();
            mx = Vector512.Max(mx, Vector512.Max(va, vb));
        }
        // Lanes are combined in float64: each lane's compensated value s - c widened, so nothing is lost in the fold.
        var l1 = Fold(s1a, c1a) + Fold(s1b, c1b);
        var l2 = Fold(s2a, c2a) + Fold(s2b, c2b);
        var count = Vector512.Sum(cnt);
        var mx128 = Vector128.Max(Vector256.Max(mx.GetLower(), mx.GetUpper()).GetLower(), Vector256.Max(mx.GetLower(), mx.GetUpper()).GetUpper());
        var m = Math.Max(Math.Max(mx128[0], mx128[1]), Math.Max(mx128[2], mx128[3]));
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static double Fold(Vector512<float> sum, Vector512<float> compensation)
    {
        var (sLo, sHi) = Vector512.Widen(sum);
        var (cLo, cHi) = Vector512.Widen(compensation);
        return Vector512.Sum(sLo - cLo + (sHi - cHi));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kahan(ref Vector512<float> sum, ref Vector512<float> compensation, Vector512<float> value)
    {
        var y = value - compensation;
        var t = sum + y;
        compensation = t - sum - y;
        sum = t;
    }

    public static void Backward(float[] x, int rows, int features, float[] l2, float[]? dL1, float[]? dL2, float[] dx)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var r = block * RowsPerTask; r < end; r++)
            {
                var g1 = dL1?[r] ?? 0f;
                var g2 = dL2 is not null && l2[r] > 0f ? dL2[r] / l2[r] : 0f;
                var src = x.AsSpan(r * features, features);
                var dst = dx.AsSpan(r * features, features);
                for (var f = 0; f < features; f++)
                {
                    var v = src[f];
                    dst[f] = g1 * (v > 0f ? 1f : v < 0f ? -1f : 0f) + g2 * v;
                }
            }
        });
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
