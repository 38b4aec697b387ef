// LayerNorm (DESIGN.md section 9) over rows of x [T rows, C channels]: y = (x - mean) rstd weight + bias,
// rstd = 1 / sqrt(var + eps), var the biased (1/C) variance; mean [T] and rstd [T] are saved for the backward.
// Backward (llm.c's layernorm_backward): norm = (x - mean) rstd, dnorm = weight dy,
//   dx = rstd (dnorm - mean_c(dnorm) - norm mean_c(dnorm norm)), dweight = sum_t dy norm, dbias = sum_t dy.
//
// Versions (time with `routekit-perf training-ops --backend B --variant 1`; the Managed file holds the dated CPU timing):
//   1  (2026-12-02) forward and dx: one group of RowReduce.GroupSize (32) threads per row (grid-stride over rows), the mean
//      and then the variance around it (two passes, no E[x^2] - mean^2 cancellation), each a fixed-order shared-memory
//      tree, so results are bitwise repeatable. dweight/dbias: one thread per channel summing over t in order, no
//      atomics, deterministic; coalesced across channels but only C threads, so a wide-T split with a second fixed
//      reduction is the next version when T >> C matters.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of LayerNorm, forward and backward.</summary>
public static class LayerNormKernels
{
    /// <summary>Threads per group of the row kernels (one group per row).</summary>
    public const int GroupSize = RowReduce.GroupSize;

    /// <summary>Forward: one group per row; writes y, mean and rstd.</summary>
    public static void Forward(
        ArrayView1D<float, Stride1D.Dense> x,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C]
        ArrayView1D<float, Stride1D.Dense> bias,   // [C]
        ArrayView1D<float, Stride1D.Dense> y,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> mean,   // [T]
        ArrayView1D<float, Stride1D.Dense> rstd,   // [T]
        int rows, int channels, float eps)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            var start = (long)r * channels;
            var sum = 0f;
            for (var c = Group.IdxX; c < channels; c += GroupSize) sum += x[start + c];
            var m = RowReduce.Sum(sum) / channels;
            var squares = 0f;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
            {
                var d = x[start + c] - m;
                squares += d * d;
            }
            var s = 1f / XMath.Sqrt(RowReduce.Sum(squares) / channels + eps);
            for (var c = Group.IdxX; c < channels; c += GroupSize)
                y[start + c] = (x[start + c] - m) * s * weight[c] + bias[c];
            if (Group.IdxX == 0)
            {
                mean[r] = m;
                rstd[r] = s;
            }
        }
    }

    /// <summary>Backward of the input: one group per row, <c>dx = rstd (dnorm - mean(dnorm) - norm mean(dnorm norm))</c>.</summary>
    public static void BackwardInput(
        ArrayView1D<float, Stride1D.Dense> dy,     // [T, C]
        ArrayView1D<float, Stride1D.Dense> x,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C]
        ArrayView1D<float, Stride1D.Dense> mean,   // [T]
        ArrayView1D<float, Stride1D.Dense> rstd,   // [T]
        ArrayView1D<float, Stride1D.Dense> dx,     // [T, C]
        int rows, int channels)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            var start = (long)r * channels;
            float m = mean[r], s = rstd[r];
            float sumDnorm = 0f, sumDnormNorm = 0f;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
            {
                var dnorm = weight[c] * dy[start + c];
                sumDnorm += dnorm;
                sumDnormNorm += dnorm * ((x[start + c] - m) * s);
            }
            RowReduce.SumSum(ref sumDnorm, ref sumDnormNorm);
            var meanDnorm = sumDnorm / channels;
            var meanDnormNorm = sumDnormNorm / channels;
            for (var c = Group.IdxX; c < channels; c += GroupSize)
            {
                var norm = (x[start + c] - m) * s;
                dx[start + c] = (weight[c] * dy[start + c] - meanDnorm - norm * meanDnormNorm) * s;
            }
        }
    }

    /// <summary>Backward of the parameters: one thread per channel, sums over rows in order (no atomics).</summary>
    public static void BackwardParameters(
        Index1D c,
        ArrayView1D<float, Stride1D.Dense> dy,      // [T, C]
        ArrayView1D<float, Stride1D.Dense> x,       // [T, C]
        ArrayView1D<float, Stride1D.Dense> mean,    // [T]
        ArrayView1D<float, Stride1D.Dense> rstd,    // [T]
        ArrayView1D<float, Stride1D.Dense> dweight, // [C]
        ArrayView1D<float, Stride1D.Dense> dbias,   // [C]
        int rows, int channels)
    {
        float sumWeight = 0f, sumBias = 0f;
        for (var r = 0; r < rows; r++)
        {
            var i = (long)r * channels + c;
            var g = dy[i];
            sumBias += g;
            sumWeight += g * ((x[i] - mean[r]) * rstd[r]);
        }
        dweight[c] = sumWeight;
        dbias[c] = sumBias;
    }
}
