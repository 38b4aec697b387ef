// GraphAttention on ILGPU accelerators (Cuda, OpenCL, IlgpuCpu): the launcher and the one dispatcher from a resolved
// GraphAttentionParams to the compile-time kernel variants of kernels/Graph/.
// Kernels: AttentionKeys.PrepareKernel (shared with attention), GraphAttentionForward.WarpPerNodeKernel,
// GraphAttentionBackward.QueryKernel + KeyKernel.
//
// Shapes: H heads, Nn nodes, E edges, D head dim.
//
// Launch configuration: one warp per (head, node); T lanes per edge slot as attention's (8 T >= D), S = warp / T slots;
// groups of min(4 warps, the rows) threads; no shared memory, no barrier (warps of a group never wait for each other).
// The slots merge by warp shuffles on every backend: on OpenCL ILGPU 1.5.3 emits them as Intel sub-group shuffles only,
// so these kernels run there only on devices whose sub-group size equals the warp size the runtime reports.
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;
using RouteKit.Kernels.Graph;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;
using IntView = ILGPU.Runtime.ArrayView1D<int, ILGPU.Stride1D.Dense>;

namespace RouteKit;

internal static class GraphAttentionIlgpu
{
    private const int WarpsPerGroup = 4;

    // The dispatcher: every runtime flag becomes a type argument here and nowhere else.
    internal static MethodInfo ForwardMethod(int lanes, Score score, bool diagnostics) =>
        AttentionIlgpu.Generic(typeof(GraphAttentionForward), nameof(GraphAttentionForward.WarpPerNodeKernel),
            AttentionIlgpu.LaneType(lanes), AttentionIlgpu.ScoreType(score), diagnostics ? typeof(WithDiagnostics) : typeof(NoDiagnostics));

    internal static MethodInfo BackwardQueryMethod(int lanes, Score score) =>
        AttentionIlgpu.Generic(typeof(GraphAttentionBackward), nameof(GraphAttentionBackward.QueryKernel),
            AttentionIlgpu.LaneType(lanes), AttentionIlgpu.ScoreType(score));

    internal static MethodInfo BackwardKeyMethod(int lanes, Score score) =>
        AttentionIlgpu.Generic(typeof(GraphAttentionBackward), nameof(GraphAttentionBackward.KeyKernel),
            AttentionIlgpu.LaneType(lanes), AttentionIlgpu.ScoreType(score));

    /// <summary>Every kernel instantiation the dispatcher can pick, named, for the codegen tests.</summary>
    internal static IEnumerable<(string Name, MethodInfo Kernel)> AllKernels()
    {
        foreach (var lanes in new[] { 1, 2, 4, 8, 16, 32 })
        foreach (var score in new[] { Score.Dot, Score.Distance })
        {
            foreach (var diagnostics in new[] { false, true })
                yield return ($"GraphAttention.Forward<T{lanes},{score},{(diagnostics ? "diag" : "nodiag")}>", ForwardMethod(lanes, score, diagnostics));
            yield return ($"GraphAttention.Backward.QueryKernel<T{lanes},{score}>", BackwardQueryMethod(lanes, score));
            yield return ($"GraphAttention.Backward.KeyKernel<T{lanes},{score}>", BackwardKeyMethod(lanes, score));
        }
    }

    internal static void Forward(Device device, GraphAttentionParams p, CsrGraph graph, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor lse, Tensor stats, GraphAttentionDiagnostics? diagnostics)
    {
        var acc = device.Accelerator!;
        var (lanes, config) = Launch(acc, p);
        var (keys, _, bias) = AttentionIlgpu.PrepareKeys(device, p.Keys, k, lanes, AttentionIlgpu.ReductionFor(acc));
        var slopes = AttentionIlgpu.Slopes(device, p.Keys);
        var withDiagnostics = p.Diagnostics && diagnostics is not null;
        var kernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, IntView, IntView, View, View, View, View, View, View, AttentionKernelParams>>(
            device, $"graph.forward/{lanes}/{p.Keys.Score}/{withDiagnostics}", () => ForwardMethod(lanes, p.Keys.Score, withDiagnostics),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, IntView, IntView, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        kernel(config, q.View, keys, v.View, bias, slopes, graph.RowPtrView, graph.ColIdxView, o.View, lse.View, stats.View,
            withDiagnostics ? diagnostics!.NormalizedEntropy.View : lse.View,
            withDiagnostics ? diagnostics!.MaxProb.View : lse.View,
            withDiagnostics ? diagnostics!.SelfMass.View : lse.View, KernelParams(p));
    }

    internal static void Backward(Device device, GraphAttentionParams p, CsrGraph graph, Tensor dOut, Tensor q, Tensor k, Tensor v,
        Tensor o, Tensor stats, Tensor dq, Tensor dk, Tensor dv)
    {
        var acc = device.Accelerator!;
        var (lanes, config) = Launch(acc, p);
        var (keys, norms, bias) = AttentionIlgpu.PrepareKeys(device, p.Keys, k, lanes, AttentionIlgpu.ReductionFor(acc));
        var slopes = AttentionIlgpu.Slopes(device, p.Keys);
        var delta = device.Workspace("graph.delta", (long)p.H * p.Nodes); // [H, Nn]
        var kp = KernelParams(p);

        var queryKernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, View, View, View, IntView, IntView, View, View, AttentionKernelParams>>(
            device, $"graph.backward.query/{lanes}/{p.Keys.Score}", () => BackwardQueryMethod(lanes, p.Keys.Score),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, IntView, IntView, View, View, AttentionKernelParams>>(), s));
        queryKernel(config, q.View, keys, v.View, bias, slopes, o.View, dOut.View, stats.View, graph.RowPtrView, graph.ColIdxView,
            delta, dq.View, kp);

        var keyKernel = AttentionIlgpu.Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, IntView, View, View, AttentionKernelParams>>(
            device, $"graph.backward.key/{lanes}/{p.Keys.Score}", () => BackwardKeyMethod(lanes, p.Keys.Score),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, IntView, View, View, AttentionKernelParams>>(), s));
        keyKernel(config, q.View, k.View, keys, v.View, bias, norms, slopes, dOut.View, stats.View, delta, graph.TransposeView,
            dk.View, dv.View, kp);
    }

    private static AttentionKernelParams KernelParams(GraphAttentionParams p) => AttentionIlgpu.KernelParams(p.Keys, 0, 0);

    // One warp per (head, node) row, WarpsPerGroup warps per group (fewer for tiny problems, which keeps the simulator's
    // groups small).
    private static (int Lanes, KernelConfig Config) Launch(Accelerator acc, GraphAttentionParams p)
    {
        var lanes = AttentionIlgpu.LanesFor(p.D);
        var warp = acc.WarpSize;
        if (warp < 1 || (warp & (warp - 1)) != 0 || lanes > warp)
            throw new NotSupportedException(
                $"GraphAttention with head dimension D = {p.D} serves each edge with {lanes} lanes of one warp, but {acc.Name} " +
                $"has warp (sub-group) size {warp}; it needs a power-of-two warp size of at least {lanes}.");
        var rows = (long)p.H * p.Nodes;
        var warps = (int)Math.Clamp(rows, 1, WarpsPerGroup);
        var groups = (rows + warps - 1) / warps;
        if (groups > acc.MaxGridSize.X)
            throw new NotSupportedException($"GraphAttention needs {groups:N0} groups; {acc.Name} allows {acc.MaxGridSize.X:N0}.");
        return (lanes, new KernelConfig((int)Math.Max(groups, 1), warps * warp));
    }
}
