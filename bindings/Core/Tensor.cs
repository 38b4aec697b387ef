using ILGPU;
using ILGPU.Runtime;

namespace RouteKit;

/// <summary>
/// A float32, row-major, contiguous array owned by one <see cref="RouteKit.Device"/>. On the Managed backend it is a
/// plain <c>float[]</c>; on ILGPU backends a device buffer. Ops never dispose their inputs.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly int[] shape;
    private readonly float[]? host;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? buffer;
    private bool disposed;

    internal Tensor(Device device, int[] shape, float[]? data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length == 0)
            throw new ArgumentException("A tensor needs at least one dimension; shape [] was given.", nameof(shape));
        long length = 1;
        foreach (var s in shape)
        {
            if (s <= 0)
                throw new ArgumentException(
                    $"Every dimension must be at least 1; shape {Format(shape)} was given (empty tensors are not supported).", nameof(shape));
            length *= s;
            if (length > Array.MaxLength)
                throw new ArgumentException(
                    $"Shape {Format(shape)} has more than {Array.MaxLength:N0} elements, the most one tensor may hold.", nameof(shape));
        }
        if (data is not null && data.Length != length)
            throw new ArgumentException(
                $"data has {data.Length:N0} elements but shape {Format(shape)} needs {length:N0}.", nameof(data));

        Device = device;
        this.shape = (int[])shape.Clone();
        Length = (int)length;
        var bytes = length * sizeof(float);
        if (device.Accelerator is { } accelerator)
        {
            try
            {
                buffer = accelerator.Allocate1D<float>(Length);
            }
            catch (Exception e) when (e is OutOfMemoryException or AcceleratorException or InvalidOperationException)
            {
                throw new DeviceOutOfMemoryException(device.Name, bytes, device.FreeBytes(), e);
            }
            if (data is null) buffer.MemSetToZero();
            else buffer.CopyFromCPU(data);
        }
        else
        {
            var free = device.FreeBytes();
            if (bytes > free)
                throw new DeviceOutOfMemoryException(device.Name, bytes, free);
            try
            {
                host = data is null ? new float[Length] : (float[])data.Clone();
            }
            catch (OutOfMemoryException e)
            {
                throw new DeviceOutOfMemoryException(device.Name, bytes, device.FreeBytes(), e);
            }
        }
    }

    /// <summary>The device that owns this tensor.</summary>
    public Device Device { get; }

    /// <summary>The dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape => shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public int Length { get; }

    /// <summary>Copies the contents to a new host array (synchronises the device).</summary>
    public float[] ToArray()
    {
        ThrowIfDisposed();
        if (host is not null) return (float[])host.Clone();
        return buffer!.GetAsArray1D();
    }

    /// <summary>Overwrites the contents with <paramref name="data"/>, whose length must equal <see cref="Length"/>.</summary>
    public void CopyFrom(ReadOnlySpan<float> data)
    {
        ThrowIfDisposed();
        if (data.Length != Length)
            throw new ArgumentException($"data has {data.Length:N0} elements but this tensor {Format(shape)} holds {Length:N0}.", nameof(data));
        if (host is not null) data.CopyTo(host);
        else buffer!.View.BaseView.CopyFromCPU(data);
    }

    /// <summary>The host array (Managed backend only).</summary>
    internal float[] Host => host ?? throw new InvalidOperationException($"Tensor lives on {Device.Backend}, not Managed.");

    /// <summary>The device view (ILGPU backends only).</summary>
    internal ArrayView1D<float, Stride1D.Dense> View =>
        buffer?.View ?? throw new InvalidOperationException("Tensor lives on the Managed backend, not an ILGPU accelerator.");

    /// <summary>True when the shape equals <paramref name="expected"/>.</summary>
    internal bool HasShape(ReadOnlySpan<int> expected) => shape.AsSpan().SequenceEqual(expected);

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    /// <summary>Formats a shape as <c>[2, 4, 128, 64]</c> for messages.</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc />
    public override string ToString() => $"Tensor{Format(shape)} on {Device.Backend}";

    /// <summary>Frees the storage.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        buffer?.Dispose();
    }
}
