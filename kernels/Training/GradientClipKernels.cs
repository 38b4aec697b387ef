// Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_): norm = ||g||_2 over the flat gradient buffer, then
// g *= min(1, maxNorm / (norm + 1e-6)). Shapes: N gradients [N]; norm [1]; coefficient [1].
//
// Versions (one so far; GPU timing waits for a GPU run):
//   1  (2026-12-02) Norm: one group strides over N, a group max of |g|, then sums of (g / scale)^2 with scale the power
//      of two at or below max |g| (clamped to [2^-126, 2^126], so scale and 1 / scale are exact normal floats): the
//      terms are below 4, so the sum cannot overflow for any finite g and small gradients do not underflow. The norm is
//      scale sqrt(sum) (+inf only when it exceeds float32), and the clip coefficient is formed in scaled terms so it
//      stays finite. Scale: one thread per element multiplies by the coefficient. One group keeps the sum's order
//      fixed (bitwise repeatable); a grid-wide two-stage version is the next step for large N.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the global-norm clip.</summary>
public static class GradientClipKernels
{
    /// <summary>Threads of the one group <see cref="Norm"/> is launched with.</summary>
    public const int GroupSize = GroupReduce.GroupSize;

    // 2^-126 and 2^126: the clamp of the scale, normal floats whose reciprocals are normal too.
    private const float MinScale = 1.17549435e-38f;
    private const float MaxScale = 8.50705917e37f;

    /// <summary>One group: norm[0] = ||g||_2, coefficient[0] = min(1, maxNorm / (norm + 1e-6)).</summary>
    public static void Norm(
        ArrayView1D<float, Stride1D.Dense> gradients,   // [N]
        ArrayView1D<float, Stride1D.Dense> norm,        // [1]
        ArrayView1D<float, Stride1D.Dense> coefficient, // [1]
        int length, float maxNorm)
    {
        var largest = 0f;
        for (var i = Group.IdxX; i < length; i += GroupSize) largest = IntrinsicMath.Max(largest, IntrinsicMath.Abs(gradients[i]));
        var dummyA = 0f;
        var dummyB = 0f;
        var dummyC = 0f;
        GroupReduce.SumSumSumMax(ref dummyA, ref dummyB, ref dummyC, ref largest);
        var scale = IntrinsicMath.Clamp(Interop.IntAsFloat(Interop.FloatAsInt(largest) & 0x7F800000u), MinScale, MaxScale);
        var inverse = 1f / scale;
        var s = 0f;
        for (var i = Group.IdxX; i < length; i += GroupSize)
        {
            var t = gradients[i] * inverse;
            s += t * t;
        }
        s = GroupReduce.Sum(s);
        if (Group.IdxX == 0)
        {
            var root = XMath.Sqrt(s);
            norm[0] = scale * root;
            coefficient[0] = IntrinsicMath.Min(1f, maxNorm * inverse / (root + 1e-6f * inverse));
        }
    }

    /// <summary>One thread per element: g *= coefficient[0].</summary>
    public static void Scale(Index1D i,
        ArrayView1D<float, Stride1D.Dense> gradients,   // [N]
        ArrayView1D<float, Stride1D.Dense> coefficient) // [1]
    {
        gradients[i] *= coefficient[0];
    }
}
