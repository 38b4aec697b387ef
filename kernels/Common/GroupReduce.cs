// Group-wide reductions for kernels launched with exactly GroupReduce.GroupSize threads per group.
// A shared-memory tree: the combination order is fixed (pairwise over thread indices), so results are bitwise
// repeatable and carry pairwise summation's O(log n) error growth.
using ILGPU;

namespace RouteKit.Kernels.Common;

/// <summary>Fixed-size group reductions (sum, max) in a deterministic pairwise order.</summary>
public static class GroupReduce
{
    /// <summary>Threads per group every kernel that uses these reductions must be launched with.</summary>
    public const int GroupSize = 256;

    /// <summary>
    /// Reduces four values per thread at once (three sums and one max) with one tree and one set of barriers; every
    /// thread receives the results.
    /// </summary>
    public static void SumSumSumMax(ref float a, ref float b, ref float c, ref float max)
    {
        var sa = SharedMemory.Allocate<float>(GroupSize);
        var sb = SharedMemory.Allocate<float>(GroupSize);
        var sc = SharedMemory.Allocate<float>(GroupSize);
        var sm = SharedMemory.Allocate<float>(GroupSize);
        var t = Group.IdxX;
        sa[t] = a;
        sb[t] = b;
        sc[t] = c;
        sm[t] = max;
        Group.Barrier();
        for (var stride = GroupSize / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                sa[t] += sa[t + stride];
                sb[t] += sb[t + stride];
                sc[t] += sc[t + stride];
                sm[t] = IntrinsicMath.Max(sm[t], sm[t + stride]);
            }
            Group.Barrier();
        }
        a = sa[0];
        b = sb[0];
        c = sc[0];
        max = sm[0];
        Group.Barrier();
    }

    /// <summary>Sum of one value per thread; every thread receives the result.</summary>
    public static float Sum(float value)
    {
        var s = SharedMemory.Allocate<float>(GroupSize);
        var t = Group.IdxX;
        s[t] = value;
        Group.Barrier();
        for (var stride = GroupSize / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) s[t] += s[t + stride];
            Group.Barrier();
        }
        var result = s[0];
        Group.Barrier();
        return result;
    }

    /// <summary>One step of Kahan summation: adds <paramref name="value"/> to <paramref name="sum"/>, carrying the lost low bits in <paramref name="compensation"/>.</summary>
    public static void KahanAdd(ref float sum, ref float compensation, float value)
    {
        var y = value - compensation;
        var t = sum + y;
        compensation = t - sum - y;
        sum = t;
    }
}
