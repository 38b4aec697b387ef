// NegExp: launcher of the elementwise y = -exp(x) (Mamba's A = -exp(A_log)). Shapes: x, y, dy, dx any shape, all equal.
// Implementations: Managed -> bindings/Managed/NegExpManaged.cs; ILGPU -> kernels/Training/NegExpKernels.cs;
// spec -> bindings/Reference/ActivationReference.cs (NegExpForward/NegExpBackward).
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>y = -exp(x), a parameterisation that keeps a decay rate negative (Mamba's A = -exp(A_log)).</summary>
public static class NegExp
{
    /// <summary>
    /// y = -exp(x) elementwise, into <paramref name="y"/> when given (same shape and device as x, not x itself). x above
    /// ln(float.MaxValue), about 88.72, gives -infinity (float32's range), which <see cref="Backward"/> then refuses.
    /// </summary>
    /// <exception cref="ArgumentException">y has another shape or device, is x, or x holds NaN or infinity.</exception>
    public static Tensor Forward(Tensor x, Tensor? y = null) =>
        Elementwise.Forward(x, y, NegExpManaged.Forward, "NegExp.Forward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(NegExpKernels.Forward));

    /// <summary>
    /// dx = dy y, from the forward's OUTPUT <paramref name="y"/> (not x: the derivative of -exp is itself, so no exp is
    /// recomputed), into <paramref name="dx"/> when given. Gradients overwrite dx.
    /// </summary>
    /// <exception cref="ArgumentException">A shape or device differs, dx is an input, or dy or y holds NaN or infinity.</exception>
    public static Tensor Backward(Tensor dy, Tensor y, Tensor? dx = null) =>
        Elementwise.Backward(dy, y, dx, NegExpManaged.Backward, "NegExp.Backward",
            static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(NegExpKernels.Backward), nameof(y));
}
