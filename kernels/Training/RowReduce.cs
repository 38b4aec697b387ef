// Row reductions of the normalisation kernels: one group of RowReduce.GroupSize (= 32, a warp) threads per row, as
// llm.c's layernorm kernels use one warp per row. A shared-memory tree in a fixed pairwise order (bitwise repeatable)
// rather than warp shuffles, so the same kernels compile for OpenCL on every vendor (ILGPU 1.5.3 emits shuffles
// there only as Intel sub-group shuffles). 32 rather than GroupReduce's 256 threads: rows of C <= a few thousand
// give each thread C / 32 elements, five tree levels instead of eight, and ILGPU's CPU simulator (an OS thread per
// GPU thread, a barrier across them per level) ran the 256-thread version ~20x slower in the tests (2026-12-02: the
// IlgpuCpu LayerNorm test took 103 s with 256 threads, 5 s with 32).
using ILGPU;

namespace RouteKit.Kernels.Training;

/// <summary>Fixed-order sums across a group of <see cref="GroupSize"/> threads.</summary>
public static class RowReduce
{
    /// <summary>Threads per group every kernel using these reductions must be launched with.</summary>
    public const int GroupSize = 32;

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

    /// <summary>Two sums at once, one tree and one set of barriers; every thread receives both.</summary>
    public static void SumSum(ref float a, ref float b)
    {
        var sa = SharedMemory.Allocate<float>(GroupSize);
        var sb = SharedMemory.Allocate<float>(GroupSize);
        var t = Group.IdxX;
        sa[t] = a;
        sb[t] = b;
        Group.Barrier();
        for (var stride = GroupSize / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                sa[t] += sa[t + stride];
                sb[t] += sb[t + stride];
            }
            Group.Barrier();
        }
        a = sa[0];
        b = sb[0];
        Group.Barrier();
    }
}
