// Residual: launcher and validation of the residual add y = x + r and of the gradient accumulation dst += src.
// Shapes: any, all equal (n elements).
// Implementations: Managed -> bindings/Managed/ResidualManaged.cs; ILGPU -> kernels/Training/ResidualKernels.cs;
// spec -> bindings/Reference/ResidualReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>
/// The residual connection, y = x + r elementwise. Its backward is the identity: the gradients of x and of r both
/// equal dy, so there is no backward kernel; a model passes dy on to both branches and, where two branches' gradients
/// meet in one buffer, sums them with <see cref="AddInto"/>.
/// </summary>
/// <remarks>
/// Unlike the other ops, the output may be one of the inputs: <c>Add(x, r, y: x)</c> updates the residual stream x in
/// place (each element is read and written by the same thread or SIMD lane, so this is exact). Any other sharing is
/// impossible here, since tensors do not overlap.
/// </remarks>
public static class Residual
{
    /// <summary>y = x + r for x and r of the same shape; into <paramref name="y"/> when given, which may be x or r itself.</summary>
    /// <param name="x">The residual stream, any shape.</param>
    /// <param name="r">The branch output, x's shape.</param>
    /// <param name="y">Preallocated output of x's shape (x or r for an in-place update), or null to allocate one.
    /// Untouched when the call refuses.</param>
    /// <exception cref="ArgumentException">r or y has another shape or device, or x or r holds NaN or infinity. Nothing
    /// is launched then.</exception>
    public static Tensor Add(Tensor x, Tensor r, Tensor? y = null)
    {
        TensorChecks.NotNull(x, nameof(x));
        var device = x.Device;
        device.ThrowIfDisposed();
        TensorChecks.Input(device, r, x.ShapeSpan, nameof(r));
        if (y is not null) TensorChecks.Input(device, y, x.ShapeSpan, nameof(y));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(r, nameof(r));
        var result = y ?? device.Zeros(x.ShapeSpan.ToArray());
        if (device.Backend == Backend.Managed) ResidualManaged.Add(x.HostSpan, r.HostSpan, result.HostSpan);
        else
            device.GetKernel("Residual.Add", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View, View>(ResidualKernels.Add))(
                x.Length, x.View, r.View, result.View);
        return result;
    }

    /// <summary>
    /// dst += src (the sum of two gradient branches into one buffer, as a model's backward needs). <paramref name="src"/>
    /// may be dst itself (dst is then doubled).
    /// </summary>
    /// <param name="dst">The accumulator, updated in place; untouched when the call refuses.</param>
    /// <param name="src">What is added, dst's shape.</param>
    /// <returns><paramref name="dst"/>.</returns>
    /// <exception cref="ArgumentException">src has another shape or device, or dst or src holds NaN or infinity. Nothing
    /// is launched then.</exception>
    public static Tensor AddInto(Tensor dst, Tensor src)
    {
        TensorChecks.NotNull(dst, nameof(dst));
        var device = dst.Device;
        device.ThrowIfDisposed();
        TensorChecks.Input(device, src, dst.ShapeSpan, nameof(src));
        TensorChecks.Finite(dst, nameof(dst));
        TensorChecks.Finite(src, nameof(src));
        if (device.Backend == Backend.Managed) ResidualManaged.AddInto(dst.HostSpan, src.HostSpan);
        else
            device.GetKernel("Residual.AddInto", static acc => acc.LoadAutoGroupedStreamKernel<Index1D, View, View>(ResidualKernels.AddInto))(
                dst.Length, dst.View, src.View);
        return dst;
    }
}
