// Fused classifier (llm.c's fused_classifier): softmax, cross-entropy loss and dlogits in one pass over the logits.
// Shapes: T rows (tokens), V classes; logits [T, V], targets [T] (float-coded class ids, or the ignore value),
// losses [T], mean [1], dlogits [T, V], stats [1] (the count of rows whose target is not ignored).
//
// Versions (one so far; GPU timing waits for a GPU run):
//   1  (2026-12-02) three launches: Count (one group counts the non-ignored rows, so every row's dlogits can carry the
//      1 / count of the mean), Rows (one group of GroupSize threads per row, grid-stride over rows: a group max, a
//      group sum of exp(x - max), then loss = log(sum) - (x[target] - max) and dlogits = (softmax - onehot) / count
//      written in the same sweep; an ignored row writes zeros), Mean (one group sums the losses in a fixed order).
//      Max subtraction keeps exp in (0, 1], so logits of any finite magnitude are safe; the group trees are pairwise,
//      so results are bitwise repeatable.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the fused softmax + cross-entropy + dlogits.</summary>
public static class CrossEntropyKernels
{
    /// <summary>Threads per group of every kernel here.</summary>
    public const int GroupSize = GroupReduce.GroupSize;

    /// <summary>One group: stats[0] = number of rows whose target differs from <paramref name="ignore"/>.</summary>
    public static void Count(
        ArrayView1D<float, Stride1D.Dense> targets, // [T]
        ArrayView1D<float, Stride1D.Dense> stats,   // [1]
        int rows, float ignore)
    {
        var count = 0f;
        for (var r = Group.IdxX; r < rows; r += GroupSize)
            if (targets[r] != ignore) count += 1f;
        count = GroupReduce.Sum(count);
        if (Group.IdxX == 0) stats[0] = count;
    }

    /// <summary>One group per row (grid-stride): losses[r] and the row's dlogits.</summary>
    public static void Rows(
        ArrayView1D<float, Stride1D.Dense> logits,  // [T, V]
        ArrayView1D<float, Stride1D.Dense> targets, // [T]
        ArrayView1D<float, Stride1D.Dense> stats,   // [1]
        ArrayView1D<float, Stride1D.Dense> losses,  // [T]
        ArrayView1D<float, Stride1D.Dense> dlogits, // [T, V]
        int rows, int classes, float ignore)
    {
        var count = stats[0];
        var inverseCount = count > 0f ? 1f / count : 0f;
        for (var r = Grid.IdxX; r < rows; r += Grid.DimX)
        {
            var start = (long)r * classes;
            var target = targets[r];
            if (target == ignore)
            {
                for (var c = Group.IdxX; c < classes; c += GroupSize) dlogits[start + c] = 0f;
                if (Group.IdxX == 0) losses[r] = 0f;
                continue;
            }
            if (!(target >= 0f && target < classes))
            {
                // An id a deferred check (inside a training step) has yet to report: never index with it; NaN marks the row.
                for (var c = Group.IdxX; c < classes; c += GroupSize) dlogits[start + c] = float.NaN;
                if (Group.IdxX == 0) losses[r] = float.NaN;
                continue;
            }
            var m = float.NegativeInfinity;
            for (var c = Group.IdxX; c < classes; c += GroupSize) m = IntrinsicMath.Max(m, logits[start + c]);
            m = Max(m);
            var s = 0f;
            for (var c = Group.IdxX; c < classes; c += GroupSize) s += XMath.Exp(logits[start + c] - m);
            s = GroupReduce.Sum(s);
            var t = (int)target;
            for (var c = Group.IdxX; c < classes; c += GroupSize)
            {
                var p = XMath.Exp(logits[start + c] - m) / s;
                dlogits[start + c] = (c == t ? p - 1f : p) * inverseCount;
            }
            if (Group.IdxX == 0) losses[r] = XMath.Log(s) - (logits[start + t] - m);
        }
    }

    /// <summary>One group: mean[0] = sum of losses / count (0 when every row is ignored).</summary>
    public static void Mean(
        ArrayView1D<float, Stride1D.Dense> losses, // [T]
        ArrayView1D<float, Stride1D.Dense> stats,  // [1]
        ArrayView1D<float, Stride1D.Dense> mean,   // [1]
        int rows)
    {
        var s = 0f;
        for (var r = Group.IdxX; r < rows; r += GroupSize) s += losses[r];
        s = GroupReduce.Sum(s);
        if (Group.IdxX == 0)
        {
            var count = stats[0];
            mean[0] = count > 0f ? s / count : 0f;
        }
    }

    // Group max of one value per thread, pairwise; every thread receives the result.
    private static float Max(float value)
    {
        var s = SharedMemory.Allocate<float>(GroupSize);
        var t = Group.IdxX;
        s[t] = value;
        Group.Barrier();
        for (var stride = GroupSize / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) s[t] = IntrinsicMath.Max(s[t], s[t + stride]);
            Group.Barrier();
        }
        var result = s[0];
        Group.Barrier();
        return result;
    }
}
