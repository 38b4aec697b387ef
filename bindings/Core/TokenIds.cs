using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>
/// Token ids and class targets as float-coded integers. RouteKit's tensors are float32 only; rather than add an integer
/// tensor type for two ops, ids live in float32 tensors, which hold every integer up to 2^24 (16,777,216) exactly, so
/// they stay on the device (a data loader fills them with CopyFrom, nothing is allocated per step). Ops check them with
/// <see cref="Check"/> before any launch.
/// </summary>
internal static class TokenIds
{
    /// <summary>The largest count of classes or vocabulary rows whose ids float32 holds exactly.</summary>
    public const int MaxClasses = 1 << 24;

    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the first entry of <paramref name="ids"/> that is not an integer
    /// in [0, <paramref name="limit"/>) and not <paramref name="ignore"/> (null: no value is ignored).
    /// </summary>
    /// <remarks>Inside a <see cref="TrainingStep"/> (unless its checks are off) the check is deferred into the step's flags.</remarks>
    public static void Check(Tensor ids, int limit, int? ignore, string name, [System.Runtime.CompilerServices.CallerFilePath] string file = "")
    {
        var ignoreValue = ignore.HasValue ? (float)ignore.Value : float.NaN;
        var step = ids.Device.ActiveStep;
        if (step is { Checks: StepChecks.Off }) return;
        int first;
        if (ids.Device.IsIlgpu)
        {
            var kernel = ids.Device.GetKernel("TokenIdCheck", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
                ArrayView1D<float, Stride1D.Dense>, int, float, ArrayView1D<int, Stride1D.Dense>>(TokenIdCheck.FirstBadIdKernel));
            if (step is not null)
            {
                var slot = step.Claim(new TrainingStep.Slot(TrainingStep.SlotKind.Ids, name, file, ids, limit, ignoreValue));
                kernel(ids.Length, ids.View, limit, ignoreValue, step.SlotView(slot));
                return;
            }
            using var flag = ids.Device.Accelerator!.Allocate1D(new[] { int.MaxValue });
            ids.Device.CountAllocation();
            ids.Device.CountRead();
            kernel(ids.Length, ids.View, limit, ignoreValue, flag.View);
            first = flag.GetAsArray1D()[0];
        }
        else
        {
            first = int.MaxValue;
            ReadOnlySpan<float> host = ids.HostSpan;
            for (var i = 0; i < host.Length; i++)
            {
                var id = host[i];
                if ((id >= 0f && id < limit && id == MathF.Floor(id)) || id == ignoreValue) continue;
                first = i;
                break;
            }
            if (step is not null)
            {
                step.SetHostSlot(step.Claim(new TrainingStep.Slot(TrainingStep.SlotKind.Ids, name, file, ids, limit, ignoreValue)), first);
                return;
            }
        }
        if (first == int.MaxValue) return;
        var value = ids.Device.IsIlgpu ? ids.View.SubView(first, 1).GetAsArray1D()[0] : ids.HostSpan[first];
        var allowed = ignore.HasValue ? $"an integer in [0, {limit}) or the ignore index {ignore.Value}" : $"an integer in [0, {limit})";
        throw new ArgumentException(
            $"{name} {Tensor.Format(ids.ShapeSpan)} holds {value:R} at index {first}; each entry must be {allowed}.", name);
    }

    /// <summary>Refuses a class or vocabulary count beyond what float-coded ids can name exactly.</summary>
    public static void CheckLimit(int limit, string name)
    {
        if (limit > MaxClasses)
            throw new ArgumentException(
                $"{name} is {limit:N0}, more than the {MaxClasses:N0} that float32 counts and float-coded ids hold exactly.", name);
    }

    /// <summary>Refuses an ignore index that float32 does not hold exactly.</summary>
    public static void CheckIgnore(int ignore, string name)
    {
        if (Math.Abs((long)ignore) > MaxClasses)
            throw new ArgumentException($"{name} is {ignore}; float-coded ids hold integers of magnitude at most {MaxClasses:N0}.", name);
    }
}
