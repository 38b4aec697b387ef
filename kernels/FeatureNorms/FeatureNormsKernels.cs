// Feature norms of each row of X [R rows, F features] (DESIGN.md section 4): L1 = sum|x|, L2 = sqrt(sum x^2),
// L0 = #{x > 0}, Max, and NAN = L1 / L0 (0 where L0 = 0), the negative-aware norm of ICCV 2023's eq. 10.
//
// Versions (history; only the newest is in the code, listed in Variants: `routekit-perf featurenorms --backend B
// --variant 1` validates and times it on an ILGPU backend):
//   1  (replaced in place by 2 on 2026-12-02) one group of 256 threads per row (grid-stride over rows); each thread Kahan-sums a strided slice in float32,
//      then one shared-memory tree (pairwise) combines the 256 partials: error ~ 2 eps |sum| + O(log 256) eps.
//      x^2 overflowed float32 for |x| > 1.8e19 (L2 = +inf for a row of 32 x 1e20, whose L2 is 5.7e20) and underflowed
//      for |x| < 1e-23 (L2 = 0) although the norms fit.
//   2  (2026-12-02; Variants[0], the one that runs) as 1, with BLAS nrm2's scaled sums: each thread keeps a scale, the power of two at or below the
//      largest |x| it has seen (clamped to [2^-126, 2^126], so the scale and its reciprocal are normal floats), and
//      Kahan-sums |x| / scale and (|x| / scale)^2. Multiplying by a power of two is exact, so a scale that grows
//      rescales both sums without rounding, and the tree combines (scale, sums) pairs the same way. Scaled terms are
//      < 4 (< 16 at the clamp), so no partial sum overflows; L = scale * sum is +inf exactly when the norm does not fit
//      in float32, and the kernel records the first such row in a flag for the host to refuse. Terms that underflow
//      are below 2^-149 of the row's largest and cannot change the result. Cost per element: one multiply more than 1,
//      and a rarely taken branch when the scale grows (bit operations and one exact division).
//
// Backward (L1 and L2 only, usable as a training-time penalty): dx = dL1 sign(x) + dL2 (x / L2), with the subgradient
// sign(0) = 0 at x = 0 and dL2/dx = 0 for an all-zero row. Since 2026-12-02 the ratio |x / L2| <= 1 is formed first:
// dL2 x overflowed float32 at |x| ~ 1e38 and lost digits as a subnormal at |x| ~ 1e-40.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit.Kernels.FeatureNorms;

/// <summary>Device code of the feature-norm reduction.</summary>
public static class FeatureNormsKernels
{
    /// <summary>The forward versions in the code that a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("Forward", "one 256-thread group per row, Kahan sums with nrm2-style power-of-two scaling, shared-memory tree"),
    ];

    /// <summary>Threads per group (one group per row).</summary>
    public const int GroupSize = GroupReduce.GroupSize;

    /// <summary>
    /// Forward: one group per row. <paramref name="overflowRow"/> (one int, <see cref="int.MaxValue"/> on entry) receives
    /// the smallest row index whose L1 or L2 does not fit in float32.
    /// </summary>
    public static void Forward(
        ArrayView1D<float, Stride1D.Dense> x,         // [R, F]
        ArrayView1D<float, Stride1D.Dense> l1,        // [R]
        ArrayView1D<float, Stride1D.Dense> l2,        // [R]
        ArrayView1D<float, Stride1D.Dense> l0,        // [R]
        ArrayView1D<float, Stride1D.Dense> max,       // [R]
        ArrayView1D<float, Stride1D.Dense> nan,       // [R]
        ArrayView1D<int, Stride1D.Dense> overflowRow, // [1]
        int rows, int features)
    {
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            // Kahan sums of |x| / scale (s1) and (|x| / scale)^2 (s2); limit = 2 scale, where the scale next grows.
            float scale = MinScale, inverse = 1f / MinScale, limit = 2f * MinScale;
            float s1 = 0f, c1 = 0f, s2 = 0f, c2 = 0f, count = 0f, m = float.NegativeInfinity;
            var rowStart = (long)r * features;
            for (var f = Group.IdxX; f < features; f += GroupSize)
            {
                var v = x[rowStart + f];
                var a = IntrinsicMath.Abs(v);
                if (a >= limit) Rescale(a, ref scale, ref inverse, ref limit, ref s1, ref c1, ref s2, ref c2);
                var t = a * inverse;
                GroupReduce.KahanAdd(ref s1, ref c1, t);
                GroupReduce.KahanAdd(ref s2, ref c2, t * t);
                if (v > 0f) count += 1f;
                m = IntrinsicMath.Max(m, v);
            }
            s1 -= c1;
            s2 -= c2;
            ReduceRow(ref scale, ref s1, ref s2, ref count, ref m);
            if (Group.IdxX == 0)
            {
                var norm1 = scale * s1;
                var norm2 = scale * XMath.Sqrt(s2);
                l1[r] = norm1;
                l2[r] = norm2;
                l0[r] = count;
                max[r] = m;
                nan[r] = count > 0f ? norm1 / count : 0f;
                if (!(norm1 <= float.MaxValue) || !(norm2 <= float.MaxValue)) Atomic.Min(ref overflowRow[0], r);
            }
        }
    }

    // 2^-126 and 2^126: the clamp of the scale, normal floats whose reciprocals are normal too.
    private const float MinScale = 1.17549435e-38f;
    private const float MaxScale = 8.50705917e37f;

    // The scale grows to the power of two at or below a (at most MaxScale); the sums are rescaled by old / new, an exact
    // power of two (a rescaled sum underflows only where it is below 2^-149 of one term at the new scale).
    private static void Rescale(float a, ref float scale, ref float inverse, ref float limit,
        ref float s1, ref float c1, ref float s2, ref float c2)
    {
        var next = IntrinsicMath.Min(Interop.IntAsFloat(Interop.FloatAsInt(a) & 0x7F800000u), MaxScale);
        var ratio = scale / next;
        s1 *= ratio;
        c1 *= ratio;
        s2 = s2 * ratio * ratio;
        c2 = c2 * ratio * ratio;
        scale = next;
        inverse = 1f / next;
        limit = next < MaxScale ? 2f * next : float.PositiveInfinity;
    }

    // Group reduction of each thread's (scale, sum |x| / scale, sum (|x| / scale)^2, count, max) in a fixed pairwise
    // order (bitwise repeatable): a pair's sums are brought to the larger scale by the exact power-of-two ratio.
    // Every thread receives the row's values.
    private static void ReduceRow(ref float scale, ref float s1, ref float s2, ref float count, ref float max)
    {
        var sScale = SharedMemory.Allocate<float>(GroupSize);
        var sS1 = SharedMemory.Allocate<float>(GroupSize);
        var sS2 = SharedMemory.Allocate<float>(GroupSize);
        var sCount = SharedMemory.Allocate<float>(GroupSize);
        var sMax = SharedMemory.Allocate<float>(GroupSize);
        var t = Group.IdxX;
        sScale[t] = scale;
        sS1[t] = s1;
        sS2[t] = s2;
        sCount[t] = count;
        sMax[t] = max;
        Group.Barrier();
        for (var stride = GroupSize / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                var u = t + stride;
                float big = sScale[t], small = sScale[u], bigS1 = sS1[t], bigS2 = sS2[t], smallS1 = sS1[u], smallS2 = sS2[u];
                if (small > big)
                {
                    (big, small) = (small, big);
                    (bigS1, smallS1) = (smallS1, bigS1);
                    (bigS2, smallS2) = (smallS2, bigS2);
                }
                var ratio = small / big;
                sScale[t] = big;
                sS1[t] = bigS1 + smallS1 * ratio;
                sS2[t] = bigS2 + smallS2 * ratio * ratio;
                sCount[t] += sCount[u];
                sMax[t] = IntrinsicMath.Max(sMax[t], sMax[u]);
            }
            Group.Barrier();
        }
        scale = sScale[0];
        s1 = sS1[0];
        s2 = sS2[0];
        count = sCount[0];
        max = sMax[0];
        Group.Barrier();
    }

    /// <summary>Backward: one thread per element, <c>dx = dL1 sign(x) + dL2 (x / L2)</c>.</summary>
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
        dx[i] = dL1[r] * sign + (norm > 0f ? dL2[r] * (v / norm) : 0f);
    }
}
