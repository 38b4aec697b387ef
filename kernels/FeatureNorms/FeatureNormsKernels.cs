// Feature norms of each row of X [R rows, F features] (DESIGN.md section 4): L1 = sum|x|, L2 = sqrt(sum x^2),
// L0 = #{x > 0}, Max, and NAN = L1 / L0 (0 where L0 = 0), the negative-aware norm of ICCV 2023's eq. 10.
//
// Versions (time with `routekit-perf featurenorms --variant N`):
//   1  one group of 256 threads per row (grid-stride over rows); each thread Kahan-sums a strided slice in float32,
//      then one shared-memory tree (pairwise) combines the 256 partials: error ~ 2 eps |sum| + O(log 256) eps.
//
// Backward (L1 and L2 only, usable as a training-time penalty): dx = dL1 sign(x) + dL2 x / L2, with the subgradient
// sign(0) = 0 at x = 0 and dL2/dx = 0 for an all-zero row.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit.Kernels.FeatureNorms;

/// <summary>Device code of the feature-norm reduction.</summary>
public static class FeatureNormsKernels
{
    /// <summary>Threads per group (one group per row).</summary>
    public const int GroupSize = GroupReduce.GroupSize;

    /// <summary>Forward: one group per row.</summary>
    public static void Forward(
        ArrayView1D<float, Stride1D.Dense> x,   // [R, F]
        ArrayView1D<float, Stride1D.Dense> l1,  // [R]
        ArrayView1D<float, Stride1D.Dense> l2,  // [R]
        ArrayView1D<float, Stride1D.Dense> l0,  // [R]
        ArrayView1D<float, Stride1D.Dense> max, // [R]
        ArrayView1D<float, Stride1D.Dense> nan, // [R]
        int rows, int features)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            float s1 = 0f, c1 = 0f, s2 = 0f, c2 = 0f, count = 0f, m = float.NegativeInfinity;
            var rowStart = (long)r * features;
            for (var f = Group.IdxX; f < features; f += GroupSize)
            {
                var v = x[rowStart + f];
                GroupReduce.KahanAdd(ref s1, ref c1, IntrinsicMath.Abs(v));
                GroupReduce.KahanAdd(ref s2, ref c2, v * v);
                if (v > 0f) count += 1f;
                m = IntrinsicMath.Max(m, v);
            }
            GroupReduce.SumSumSumMax(ref s1, ref s2, ref count, ref m);
            if (Group.IdxX == 0)
            {
                l1[r] = s1;
                l2[r] = XMath.Sqrt(s2);
                l0[r] = count;
                max[r] = m;
                nan[r] = count > 0f ? s1 / count : 0f;
            }
        }
    }

    /// <summary>Backward: one thread per element, <c>dx = dL1 sign(x) + dL2 x / L2</c>.</summary>
    public static void Backward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x,   // [R, F]
        ArrayView1D<float, Stride1D.Dense> l2,  // [R]
        ArrayView1D<float, Stride1D.Dense> dL1, // [R]
        ArrayView1D<float, Stride1D.Dense> dL2, // [R]
        ArrayView1D<float, Stride1D.Dense> dx,  // [R, F]
        int features)
    {
        var r = i.X / features;
        var v = x[i];
        var sign = v > 0f ? 1f : v < 0f ? -1f : 0f;
        var norm = l2[r];
        dx[i] = dL1[r] * sign + (norm > 0f ? dL2[r] * v / norm : 0f);
    }
}
