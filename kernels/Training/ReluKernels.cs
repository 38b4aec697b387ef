// ReLU, elementwise over any shape (n elements): y = max(x, 0); dx = dy where x > 0, else 0 (the subgradient 0 at x = 0).
//
// Versions:
//   1  (2026-12-02) one thread per element; a select rather than max, so x = -0 gives +0 like x = 0.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of ReLU.</summary>
public static class ReluKernels
{
    /// <summary>Forward: one thread per element.</summary>
    public static void Forward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x, // [n]
        ArrayView1D<float, Stride1D.Dense> y) // [n]
    {
        var v = x[i];
        y[i] = v > 0f ? v : 0f;
    }

    /// <summary>Backward: one thread per element.</summary>
    public static void Backward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy, // [n]
        ArrayView1D<float, Stride1D.Dense> x,  // [n]
        ArrayView1D<float, Stride1D.Dense> dx) // [n]
        => dx[i] = x[i] > 0f ? dy[i] : 0f;
}
