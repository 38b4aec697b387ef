// Relu: launcher of the elementwise ReLU. Shapes: x, y, dy, dx any shape, all equal.
// Implementations: Managed -> bindings/Managed/ReluManaged.cs; ILGPU -> kernels/Training/ReluKernels.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>ReLU, y = max(x, 0), with the subgradient 0 at x = 0 in the backward.</summary>
public static class Relu
{
    /// <summary>y = max(x, 0) elementwise, into <paramref name="y"/> when given (same shape and device as x, not x itself).</summary>
    /// <exception cref="ArgumentException">y has another shape or device, is x, or x holds NaN or infinity.</exception>
    public static Tensor Forward(Tensor x, Tensor? y = null) =>
        Elementwise.Forward(x, y, ReluManaged.Forward, "Relu.Forward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(ReluKernels.Forward));

    /// <summary>dx = dy where x &gt; 0, else 0 (0 at x = 0), into <paramref name="dx"/> when given.</summary>
    /// <exception cref="ArgumentException">A shape or device differs, dx is an input, or dy or x holds NaN or infinity.</exception>
    public static Tensor Backward(Tensor dy, Tensor x, Tensor? dx = null) =>
        Elementwise.Backward(dy, x, dx, ReluManaged.Backward, "Relu.Backward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(ReluKernels.Backward));
}
