// Residual add, elementwise over any shape (n elements): y = x + r, and the accumulation dst += src that a model's
// backward uses to sum the gradients of two branches into one buffer.
//
// Versions:
//   1  (2026-12-02) one thread per element. y may be x or r itself (each element is read and written by the same
//      thread), so the residual stream can be updated in place.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the residual add.</summary>
public static class ResidualKernels
{
    /// <summary>y = x + r: one thread per element.</summary>
    public static void Add(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x, // [n]
        ArrayView1D<float, Stride1D.Dense> r, // [n]
        ArrayView1D<float, Stride1D.Dense> y) // [n], may be x or r
        => y[i] = x[i] + r[i];

    /// <summary>dst += src: one thread per element.</summary>
    public static void AddInto(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dst, // [n]
        ArrayView1D<float, Stride1D.Dense> src) // [n]
        => dst[i] += src[i];
}
