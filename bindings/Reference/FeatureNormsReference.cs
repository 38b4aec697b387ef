// Feature norms and collapse measures, the executable spec (DESIGN.md section 4). Generic so the same code gives the
// float64 reference and the naive float32 results of the 2x rule; plain sequential loops, readable first.
// Shapes: R rows, F (or C) features per row.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Per-row feature norms, flat arrays of length R.</summary>
public sealed record FeatureNormsReferenceOutput<T>(T[] L1, T[] L2, T[] L0, T[] Max, T[] Nan);

/// <summary>Naive feature norms, Gram matrices and collapse measures.</summary>
public static class FeatureNormsReference
{
    /// <summary>L1 = sum|x|, L2 = sqrt(sum x^2), L0 = #{x &gt; 0}, Max, NAN = L1/L0 (0 where L0 = 0), per row of x [R, F].</summary>
    public static FeatureNormsReferenceOutput<T> Forward<T>(T[] x, int rows, int features) where T : IFloatingPointIeee754<T>
    {
        T[] l1 = new T[rows], l2 = new T[rows], l0 = new T[rows], max = new T[rows], nan = new T[rows];
        for (var r = 0; r < rows; r++)
        {
            T s1 = T.Zero, s2 = T.Zero, count = T.Zero, m = T.NegativeInfinity;
            for (var f = 0; f < features; f++)
            {
                var v = x[r * features + f];
                s1 += T.Abs(v);
                s2 += v * v;
                if (v > T.Zero) count += T.One;
                m = T.Max(m, v);
            }
            (l1[r], l2[r], l0[r], max[r]) = (s1, T.Sqrt(s2), count, m);
            nan[r] = count > T.Zero ? s1 / count : T.Zero;
        }
        return new FeatureNormsReferenceOutput<T>(l1, l2, l0, max, nan);
    }

    /// <summary>dx = dL1 sign(x) + dL2 x / L2; sign(0) = 0 (the subgradient), and 0 for the L2 term of an all-zero row.</summary>
    public static T[] Backward<T>(T[] x, int rows, int features, T[]? dL1, T[]? dL2) where T : IFloatingPointIeee754<T>
    {
        var l2 = Forward(x, rows, features).L2;
        var dx = new T[x.Length];
        for (var r = 0; r < rows; r++)
        for (var f = 0; f < features; f++)
        {
            var v = x[r * features + f];
            var g = T.Zero;
            if (dL1 is not null) g += dL1[r] * T.CreateChecked(T.Sign(v));
            if (dL2 is not null && l2[r] > T.Zero) g += dL2[r] * v / l2[r];
            dx[r * features + f] = g;
        }
        return dx;
    }

    /// <summary>G = X^T X for x [R, C].</summary>
    public static T[] Gram<T>(T[] x, int rows, int columns) where T : IFloatingPointIeee754<T>
    {
        var g = new T[columns * columns];
        for (var a = 0; a < columns; a++)
        for (var b = 0; b < columns; b++)
        {
            var s = T.Zero;
            for (var i = 0; i < rows; i++) s += x[i * columns + a] * x[i * columns + b];
            g[a * columns + b] = s;
        }
        return g;
    }

    /// <summary>Column sums of x [R, C].</summary>
    public static T[] ColumnSums<T>(T[] x, int rows, int columns) where T : IFloatingPointIeee754<T>
    {
        var s = new T[columns];
        for (var i = 0; i < rows; i++)
            for (var c = 0; c < columns; c++) s[c] += x[i * columns + c];
        return s;
    }

    /// <summary>Column sums of the rows' unit vectors (zero rows skipped).</summary>
    public static T[] UnitColumnSums<T>(T[] x, int rows, int columns) where T : IFloatingPointIeee754<T>
    {
        var norms = Forward(x, rows, columns).L2;
        var s = new T[columns];
        for (var i = 0; i < rows; i++)
            if (norms[i] > T.Zero)
                for (var c = 0; c < columns; c++) s[c] += x[i * columns + c] / norms[i];
        return s;
    }

    /// <summary>sum_c (x_ic - mean_c)^2 per row, mean the column mean.</summary>
    public static T[] RowDeviation<T>(T[] x, int rows, int columns) where T : IFloatingPointIeee754<T>
    {
        var mean = ColumnSums(x, rows, columns);
        var n = T.CreateChecked(rows);
        for (var c = 0; c < columns; c++) mean[c] /= n;
        return RowDeviation(x, rows, columns, mean);
    }

    /// <summary>sum_c (x_ic - mean_c)^2 per row for a given <paramref name="mean"/> [C].</summary>
    public static T[] RowDeviation<T>(T[] x, int rows, int columns, T[] mean) where T : IFloatingPointIeee754<T>
    {
        var dev = new T[rows];
        for (var i = 0; i < rows; i++)
            for (var c = 0; c < columns; c++)
            {
                var d = x[i * columns + c] - mean[c];
                dev[i] += d * d;
            }
        return dev;
    }

    /// <summary>Effective rank exp(-sum p log p), p = singular values / their sum (Roy and Vetterli 2007), from an SVD in float64.</summary>
    public static double EffectiveRank(double[] x, int rows, int columns)
    {
        var m = MathNet.Numerics.LinearAlgebra.Matrix<double>.Build.Dense(rows, columns, (i, j) => x[i * columns + j]);
        var sv = m.Svd(computeVectors: false).S.ToArray();
        return Collapse.EffectiveRankFromSingularValues(sv);
    }

    /// <summary>||X - 1 mean^T||_F / ||X||_F, directly.</summary>
    public static double ResidualRatio(double[] x, int rows, int columns)
    {
        var dev = RowDeviation(x, rows, columns).Sum();
        var total = x.Sum(v => v * v);
        return total > 0 ? Math.Sqrt(dev / total) : 0.0;
    }

    /// <summary>Mean cosine over all ordered pairs i != j of non-zero rows, by the O(R^2 C) definition.</summary>
    public static double MeanPairwiseCosine(double[] x, int rows, int columns)
    {
        var norms = Forward(x, rows, columns).L2;
        var live = Enumerable.Range(0, rows).Where(i => norms[i] > 0).ToArray();
        if (live.Length == 0) return 0.0;
        if (live.Length == 1) return 1.0;
        var sum = 0.0;
        foreach (var i in live)
        foreach (var j in live)
        {
            if (i == j) continue;
            var dot = 0.0;
            for (var c = 0; c < columns; c++) dot += x[i * columns + c] * x[j * columns + c];
            sum += dot / (norms[i] * norms[j]);
        }
        return sum / (live.Length * (live.Length - 1.0));
    }
}
