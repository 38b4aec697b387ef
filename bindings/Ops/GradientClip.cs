// GradientClip: launcher and validation of the global-norm clip (torch.nn.utils.clip_grad_norm_, norm type 2).
// Shapes: N gradients [N]; norm [1].
// Implementations: Managed -> bindings/Managed/GradientClipManaged.cs; ILGPU -> kernels/Training/GradientClipKernels.cs;
// reference -> bindings/Reference/GradientClipReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>
/// Global-norm gradient clipping over a flat gradient buffer: g *= min(1, maxNorm / (||g||_2 + 1e-6)), returning the
/// pre-clip norm. The norm is computed without overflow or underflow for any finite gradients (float64 sums on Managed,
/// power-of-two-scaled sums in the kernel), so gradients of 1e20 or 1e-30 give their true norm; a norm beyond
/// float.MaxValue is reported as +infinity, and the gradients are then still scaled by the finite coefficient.
/// </summary>
public static class GradientClip
{
    /// <summary>Clips <paramref name="gradients"/> in place and writes the pre-clip norm to a <c>[1]</c> tensor.</summary>
    /// <param name="gradients">The flat gradient buffer (any shape; treated as [N]), finite.</param>
    /// <param name="maxNorm">The largest norm kept, finite and &gt; 0.</param>
    /// <param name="norm">Preallocated <c>[1]</c> output for the pre-clip norm, left on the device; allocated when null.</param>
    /// <returns>The norm tensor.</returns>
    /// <exception cref="ArgumentException">gradients hold NaN or infinity, maxNorm is not finite and positive, or norm has
    /// the wrong shape, device, or is the gradient tensor; nothing is launched and every buffer is untouched.</exception>
    public static Tensor ClipGlobalNorm(Tensor gradients, float maxNorm, Tensor? norm = null)
    {
        TensorChecks.NotNull(gradients, nameof(gradients));
        gradients.Device.ThrowIfDisposed();
        var device = gradients.Device;
        if (!(maxNorm > 0f && float.IsFinite(maxNorm)))
            throw new ArgumentException($"maxNorm is {maxNorm}; wanted a finite value > 0.", nameof(maxNorm));
        if (norm is not null) TensorChecks.Output(device, norm, [1], nameof(norm), gradients);
        TensorChecks.Finite(gradients, nameof(gradients));
        var result = norm ?? device.Zeros(1);
        if (device.Backend == Backend.Managed)
        {
            result.HostSpan[0] = (float)GradientClipManaged.ClipGlobalNorm(gradients.HostSpan, maxNorm);
            return result;
        }
        var normKernel = device.GetKernel("GradientClip.Norm", static acc => acc.LoadStreamKernel<
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, float>(
            GradientClipKernels.Norm));
        var scale = device.GetKernel("GradientClip.Scale", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>>(GradientClipKernels.Scale));
        var coefficient = device.Workspace("gradientclip.coefficient", 1); // [1]
        normKernel(new KernelConfig(1, GradientClipKernels.GroupSize), gradients.View, result.View, coefficient, gradients.Length, maxNorm);
        scale(gradients.Length, gradients.View, coefficient);
        return result;
    }
}
