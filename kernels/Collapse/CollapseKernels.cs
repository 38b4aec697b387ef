// Reductions behind the collapse measures (DESIGN.md section 4) on X [R rows, C columns]:
//   Gram          G = X^T X [C, C], for the effective rank (eigenvalues on the host)
//   ColumnSums    sum_i x_ic [C], Kahan in float32, for the mean row
//   RowDeviation  sum_c (x_ic - mean_c)^2 [R], one group per row, for the residual ratio
//   UnitColumnSums sum_i x_ic / |x_i| [C] (zero rows skipped), for the mean pairwise cosine in O(R C)
// Versions (validate and time with `routekit-perf collapse --backend B --variant N`):
//   1  one thread per output element looping over rows (Gram: per (a, b) with a <= b, mirrored); Kahan sums.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit.Kernels.Collapse;

/// <summary>Device code of the collapse reductions.</summary>
public static class CollapseKernels
{
    /// <summary>The versions a perf harness can list and time, numbered from 1 (all four reductions together).</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("Gram+ColumnSums+UnitColumnSums+RowDeviation", "one thread per output element looping over rows (Gram mirrored from a <= b), RowDeviation one group per row; Kahan sums"),
    ];

    /// <summary>Gram matrix: thread (a, b) with a &lt;= b computes sum_i x_ia x_ib and writes both halves.</summary>
    public static void Gram(
        Index2D ab,
        ArrayView1D<float, Stride1D.Dense> x,    // [R, C]
        ArrayView1D<float, Stride1D.Dense> gram, // [C, C]
        int rows, int columns)
    {
        int a = ab.X, b = ab.Y;
        if (a > b) return;
        float sum = 0f, comp = 0f;
        for (var i = 0; i < rows; i++)
        {
            var row = (long)i * columns;
            GroupReduce.KahanAdd(ref sum, ref comp, x[row + a] * x[row + b]);
        }
        gram[(long)a * columns + b] = sum;
        gram[(long)b * columns + a] = sum;
    }

    /// <summary>Column sums (Kahan), one thread per column.</summary>
    public static void ColumnSums(
        Index1D c,
        ArrayView1D<float, Stride1D.Dense> x,    // [R, C]
        ArrayView1D<float, Stride1D.Dense> sums, // [C]
        int rows, int columns)
    {
        float sum = 0f, comp = 0f;
        for (var i = 0; i < rows; i++)
            GroupReduce.KahanAdd(ref sum, ref comp, x[(long)i * columns + c]);
        sums[c] = sum;
    }

    /// <summary>Sum over columns of each row's unit vector: zero rows contribute nothing.</summary>
    public static void UnitColumnSums(
        Index1D c,
        ArrayView1D<float, Stride1D.Dense> x,     // [R, C]
        ArrayView1D<float, Stride1D.Dense> norms, // [R]
        ArrayView1D<float, Stride1D.Dense> sums,  // [C]
        int rows, int columns)
    {
        float sum = 0f, comp = 0f;
        for (var i = 0; i < rows; i++)
        {
            var n = norms[i];
            if (n > 0f) GroupReduce.KahanAdd(ref sum, ref comp, x[(long)i * columns + c] / n);
        }
        sums[c] = sum;
    }

    /// <summary>Squared distance of each row to the mean row, one group of <see cref="GroupReduce.GroupSize"/> per row.</summary>
    public static void RowDeviation(
        ArrayView1D<float, Stride1D.Dense> x,         // [R, C]
        ArrayView1D<float, Stride1D.Dense> mean,      // [C]
        ArrayView1D<float, Stride1D.Dense> deviation, // [R]
        int rows, int columns)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            float sum = 0f, comp = 0f;
            for (var c = Group.IdxX; c < columns; c += GroupReduce.GroupSize)
            {
                var d = x[(long)r * columns + c] - mean[c];
                GroupReduce.KahanAdd(ref sum, ref comp, d * d);
            }
            sum = GroupReduce.Sum(sum);
            if (Group.IdxX == 0) deviation[r] = sum;
        }
    }
}
