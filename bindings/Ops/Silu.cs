// Silu: launcher of the elementwise SiLU (swish). Shapes: x, y, dy, dx any shape, all equal.
// Implementations: Managed -> bindings/Managed/SiluManaged.cs; ILGPU -> kernels/Training/SiluKernels.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>SiLU, y = x sigmoid(x), finite and accurate for every finite x.</summary>
public static class Silu
{
    /// <summary>y = x sigmoid(x) elementwise, into <paramref name="y"/> when given (same shape and device as x, not x itself).</summary>
    /// <exception cref="ArgumentException">y has another shape or device, is x, or x holds NaN or infinity.</exception>
    public static Tensor Forward(Tensor x, Tensor? y = null) =>
        Elementwise.Forward(x, y, SiluManaged.Forward, "Silu.Forward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(SiluKernels.Forward));

    /// <summary>dx = dy (sigmoid(x) + x sigmoid(x)(1 - sigmoid(x))), into <paramref name="dx"/> when given.</summary>
    /// <exception cref="ArgumentException">A shape or device differs, dx is an input, or dy or x holds NaN or infinity.</exception>
    public static Tensor Backward(Tensor dy, Tensor x, Tensor? dx = null) =>
        Elementwise.Backward(dy, x, dx, SiluManaged.Backward, "Silu.Backward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(SiluKernels.Backward));
}
