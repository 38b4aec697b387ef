using System.Numerics.Tensors;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit;

/// <summary>Argument checks shared by every op: device, shape, aliasing and finiteness, all before any launch.</summary>
internal static class TensorChecks
{
    public static void NotNull(Tensor? t, string name)
    {
        if (t is null) throw new ArgumentNullException(name);
        t.ThrowIfDisposed();
    }

    public static void SameDevice(Device device, Tensor t, string name)
    {
        if (!ReferenceEquals(t.Device, device)) ThrowDevice(device, t, name);
    }

    private static void ThrowDevice(Device device, Tensor t, string name) =>
        throw new ArgumentException(
                $"{name} lives on {t.Device} but the op runs on {device}; move it with FromArray(ToArray()) first.", name);

    public static void Shape(Tensor t, ReadOnlySpan<int> expected, string name)
    {
        if (!t.HasShape(expected)) ThrowShape(t, expected, name);
    }

    // Kept out of Shape so the message is built, and the arrays it needs allocated, only on failure.
    private static void ThrowShape(Tensor t, ReadOnlySpan<int> expected, string name) =>
        throw new ArgumentException($"{name} has shape {Tensor.Format(t.ShapeSpan)}; wanted {Tensor.Format(expected)}.", name);

    /// <summary>
    /// The q, k, v triple of a router (attention, graph attention, the depth router): all present, q's device undisposed, k and v on it.
    /// </summary>
    public static void QueryKeyValue(Tensor? q, Tensor? k, Tensor? v)
    {
        NotNull(q, nameof(q));
        NotNull(k, nameof(k));
        NotNull(v, nameof(v));
        q!.Device.ThrowIfDisposed();
        SameDevice(q.Device, k!, nameof(k));
        SameDevice(q.Device, v!, nameof(v));
    }

    /// <summary>A tensor argument: present, on <paramref name="device"/>, of the given shape.</summary>
    public static void Input(Device device, Tensor? t, ReadOnlySpan<int> shape, string name)
    {
        NotNull(t, name);
        SameDevice(device, t!, name);
        Shape(t!, shape, name);
    }

    /// <summary>A preallocated output: as <see cref="Input"/>, and not one of <paramref name="inputs"/>.</summary>
    public static void Output(Device device, Tensor? t, ReadOnlySpan<int> shape, string name, params ReadOnlySpan<Tensor?> inputs)
    {
        Input(device, t, shape, name);
        NotAliased(t!, name, inputs);
    }

    /// <summary>An output must not share storage with an input: the op would read what it has already overwritten.</summary>
    public static void NotAliased(Tensor output, string name, params ReadOnlySpan<Tensor?> inputs)
    {
        foreach (var input in inputs)
            if (input is not null && output.Overlaps(input))
                throw new ArgumentException(
                    ReferenceEquals(output, input)
                        ? $"{name} is also an input of this op; outputs must be distinct tensors."
                        : $"{name} shares storage with another argument of this op (overlapping views of one buffer); outputs must not overlap any other argument.",
                    name);
    }

    /// <summary>Throws when <paramref name="t"/> holds a NaN or an infinity, naming the first such element.</summary>
    /// <remarks>Inside a <see cref="TrainingStep"/> the check is deferred into the step's flags instead.</remarks>
    public static void Finite(Tensor t, string name, [System.Runtime.CompilerServices.CallerFilePath] string file = "")
    {
        if (t.Device.ActiveStep is { } step)
        {
            step.CheckFinite(t, name, file);
            return;
        }
        int first;
        if (t.Device.IsIlgpu)
        {
            var kernel = t.Device.GetKernel("FiniteCheck", static acc =>
                acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<int, Stride1D.Dense>>(
                    FiniteCheck.FirstNonFiniteKernel));
            var acc = t.Device.Accelerator!;
            using var flag = acc.Allocate1D(new[] { int.MaxValue });
            t.Device.CountAllocation();
            t.Device.CountRead();
            kernel(t.Length, t.View, flag.View);
            first = flag.GetAsArray1D()[0];
        }
        else
        {
            var span = t.HostSpan;
            if (FiniteScan.AllFinite(span)) return;
            first = FirstNonFinite(span);
        }
        if (first == int.MaxValue) return;
        var value = t.Device.IsIlgpu ? t.View.SubView(first, 1).GetAsArray1D()[0] : t.HostSpan[first];
        throw new ArgumentException(
            $"{name} {Tensor.Format(t.ShapeSpan)} holds {value} at flat index {first}; inputs must be finite.", name);
    }

    /// <summary>The index of the first NaN or infinity in <paramref name="span"/>, or int.MaxValue.</summary>
    internal static int FirstNonFinite(ReadOnlySpan<float> span)
    {
        if (FiniteScan.AllFinite(span)) return int.MaxValue;
        for (var i = 0; i < span.Length; i++)
            if (!float.IsFinite(span[i])) return i;
        return int.MaxValue;
    }
}
