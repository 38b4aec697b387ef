// Attention saved-statistics check: the backward recomputes P from the forward's per-row (m_i, logsum_i), so a NaN,
// an infinity or a stale value there would flow into every gradient of the row; this finds the first row whose
// statistics the forward cannot have written, before any backward kernel runs.
// Versions:
//   1. AttentionStats.CheckKernel (2026-12-02): one thread per query row, atomic min of the first bad row.
// Not timed on its own: it is one read of B H N 2 floats, part of every checked backward call.
//
// Shapes: B batch, H query heads, N queries; stats [B, H, N, 2].
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Attention;

/// <summary>Device code of the backward's check of the forward's saved softmax statistics.</summary>
public static class AttentionStats
{
    /// <summary>
    /// One thread per row of <c>[B, H, N]</c>. A row that sees some key must hold a finite m_i and
    /// <c>minLogSum &lt;= logsum_i &lt;= maxLogSum</c> (a sum of at most M terms, the largest exactly 1); a row that
    /// sees none must hold (-inf, 0), as the forward writes it. <paramref name="firstBad"/>[0] starts at int.MaxValue
    /// and ends as the smallest offending row (atomic min, independent of thread order).
    /// </summary>
    public static void CheckKernel(
        Index1D row,
        ArrayView1D<float, Stride1D.Dense> stats,    // [B, H, N, 2]
        ArrayView1D<int, Stride1D.Dense> firstBad,   // [1]
        ArrayView1D<float, Stride1D.Dense> keyLengths, // [B] as exact float integers, read with KeyPadding
        AttentionKernelParams p,
        float minLogSum,
        float maxLogSum)
    {
        var i = row.X % p.N;
        AttentionBand.KeysOf(p, i, i, out var lo, out var hi);
        if (p.KeyPadding != 0) hi = IntrinsicMath.Min(hi, (int)keyLengths[row.X / p.N / p.H] - 1);
        var m = stats[2 * row.X];
        var logSum = stats[2 * row.X + 1];
        bool ok;
        if (lo <= hi)
            ok = !float.IsNaN(m) && !float.IsInfinity(m) && logSum >= minLogSum && logSum <= maxLogSum;
        else
            ok = float.IsNegativeInfinity(m) && logSum == 0f;
        if (!ok) Atomic.Min(ref firstBad[0], row.X);
    }
}
