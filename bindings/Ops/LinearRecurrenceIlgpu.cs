// Linear recurrence on ILGPU accelerators: the launcher of kernels/Scan/LinearRecurrenceKernels.cs (one warp per
// (batch, channel) row, 4 warps per group), with the selective scan's combine functor as the one scan op.
// Shapes: B batch, C channels, T time steps; rows = B C. Time with `routekit-perf scan --variant N`.
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Scan;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

internal static class LinearRecurrenceIlgpu
{
    internal static MethodInfo ForwardMethod =>
        typeof(LinearRecurrenceKernels).GetMethod(nameof(LinearRecurrenceKernels.ForwardKernel))!.MakeGenericMethod(typeof(AffineScanOp));

    internal static MethodInfo BackwardMethod =>
        typeof(LinearRecurrenceKernels).GetMethod(nameof(LinearRecurrenceKernels.BackwardKernel))!.MakeGenericMethod(typeof(AffineScanOp));

    /// <summary>Every kernel the dispatcher can pick, named, for the codegen tests and the perf harness.</summary>
    internal static IEnumerable<(string Name, MethodInfo Kernel, bool ExplicitlyGrouped)> AllKernels()
    {
        yield return ("LinearRecurrenceKernels.ForwardKernel", ForwardMethod, true);
        yield return ("LinearRecurrenceKernels.BackwardKernel", BackwardMethod, true);
    }

    internal static void Forward(Device device, int rows, int steps, Tensor a, Tensor x, Tensor? h0, LinearRecurrenceOutput result)
    {
        var acc = device.Accelerator!;
        SelectiveScanIlgpu.CheckDevice(acc);
        var kernel = device.GetKernel("scan:LinearRecurrenceKernels.ForwardKernel", static acc =>
            acc.LoadStreamKernel(ForwardMethod.CreateDelegate<Action<View, View, View, View, View, int, int, int>>(),
                SelectiveScanIlgpu.Specialization));
        kernel(Config(rows), a.View, x.View, (h0 ?? a).View, result.H.View, result.Last.View, rows, steps, h0 is null ? 0 : 1);
    }

    internal static void Backward(Device device, int rows, int steps, Tensor a, Tensor? h0, Tensor h, Tensor dH,
        LinearRecurrenceGradients result)
    {
        var acc = device.Accelerator!;
        SelectiveScanIlgpu.CheckDevice(acc);
        var kernel = device.GetKernel("scan:LinearRecurrenceKernels.BackwardKernel", static acc =>
            acc.LoadStreamKernel(BackwardMethod.CreateDelegate<Action<View, View, View, View, View, View, View, int, int, int>>(),
                SelectiveScanIlgpu.Specialization));
        kernel(Config(rows), a.View, (h0 ?? a).View, h.View, dH.View, result.DA.View, result.DX.View,
            (result.DH0 ?? result.DA).View, rows, steps, h0 is null ? 0 : 1);
    }

    private static KernelConfig Config(int rows) =>
        new((rows + LinearRecurrenceKernels.WarpsPerGroup - 1) / LinearRecurrenceKernels.WarpsPerGroup,
            LinearRecurrenceKernels.WarpsPerGroup * WarpScan.ChunkLength);
}
