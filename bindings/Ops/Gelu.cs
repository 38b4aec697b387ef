// Gelu: launcher and form dispatcher of the elementwise GELU. Shapes: x, y, dy, dx any shape, all equal.
// Implementations: Managed -> bindings/Managed/GeluManaged.cs; ILGPU -> kernels/Training/GeluKernels.cs (one kernel
// per form, specialised by the IGeluForm functor).
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>Which GELU: GPT-2's tanh approximation or the exact normal-CDF form.</summary>
public enum GeluForm
{
    /// <summary>x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))) / 2, as GPT-2.</summary>
    Tanh = 0,

    /// <summary>x (1 + erf(x / sqrt 2)) / 2, as BERT.</summary>
    Erf = 1,
}

/// <summary>GELU, y = x Phi(x), in either <see cref="GeluForm"/>; finite and accurate for every finite x.</summary>
public static class Gelu
{
    /// <summary>y = gelu(x) elementwise, into <paramref name="y"/> when given (same shape and device as x, not x itself).</summary>
    /// <exception cref="ArgumentException"><paramref name="form"/> is not a defined <see cref="GeluForm"/>, y has another shape
    /// or device, is x, or x holds NaN or infinity.</exception>
    public static Tensor Forward(Tensor x, GeluForm form = GeluForm.Tanh, Tensor? y = null)
    {
        OptionChecks.Defined(form, nameof(form));
        return form == GeluForm.Tanh
            ? Elementwise.Forward(x, y, GeluManaged.ForwardTanh, "Gelu.Forward.Tanh",
                static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(GeluKernels.Forward<GeluTanh>))
            : Elementwise.Forward(x, y, GeluManaged.ForwardErf, "Gelu.Forward.Erf",
                static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(GeluKernels.Forward<GeluErf>));
    }

    /// <summary>dx = dy gelu'(x) elementwise, into <paramref name="dx"/> when given.</summary>
    /// <exception cref="ArgumentException"><paramref name="form"/> is not a defined <see cref="GeluForm"/>, a shape or device
    /// differs, dx is an input, or dy or x holds NaN or infinity.</exception>
    public static Tensor Backward(Tensor dy, Tensor x, GeluForm form = GeluForm.Tanh, Tensor? dx = null)
    {
        OptionChecks.Defined(form, nameof(form));
        return form == GeluForm.Tanh
            ? Elementwise.Backward(dy, x, dx, GeluManaged.BackwardTanh, "Gelu.Backward.Tanh",
                static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(GeluKernels.Backward<GeluTanh>))
            : Elementwise.Backward(dy, x, dx, GeluManaged.BackwardErf, "Gelu.Backward.Erf",
                static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(GeluKernels.Backward<GeluErf>));
    }
}
