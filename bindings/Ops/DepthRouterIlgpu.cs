// DepthRouter on ILGPU accelerators (Cuda, OpenCL, IlgpuCpu): the launcher and the one dispatcher from a resolved
// DepthRouterParams to the compile-time kernel variants of kernels/Depth/.
// Kernels: AttentionKeys.PrepareKernel (attention's, over the L T H key rows), DepthForward.ColumnKernel,
// DepthBackward.QueryKernel + KeyKernel. Time them with `routekit-perf depth`.
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim; C = T H columns.
//
// Launch configuration: attention's lanes per row (T = smallest power of two with 8 T >= D) and group shape
// (min(C T, 128) threads rounded up to the warp size), one column per T-lane segment; warp shuffles on Cuda and the CPU
// simulator, shared-memory row sums on OpenCL (AttentionIlgpu.ReductionFor). No dynamic shared memory.
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;
using RouteKit.Kernels.Depth;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

internal static class DepthRouterIlgpu
{
    // The dispatcher: every runtime flag becomes a type argument here and nowhere else.
    internal static MethodInfo ForwardMethod(int lanes, Score score, bool diagnostics, SegmentReduction reduction) =>
        AttentionIlgpu.Generic(typeof(DepthForward), nameof(DepthForward.ColumnKernel), AttentionIlgpu.LaneType(lanes),
            AttentionIlgpu.ScoreType(score), diagnostics ? typeof(WithDiagnostics) : typeof(NoDiagnostics),
            AttentionIlgpu.ReductionType(reduction));

    internal static MethodInfo BackwardQueryMethod(int lanes, Score score, SegmentReduction reduction) =>
        AttentionIlgpu.Generic(typeof(DepthBackward), nameof(DepthBackward.QueryKernel), AttentionIlgpu.LaneType(lanes),
            AttentionIlgpu.ScoreType(score), AttentionIlgpu.ReductionType(reduction));

    internal static MethodInfo BackwardKeyMethod(int lanes, Score score, SegmentReduction reduction) =>
        AttentionIlgpu.Generic(typeof(DepthBackward), nameof(DepthBackward.KeyKernel), AttentionIlgpu.LaneType(lanes),
            AttentionIlgpu.ScoreType(score), AttentionIlgpu.ReductionType(reduction));

    /// <summary>Every kernel instantiation the dispatcher can pick with <paramref name="reduction"/>, named (the key
    /// preparation is attention's and listed there).</summary>
    internal static IEnumerable<(string Name, MethodInfo Kernel)> AllKernels(SegmentReduction reduction)
    {
        foreach (var lanes in new[] { 1, 2, 4, 8, 16, 32 })
        foreach (var score in new[] { Score.Dot, Score.Distance })
        {
            foreach (var diagnostics in new[] { false, true })
                yield return ($"Depth.ColumnKernel<T{lanes},{score},{(diagnostics ? "diag" : "nodiag")},{reduction}>",
                    ForwardMethod(lanes, score, diagnostics, reduction));
            yield return ($"Depth.QueryKernel<T{lanes},{score},{reduction}>", BackwardQueryMethod(lanes, score, reduction));
            yield return ($"Depth.KeyKernel<T{lanes},{score},{reduction}>", BackwardKeyMethod(lanes, score, reduction));
        }
    }

    internal static void Forward(Device device, DepthRouterParams p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor stats,
        DepthRouterDiagnostics? diagnostics) =>
        Forward(device, p, q, k, v, o, stats, diagnostics, AttentionIlgpu.ReductionFor(device.Accelerator!));

    /// <summary>The forward with an explicit row reduction (tests run the OpenCL path on the CPU simulator).</summary>
    internal static void Forward(Device device, DepthRouterParams p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor stats,
        DepthRouterDiagnostics? diagnostics, SegmentReduction reduction)
    {
        var keyRows = p.KeyRows;
        var lanes = AttentionIlgpu.CheckLanes(device.Accelerator!, keyRows, reduction);
        var (keys, _, bias) = AttentionIlgpu.PrepareKeys(device, keyRows, k, lanes, reduction);
        var withDiagnostics = p.Diagnostics && diagnostics is not null;
        var kernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(
            device, $"depth.forward/{lanes}/{p.Score}/{withDiagnostics}/{reduction}",
            () => ForwardMethod(lanes, p.Score, withDiagnostics, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(), s));
        kernel(Launch(device, p, lanes), q.View, keys, v.View, bias, Slopes(device, p), o.View, stats.View,
            withDiagnostics ? diagnostics!.NormalizedEntropy.View : stats.View,
            withDiagnostics ? diagnostics!.MaxProb.View : stats.View,
            withDiagnostics ? diagnostics!.EmbeddingMass.View : stats.View, KernelParams(p));
    }

    internal static void Backward(Device device, DepthRouterParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor stats, Tensor dq, Tensor dk, Tensor dv) =>
        Backward(device, p, dOut, q, k, v, o, stats, dq, dk, dv, AttentionIlgpu.ReductionFor(device.Accelerator!));

    /// <summary>The backward with an explicit row reduction.</summary>
    internal static void Backward(Device device, DepthRouterParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor stats, Tensor dq, Tensor dk, Tensor dv, SegmentReduction reduction)
    {
        var keyRows = p.KeyRows;
        var lanes = AttentionIlgpu.CheckLanes(device.Accelerator!, keyRows, reduction);
        var (keys, norms, bias) = AttentionIlgpu.PrepareKeys(device, keyRows, k, lanes, reduction);
        var slopes = Slopes(device, p);
        var delta = device.Workspace("depth.delta", (long)p.Lq * p.Columns); // [Lq, T, H]
        var config = Launch(device, p, lanes);
        var kp = KernelParams(p);

        var queryKernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(
            device, $"depth.backward.query/{lanes}/{p.Score}/{reduction}",
            () => BackwardQueryMethod(lanes, p.Score, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(), s));
        queryKernel(config, q.View, keys, v.View, bias, slopes, o.View, dOut.View, stats.View, delta, dq.View, kp);

        var keyKernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(
            device, $"depth.backward.key/{lanes}/{p.Score}/{reduction}",
            () => BackwardKeyMethod(lanes, p.Score, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, View, DepthKernelParams>>(), s));
        keyKernel(config, q.View, k.View, keys, v.View, bias, norms, slopes, dOut.View, stats.View, delta, dk.View, dv.View, kp);
    }

    // The brakes [H] on the device, uploaded only when they change.
    private static View Slopes(Device device, DepthRouterParams p) => device.Constants("depth.slopes", p.BrakeSlopes);

    // One column per T-lane segment: ceil(C / R) groups of R = threads / T columns.
    private static KernelConfig Launch(Device device, DepthRouterParams p, int lanes)
    {
        var acc = device.Accelerator!;
        var (threads, columnsPerGroup) = AttentionIlgpu.GroupShape(acc, lanes, p.Columns);
        return new KernelConfig(AttentionIlgpu.CheckGrid(acc, ((long)p.Columns + columnsPerGroup - 1) / columnsPerGroup), threads);
    }

    private static DepthKernelParams KernelParams(DepthRouterParams p) => new()
    {
        Lq = p.Lq, L = p.L, Offset = p.Offset, Columns = p.Columns, H = p.H, D = p.D, NormalizeKeys = p.NormalizeKeys ? 1 : 0,
        Scale = p.Scale, KeyRadius = p.KeyRadius, KeyEpsilon = p.KeyEpsilon,
    };
}
