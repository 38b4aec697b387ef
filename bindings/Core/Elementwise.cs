// Shared launcher of the elementwise training ops (activations): one validation path and one ILGPU launch shape, so
// Gelu, Silu and Relu differ only in their kernels and Managed loops. Shapes: any, n elements; dy, dx like x.
using ILGPU;
using ILGPU.Runtime;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>A Managed elementwise forward, y = f(x) (spans, so tensors that are views of a flat buffer can use it).</summary>
internal delegate void ElementwiseForward(ReadOnlySpan<float> x, Span<float> y);

/// <summary>A Managed elementwise backward, dx = dy f'(input), where input is x or, for some ops, the forward's y.</summary>
internal delegate void ElementwiseBackward(ReadOnlySpan<float> dy, ReadOnlySpan<float> input, Span<float> dx);

/// <summary>Validation and dispatch of elementwise forward (x -> y) and backward ((dy, x) -> dx) ops.</summary>
internal static class Elementwise
{
    /// <summary>Checks x and the optional y, then runs <paramref name="managed"/> or the kernel <paramref name="key"/>.</summary>
    public static Tensor Forward(Tensor x, Tensor? y, ElementwiseForward managed, string key,
        Func<Accelerator, Action<Index1D, View, View>> load)
    {
        TensorChecks.NotNull(x, nameof(x));
        var device = x.Device;
        device.ThrowIfDisposed();
        if (y is not null) TensorChecks.Output(device, y, x.ShapeSpan, nameof(y), x);
        TensorChecks.Finite(x, nameof(x));
        var result = y ?? device.Zeros(x.ShapeSpan.ToArray());
        if (device.Backend == Backend.Managed) managed(x.HostSpan, result.HostSpan);
        else device.GetKernel(key, load)(x.Length, x.View, result.View);
        return result;
    }

    /// <summary>
    /// Checks dy, x and the optional dx, then runs <paramref name="managed"/> or the kernel <paramref name="key"/>;
    /// <paramref name="xName"/> names the second input in messages (an op whose backward reads its forward's y says "y").
    /// </summary>
    public static Tensor Backward(Tensor dy, Tensor x, Tensor? dx, ElementwiseBackward managed, string key,
        Func<Accelerator, Action<Index1D, View, View, View>> load, string xName = "x")
    {
        TensorChecks.NotNull(x, xName);
        var device = x.Device;
        device.ThrowIfDisposed();
        TensorChecks.Input(device, dy, x.ShapeSpan, nameof(dy));
        if (dx is not null) TensorChecks.Output(device, dx, x.ShapeSpan, nameof(dx), x, dy);
        TensorChecks.Finite(x, xName);
        TensorChecks.Finite(dy, nameof(dy));
        var result = dx ?? device.Zeros(x.ShapeSpan.ToArray());
        if (device.Backend == Backend.Managed) managed(dy.HostSpan, x.HostSpan, result.HostSpan);
        else device.GetKernel(key, load)(x.Length, dy.View, x.View, result.View);
        return result;
    }
}
