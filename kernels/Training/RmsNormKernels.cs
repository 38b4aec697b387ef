// RMSNorm over rows of x [T rows, C channels]: y = x rstd weight, rstd = 1 / sqrt(mean_c(x^2) + eps), rstd [T] saved.
// Backward: norm = x rstd, dnorm = weight dy, dx = rstd (dnorm - norm mean_c(dnorm norm)), dweight = sum_t dy norm.
//
// Versions (time with `routekit-perf training-ops --backend B --variant 1`; the Managed file holds the dated CPU timing):
//   1  (2026-12-02) forward and dx: one group of RowReduce.GroupSize (32) threads per row (grid-stride over rows), one
//      fixed-order shared-memory tree per row sum (bitwise repeatable). dweight: one thread per channel summing over t
//      in order, no atomics.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of RMSNorm, forward and backward.</summary>
public static class RmsNormKernels
{
    /// <summary>Threads per group of the row kernels (one group per row).</summary>
    public const int GroupSize = RowReduce.GroupSize;

    /// <summary>Forward: one group per row; writes y and rstd.</summary>
    public static void Forward(
        ArrayView1D<float, Stride1D.Dense> x,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C]
        ArrayView1D<float, Stride1D.Dense> y,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> rstd,   // [T]
        int rows, int channels, float eps)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            var start = (long)r * channels;
            var squares = 0f;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
            {
                var v = x[start + c];
                squares += v * v;
            }
            var s = 1f / XMath.Sqrt(RowReduce.Sum(squares) / channels + eps);
            for (var c = Group.IdxX; c < channels; c += GroupSize)
                y[start + c] = x[start + c] * s * weight[c];
            if (Group.IdxX == 0) rstd[r] = s;
        }
    }

    /// <summary>Backward of the input: one group per row, <c>dx = rstd (dnorm - norm mean(dnorm norm))</c>.</summary>
    public static void BackwardInput(
        ArrayView1D<float, Stride1D.Dense> dy,     // [T, C]
        ArrayView1D<float, Stride1D.Dense> x,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C]
        ArrayView1D<float, Stride1D.Dense> rstd,   // [T]
        ArrayView1D<float, Stride1D.Dense> dx,     // [T, C]
        int rows, int channels)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            var start = (long)r * channels;
            var s = rstd[r];
            var sum = 0f;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
                sum += weight[c] * dy[start + c] * (x[start + c] * s);
            var meanDnormNorm = RowReduce.Sum(sum) / channels;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
                dx[start + c] = (weight[c] * dy[start + c] - x[start + c] * s * meanDnormNorm) * s;
        }
    }

    /// <summary>Backward of the weight: one thread per channel, sums over rows in order (no atomics).</summary>
    public static void BackwardWeight(
        Index1D c,
        ArrayView1D<float, Stride1D.Dense> dy,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> x,       // [T, C]
        ArrayView1D<float, Stride1D.Dense> rstd,    // [T]
        ArrayView1D<float, Stride1D.Dense> dweight, // [C]
        int rows, int channels)
    {
        var sum = 0f;
        for (var r = 0; r < rows; r++)
        {
            var i = (long)r * channels + c;
            sum += dy[i] * (x[i] * rstd[r]);
        }
        dweight[c] = sum;
    }
}
