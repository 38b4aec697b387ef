// Finite check: finds the first NaN or +-Inf in a buffer so ops can refuse bad input before any real kernel runs.
// Shapes: n elements, flat.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Common;

/// <summary>Device code of the input check every op runs before its kernels.</summary>
public static class FiniteCheck
{
    /// <summary>
    /// One thread per element; <paramref name="firstBad"/>[0] starts at int.MaxValue and ends as the smallest index
    /// of a non-finite element (atomic min, so the answer does not depend on thread order).
    /// </summary>
    public static void FirstNonFiniteKernel(Index1D i, ArrayView1D<float, Stride1D.Dense> data, ArrayView1D<int, Stride1D.Dense> firstBad)
    {
        var x = data[i];
        if (float.IsNaN(x) || float.IsInfinity(x))
            Atomic.Min(ref firstBad[0], i.X);
    }

    /// <summary>Atomic min of the index of the first element &gt; 0 (a decay A that would grow the state).</summary>
    public static void FirstPositiveKernel(Index1D i, ArrayView1D<float, Stride1D.Dense> data, ArrayView1D<int, Stride1D.Dense> firstBad)
    {
        if (data[i] > 0f) Atomic.Min(ref firstBad[0], i.X);
    }

    /// <summary>view[i] = value (a training step's flag slots start at int.MaxValue, "no failure").</summary>
    public static void FillKernel(Index1D i, ArrayView1D<int, Stride1D.Dense> view, int value) => view[i] = value;

    /// <summary>
    /// One thread: slots[slots.Length - 1] = the smallest of slots[0..count), i.e. int.MaxValue when every check of the
    /// step so far passed. AdamW reads that summary slot to skip its update after a failed check.
    /// </summary>
    public static void SummarizeKernel(Index1D i, ArrayView1D<int, Stride1D.Dense> slots, int count)
    {
        var smallest = int.MaxValue;
        for (var k = 0; k < count; k++)
        {
            var s = slots[k];
            if (s < smallest) smallest = s;
        }
        slots[slots.Length - 1] = smallest;
    }
}
