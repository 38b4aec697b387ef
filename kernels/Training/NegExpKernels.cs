// NegExp, elementwise over any shape (n elements): y = -exp(x) (Mamba's A = -exp(A_log), a decay rate that stays
// negative for any real parameter); dx = dy y, from the forward's y (the derivative of -exp is itself).
//
// Versions:
//   1  (2026-12-03) one thread per element. x above ln(float.MaxValue) = 88.72 gives y = -inf (float32's range), x below
//      about -103.3 gives -0; the backward refuses a non-finite y, so such an x must not reach a training step.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of NegExp.</summary>
public static class NegExpKernels
{
    /// <summary>Forward: one thread per element, <c>y = -exp(x)</c>.</summary>
    public static void Forward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x, // [n]
        ArrayView1D<float, Stride1D.Dense> y) // [n]
        => y[i] = -XMath.Exp(x[i]);

    /// <summary>Backward: one thread per element, <c>dx = dy y</c> with y the forward's output.</summary>
    public static void Backward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy, // [n]
        ArrayView1D<float, Stride1D.Dense> y,  // [n]
        ArrayView1D<float, Stride1D.Dense> dx) // [n]
        => dx[i] = dy[i] * y[i];
}
