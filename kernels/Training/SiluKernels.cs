// SiLU (swish), elementwise over any shape (n elements): y = x sigmoid(x); dx = dy (sigmoid(x) + x sigmoid(x)(1 - sigmoid(x))).
//
// Versions:
//   1  (2026-12-02) one thread per element. sigmoid is built from e = exp(-|x|) in [0, 1]: 1 / (1 + e) for x >= 0,
//      e / (1 + e) below, and sigmoid (1 - sigmoid) = e / (1 + e)^2 on both sides, so nothing overflows or cancels
//      for any finite x (1 / (1 + exp(-x)) needs exp(88+) = inf and loses 1 - sigmoid's digits for x > 0).
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of SiLU.</summary>
public static class SiluKernels
{
    /// <summary>silu(x) = x sigmoid(x).</summary>
    public static float Value(float x)
    {
        var e = XMath.Exp(-IntrinsicMath.Abs(x));
        return x * ((x >= 0f ? 1f : e) / (1f + e));
    }

    /// <summary>d silu / dx = sigmoid(x) + x sigmoid(x) (1 - sigmoid(x)).</summary>
    public static float Derivative(float x)
    {
        var e = XMath.Exp(-IntrinsicMath.Abs(x));
        var r = 1f / (1f + e);
        return (x >= 0f ? r : e * r) + x * (e * r * r);
    }

    /// <summary>Forward: one thread per element.</summary>
    public static void Forward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x, // [n]
        ArrayView1D<float, Stride1D.Dense> y) // [n]
        => y[i] = Value(x[i]);

    /// <summary>Backward: one thread per element, <c>dx = dy silu'(x)</c>.</summary>
    public static void Backward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy, // [n]
        ArrayView1D<float, Stride1D.Dense> x,  // [n]
        ArrayView1D<float, Stride1D.Dense> dx) // [n]
        => dx[i] = dy[i] * Derivative(x[i]);
}
