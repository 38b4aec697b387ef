// Token-id check: token ids and class targets travel as float-coded integers in float32 tensors (RouteKit's tensors
// are float32 only, and every integer below 2^24 is exact in float32), so each op that reads them first has this
// kernel find the first entry that is not an integer in [0, limit) and not the ignore value. Shapes: T entries, flat.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the token-id check every training op that reads ids runs before its kernels.</summary>
public static class TokenIdCheck
{
    /// <summary>
    /// One thread per id; <paramref name="firstBad"/>[0] starts at int.MaxValue and ends as the smallest index whose id
    /// is not an integer in [0, <paramref name="limit"/>) nor equal to <paramref name="ignore"/> (NaN: no ignore value).
    /// </summary>
    public static void FirstBadIdKernel(Index1D i, ArrayView1D<float, Stride1D.Dense> ids, int limit, float ignore,
        ArrayView1D<int, Stride1D.Dense> firstBad)
    {
        var id = ids[i];
        var inRange = id >= 0f && id < limit && id == XMath.Floor(id);
        if (!inRange && !(id == ignore))
            Atomic.Min(ref firstBad[0], i.X);
    }
}
