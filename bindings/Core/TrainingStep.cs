// TrainingStep: the deferred input checks of one training step (issue 11). Outside a step every op checks its inputs
// for NaN and infinity before it launches anything and throws at once, which on an ILGPU device costs a flag
// allocation and a host read-back per checked tensor. Inside a step the same checks run as kernels that each write
// into one slot of a device-resident flag array allocated once per device, nothing is read back, and the caller reads
// every slot with one copy when it chooses (Finish/TryFinish), like torch.cuda.amp.GradScaler's found_inf. AdamW.Step
// called inside a step skips its update, on the device, when any check so far failed, so a step that met a NaN leaves
// parameters and moments as they were.
using System.Diagnostics.CodeAnalysis;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Common;

namespace RouteKit;

/// <summary>What a training step does with the ops' NaN/infinity input checks.</summary>
public enum StepChecks
{
    /// <summary>Run every check into the step's flags; <see cref="TrainingStep.Finish"/> reads them once.</summary>
    Deferred = 0,

    /// <summary>Skip the finiteness checks entirely (the explicit opt-out; shape, device and alias checks still run).</summary>
    Off = 1,
}

/// <summary>
/// One training step's deferred input checks on one device (<see cref="Device.BeginStep"/>). While it is active, ops on
/// that device do not throw for NaN or infinity in their inputs: each check writes the first offending index into a
/// slot of a flag array that lives on the device, and <see cref="Finish"/> or <see cref="TryFinish"/> reads them all
/// with one copy and names the first failed check. Nothing is allocated or read back inside the step once the step has
/// seen its largest number of checks. <see cref="AdamW.Step"/> inside a step skips its update when a check failed.
/// </summary>
public sealed class TrainingStep : IDisposable
{
    private readonly Device device;
    private MemoryBuffer1D<int, Stride1D.Dense>? slots;   // ILGPU: [capacity + 1]; the last one holds the summary
    private int[] hostSlots = new int[64];                 // Managed: the slots; ILGPU: the read-back copy
    private Slot[] records = new Slot[64];
    private int count;
    private bool active;

    internal TrainingStep(Device device)
    {
        this.device = device;
    }

    /// <summary>Whether the checks run (<see cref="StepChecks.Deferred"/>) or are skipped.</summary>
    public StepChecks Checks { get; private set; }

    /// <summary>Number of checks recorded so far in this step.</summary>
    public int CheckCount => count;

    /// <summary>Whether the step is active (begun and neither finished nor disposed).</summary>
    public bool IsActive => active;

    internal void Begin(StepChecks checks)
    {
        OptionChecks.Defined(checks, nameof(checks));
        Checks = checks;
        count = 0;
        active = true;
        if (device.IsIlgpu) Reset(0, Capacity + 1);
    }

    private int Capacity => records.Length;

    /// <summary>
    /// Ends the step and reads its checks (one device-to-host copy on ILGPU backends).
    /// </summary>
    /// <exception cref="ArgumentException">A check failed: the message names the first failed check's op, argument,
    /// shape, offending index and value.</exception>
    public void Finish()
    {
        if (!TryFinish(out var failure)) throw new ArgumentException(failure);
    }

    /// <summary>Ends the step and reads its checks; false with a description of the first failed check when one failed.</summary>
    public bool TryFinish([NotNullWhen(false)] out string? failure)
    {
        if (!active) throw new InvalidOperationException("This step is not active: call Device.BeginStep() first (Finish ends a step once).");
        active = false;
        device.EndStep(this);
        failure = null;
        if (count == 0) return true;
        if (device.IsIlgpu)
        {
            device.CountRead();
            slots!.View.SubView(0, count).BaseView.CopyToCPU(hostSlots.AsSpan(0, count));
        }
        for (var i = 0; i < count; i++)
        {
            if (hostSlots[i] == int.MaxValue) continue;
            failure = Describe(i, hostSlots[i]);
            return false;
        }
        return true;
    }

    /// <summary>Ends the step without reading its checks.</summary>
    public void Dispose()
    {
        if (!active) return;
        active = false;
        device.EndStep(this);
    }

    /// <summary>Records a finiteness check of <paramref name="t"/> (a NaN/infinity search kernel on ILGPU, a scan on Managed).</summary>
    internal void CheckFinite(Tensor t, string name, string file)
    {
        if (Checks == StepChecks.Off) return;
        var slot = Claim(new Slot(SlotKind.Finite, name, file, t, 0, 0f));
        if (device.IsIlgpu)
        {
            var kernel = device.GetKernel("FiniteCheck", static acc =>
                acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<int, Stride1D.Dense>>(
                    FiniteCheck.FirstNonFiniteKernel));
            kernel(t.Length, t.View, slots!.View.SubView(slot, 1));
        }
        else hostSlots[slot] = TensorChecks.FirstNonFinite(t.HostSpan);
    }

    /// <summary>Claims a slot for a check whose kernel the caller launches into <see cref="SlotView"/> (ILGPU) or whose
    /// result it stores with <see cref="SetHostSlot"/> (Managed).</summary>
    internal int Claim(Slot record)
    {
        if (count == Capacity) Grow();
        records[count] = record;
        if (!device.IsIlgpu) hostSlots[count] = int.MaxValue;
        return count++;
    }

    internal ArrayView1D<int, Stride1D.Dense> SlotView(int slot) => slots!.View.SubView(slot, 1);

    internal void SetHostSlot(int slot, int value) => hostSlots[slot] = value;

    /// <summary>
    /// On ILGPU, the one-element view that holds int.MaxValue when every check so far passed (a one-thread kernel folds
    /// the slots into it); AdamW's kernel reads it to skip its update. On Managed, null with <paramref name="failed"/> set.
    /// </summary>
    internal ArrayView1D<int, Stride1D.Dense> Summary(out bool failed)
    {
        failed = false;
        if (!device.IsIlgpu)
        {
            for (var i = 0; i < count; i++) failed |= hostSlots[i] != int.MaxValue;
            return default;
        }
        var kernel = device.GetKernel("FiniteCheck.Summarize", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView1D<int, Stride1D.Dense>, int>(FiniteCheck.SummarizeKernel));
        kernel(1, slots!.View, count);
        return slots.View.SubView(Capacity, 1);
    }

    private void Grow()
    {
        var capacity = Capacity * 2;
        Array.Resize(ref records, capacity);
        Array.Resize(ref hostSlots, capacity);
        if (!device.IsIlgpu) return;
        var old = slots!;
        var bigger = device.Accelerator!.Allocate1D<int>(capacity + 1);
        device.CountAllocation();
        bigger.View.SubView(0, count).CopyFrom(old.View.SubView(0, count));
        device.Accelerator!.Synchronize();
        old.Dispose();
        slots = bigger;
        Reset(count, capacity + 1 - count);
    }

    private void Reset(int start, int length)
    {
        if (slots is null)
        {
            slots = device.Accelerator!.Allocate1D<int>(Capacity + 1);
            device.CountAllocation();
        }
        var fill = device.GetKernel("FiniteCheck.Fill", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView1D<int, Stride1D.Dense>, int>(FiniteCheck.FillKernel));
        fill(length, slots.View.SubView(start, length), int.MaxValue);
    }

    private string Describe(int slot, int index)
    {
        var r = records[slot];
        var op = Path.GetFileNameWithoutExtension(r.File);
        var where = $"check {slot + 1} of {count} in this step ({op})";
        if (r.Kind == SlotKind.Rows)
            return $"{r.Name}: row {index} is not what a forward writes ({where}).";
        if (r.Kind == SlotKind.Positive)
            return $"{r.Name} holds a value > 0 at flat index {index}; it must be <= 0 ({where}).";
        float value;
        try
        {
            value = r.Tensor.Device.IsIlgpu ? r.Tensor.View.SubView(index, 1).GetAsArray1D()[0] : r.Tensor.HostSpan[index];
        }
        catch (ObjectDisposedException)
        {
            value = float.NaN;
        }
        return r.Kind switch
        {
            SlotKind.Ids => $"{r.Name} {Tensor.Format(r.Tensor.Shape.ToArray())} holds {value:R} at index {index}; each entry must be an integer in [0, {r.Limit}){(float.IsNaN(r.Ignore) ? "" : $" or the ignore index {r.Ignore}")} ({where}).",
            SlotKind.Finite => $"{r.Name} {Tensor.Format(r.Tensor.Shape.ToArray())} holds {value} at flat index {index}; inputs must be finite ({where}).",
            _ => $"{r.Name}: row {index} is not what a forward writes ({where}).",
        };
    }

    internal enum SlotKind { Finite, Ids, Rows, Positive }

    internal readonly record struct Slot(SlotKind Kind, string Name, string File, Tensor Tensor, int Limit, float Ignore);

    internal void Free()
    {
        slots?.Dispose();
        slots = null;
    }
}
