using ILGPU;
using ILGPU.Runtime;

namespace RouteKit;

/// <summary>
/// A float32, row-major, contiguous array on one <see cref="RouteKit.Device"/>. On the Managed backend it is a plain
/// <c>float[]</c>; on ILGPU backends a device buffer. A tensor either owns its storage or is a view (<see cref="Slice"/>,
/// <see cref="Reshape"/>) of a contiguous range of another's, so a model can keep every parameter, and every gradient, in
/// one flat buffer that one optimizer launch updates (llm.c's layout). Ops never dispose their inputs.
/// </summary>
public sealed class Tensor : IDisposable
{
    private readonly int[] shape;
    private readonly float[]? host;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>? buffer;
    private readonly Tensor? root; // the owner of the storage, for a view; null for an owner
    private readonly int offset;   // first element within the owner's storage
    private bool disposed;

    internal Tensor(Device device, int[] shape, float[]? data)
    {
        Length = CheckedLength(shape);
        if (data is not null && data.Length != Length)
            throw new ArgumentException(
                $"data has {data.Length:N0} elements but shape {Format(shape)} needs {Length:N0}.", nameof(data));

        Device = device;
        this.shape = (int[])shape.Clone();
        var bytes = (long)Length * sizeof(float);
        if (device.Accelerator is { } accelerator)
        {
            try
            {
                buffer = accelerator.Allocate1D<float>(Length);
                device.CountAllocation();
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

    // A view of root's elements [offset, offset + product(shape)).
    private Tensor(Tensor root, int offset, int[] shape, int length)
    {
        Device = root.Device;
        this.root = root;
        this.offset = offset;
        this.shape = shape;
        Length = length;
    }

    private static int CheckedLength(int[] shape)
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
        return (int)length;
    }

    /// <summary>The device that owns this tensor.</summary>
    public Device Device { get; }

    /// <summary>The dimensions, outermost first.</summary>
    public IReadOnlyList<int> Shape => shape;

    /// <summary>The dimensions as a span (no copy), for checks that must not allocate.</summary>
    internal ReadOnlySpan<int> ShapeSpan => shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>Number of elements (the product of <see cref="Shape"/>).</summary>
    public int Length { get; }

    /// <summary>True when this tensor is a view of another's storage (made by <see cref="Slice"/> or <see cref="Reshape"/>).</summary>
    public bool IsView => root is not null;

    /// <summary>
    /// A view of <paramref name="shape"/>'s product elements of this tensor starting at flat element
    /// <paramref name="start"/>, sharing the storage: writes through either are seen by both. The view stays valid while
    /// the owner of the storage is undisposed; disposing the view frees nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The shape is empty or has a dimension below 1, or the range leaves this tensor.</exception>
    public Tensor Slice(int start, params int[] shape)
    {
        ThrowIfDisposed();
        var length = CheckedLength(shape);
        if (start < 0 || (long)start + length > Length)
            throw new ArgumentException(
                $"A slice of {length:N0} elements ({Format(shape)}) at offset {start:N0} does not fit in this tensor {Format(this.shape)} of {Length:N0} elements.",
                nameof(start));
        return new Tensor(root ?? this, offset + start, (int[])shape.Clone(), length);
    }

    /// <summary>The same elements under another shape of equal element count (a view, as <see cref="Slice"/>).</summary>
    /// <exception cref="ArgumentException">The shape's element count differs from <see cref="Length"/>.</exception>
    public Tensor Reshape(params int[] shape)
    {
        ThrowIfDisposed();
        var length = CheckedLength(shape);
        if (length != Length)
            throw new ArgumentException(
                $"Shape {Format(shape)} holds {length:N0} elements; this tensor {Format(this.shape)} holds {Length:N0}.", nameof(shape));
        return new Tensor(root ?? this, offset, (int[])shape.Clone(), length);
    }

    /// <summary>Copies the contents to a new host array (synchronises the device).</summary>
    public float[] ToArray()
    {
        ThrowIfDisposed();
        if (Device.IsIlgpu)
        {
            Device.CountRead();
            return View.GetAsArray1D();
        }
        return HostSpan.ToArray();
    }

    /// <summary>Copies the contents into <paramref name="destination"/>, whose length must equal <see cref="Length"/>
    /// (synchronises the device; allocates nothing).</summary>
    public void CopyTo(Span<float> destination)
    {
        ThrowIfDisposed();
        if (destination.Length != Length)
            throw new ArgumentException($"destination has {destination.Length:N0} elements but this tensor {Format(shape)} holds {Length:N0}.", nameof(destination));
        if (Device.IsIlgpu)
        {
            Device.CountRead();
            View.BaseView.CopyToCPU(destination);
        }
        else HostSpan.CopyTo(destination);
    }

    /// <summary>Sets every element to zero (a device memset on ILGPU backends; no host round trip).</summary>
    public void Clear()
    {
        ThrowIfDisposed();
        if (Device.IsIlgpu) View.BaseView.MemSetToZero();
        else HostSpan.Clear();
    }

    /// <summary>Overwrites the contents with <paramref name="data"/>, whose length must equal <see cref="Length"/>.</summary>
    public void CopyFrom(ReadOnlySpan<float> data)
    {
        ThrowIfDisposed();
        if (data.Length != Length)
            throw new ArgumentException($"data has {data.Length:N0} elements but this tensor {Format(shape)} holds {Length:N0}.", nameof(data));
        if (Device.IsIlgpu) View.BaseView.CopyFromCPU(data);
        else data.CopyTo(HostSpan);
    }

    /// <summary>
    /// The whole host array (Managed backend only), for kernels written over arrays. A view that is not the whole of
    /// its owner's array has no array of its own: such kernels refuse it (use <see cref="HostSpan"/>/<see cref="HostMemory"/>).
    /// </summary>
    internal float[] Host
    {
        get
        {
            var owner = root ?? this;
            var array = owner.host ?? throw new InvalidOperationException($"Tensor lives on {Device.Backend}, not Managed.");
            if (offset != 0 || Length != array.Length)
                throw new ArgumentException(
                    $"This op's Managed kernel takes whole tensors, and {this} is a slice (offset {offset:N0}) of a larger buffer; copy it into a tensor of its own first.");
            return array;
        }
    }

    /// <summary>The elements on the host (Managed backend only), views included.</summary>
    internal Span<float> HostSpan => HostMemory.Span;

    /// <summary>The elements on the host as <see cref="Memory{T}"/> (Managed only), for kernels that run in parallel.</summary>
    internal Memory<float> HostMemory
    {
        get
        {
            var owner = root ?? this;
            var array = owner.host ?? throw new InvalidOperationException($"Tensor lives on {Device.Backend}, not Managed.");
            return array.AsMemory(offset, Length);
        }
    }

    /// <summary>The device view (ILGPU backends only), views included.</summary>
    internal ArrayView1D<float, Stride1D.Dense> View
    {
        get
        {
            var owner = root ?? this;
            var view = owner.buffer?.View ?? throw new InvalidOperationException("Tensor lives on the Managed backend, not an ILGPU accelerator.");
            return root is null ? view : view.SubView(offset, Length);
        }
    }

    /// <summary>True when this tensor and <paramref name="other"/> share at least one element of storage.</summary>
    internal bool Overlaps(Tensor other)
    {
        if (!ReferenceEquals(root ?? this, other.root ?? other)) return false;
        return offset < other.offset + other.Length && other.offset < offset + Length;
    }

    /// <summary>True when the shape equals <paramref name="expected"/>.</summary>
    internal bool HasShape(ReadOnlySpan<int> expected) => shape.AsSpan().SequenceEqual(expected);

    internal void ThrowIfDisposed()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (root is not null) ObjectDisposedException.ThrowIf(root.disposed, root);
    }

    /// <summary>Formats a shape as <c>[2, 4, 128, 64]</c> for messages.</summary>
    public static string Format(ReadOnlySpan<int> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";

    /// <inheritdoc />
    public override string ToString() => $"Tensor{Format(shape)}{(root is null ? "" : " view")} on {Device.Backend}";

    /// <summary>Frees the storage of an owner; for a view, only marks the view unusable.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        buffer?.Dispose();
    }
}
