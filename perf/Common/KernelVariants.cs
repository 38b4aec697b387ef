// The kernel versions each perf command can time, as data: `routekit-perf list` prints them and every command's
// `--variant N` is checked against them before the load gate, a device or a kernel (exit 2 with the valid range).
// ILGPU versions come from the kernels' own Variants lists (kernels/*); the Managed backend has one implementation per
// op (bindings/Managed/*, whose headers keep the dated history of versions replaced in place), named here.
// Attention is not here: its command and its lines of `list` belong to perf/Attention (AttentionBenchmark.VariantCount).
using RouteKit.Kernels.Collapse;
using RouteKit.Kernels.Depth;
using RouteKit.Kernels.FeatureNorms;
using RouteKit.Kernels.Graph;
using RouteKit.Kernels.Linear;
using RouteKit.Kernels.Scan;
using RouteKit.Kernels.Training;

namespace RouteKit.Perf.Common;

/// <summary>One kernel version: its name in the code and its one-line idea.</summary>
public sealed record KernelVersion(string Name, string Idea);

/// <summary>
/// The versions of one op: <paramref name="Managed"/> on the Managed backend, <paramref name="Ilgpu"/> on the ILGPU
/// backends (Cuda, OpenCL, IlgpuCpu), each numbered from 1.
/// </summary>
/// <param name="Op">The op's name in messages.</param>
/// <param name="Command">The perf command (and options) that times it, as `list` prints it.</param>
/// <param name="Managed">Managed versions.</param>
/// <param name="Ilgpu">ILGPU versions (forward and backward version N paired where they are separate lists).</param>
/// <param name="IlgpuTimed">Whether the command can time the ILGPU versions (--backend); otherwise they are listed for
/// reference and validated by the tests only.</param>
public sealed record OpVariants(string Op, string Command, IReadOnlyList<KernelVersion> Managed, IReadOnlyList<KernelVersion> Ilgpu, bool IlgpuTimed)
{
    /// <summary>The versions the command times on <paramref name="backend"/>.</summary>
    public IReadOnlyList<KernelVersion> For(Backend backend) => backend == Backend.Managed || !IlgpuTimed ? Managed : Ilgpu;

    /// <summary>"managed" or "ILGPU" for messages.</summary>
    public string BackendLabel(Backend backend) => backend == Backend.Managed || !IlgpuTimed ? "managed" : "ILGPU";

    /// <summary>Version <paramref name="variant"/> (from 1) on <paramref name="backend"/>; the caller checked the range.</summary>
    public KernelVersion Select(Backend backend, int variant) => For(backend)[variant - 1];
}

/// <summary>The version lists of every non-attention perf command, and the check of --variant.</summary>
public static class KernelVariants
{
    /// <summary>Selective scan (Mamba S6) forward and backward.</summary>
    public static OpVariants Scan { get; } = new("selective scan", "scan [--backend B] [--variant N]",
        [new("SelectiveScanManaged", "SIMD across the channels of one group (8 lanes on Vector256, 4 on Vector128), time tiles transposed by ScanTiles, chunk states saved for the backward")],
        Paired("SelectiveScanForward", SelectiveScanForward.Variants, "SelectiveScanBackward", SelectiveScanBackward.Variants),
        IlgpuTimed: true);

    /// <summary>The linear recurrence h_t = a_t h_{t-1} + x_t, forward and backward.</summary>
    public static OpVariants LinearRecurrence { get; } = new("linear recurrence", "scan --op linear [--backend B] [--variant N]",
        [new("LinearRecurrenceManaged", "SIMD across rows (8 recurrences per instruction on Vector256, 4 on Vector128; tiles transposed by ScanTiles), parallel over row blocks")],
        Listed("LinearRecurrenceKernels", LinearRecurrenceKernels.Variants), IlgpuTimed: true);

    /// <summary>Feature norms forward.</summary>
    public static OpVariants FeatureNorms { get; } = new("feature norms", "featurenorms [--backend B] [--variant N]",
        [new("FeatureNormsManaged.Forward", "one pass per row: float32 SIMD blocks summed into float64 row totals, float64 re-sum of a block only when it overflows or underflows")],
        Listed("FeatureNormsKernels", FeatureNormsKernels.Variants), IlgpuTimed: true);

    /// <summary>The collapse reductions (Gram, column sums, unit column sums, row deviations).</summary>
    public static OpVariants Collapse { get; } = new("collapse reductions", "collapse [--backend B] [--variant N]",
        [new("FeatureNormsManaged.Gram+ColumnSums+RowDeviation", "scalar loops with Kahan-compensated float32 sums, Parallel.For over row blocks (Gram over output rows)")],
        Listed("CollapseKernels", CollapseKernels.Variants), IlgpuTimed: true);

    /// <summary>Graph attention forward and backward.</summary>
    public static OpVariants Graph { get; } = new("graph attention", "graph [--variant N]",
        [new("GraphAttentionManaged", "Vector<float> over D, work items of ~2048 edges, hubs split into chunks merged in order")],
        Paired("GraphAttentionForward", GraphAttentionForward.Variants, "GraphAttentionBackward", GraphAttentionBackward.Variants),
        IlgpuTimed: false);

    /// <summary>Depth router forward and backward.</summary>
    public static OpVariants Depth { get; } = new("depth router", "depth [--variant N]",
        [new("DepthRouterManaged", "one thread per (token, head) column, Vector<float> over D, ManagedParallel over column blocks")],
        Paired("DepthForward", DepthForward.Variants, "DepthBackward", DepthBackward.Variants), IlgpuTimed: false);

    /// <summary>Causal depthwise Conv1d forward and backward.</summary>
    public static OpVariants Conv1d { get; } = new("conv1d", "conv1d [--variant N]",
        [new("Conv1dManaged", $"Vector{RouteKit.Conv1dManaged.VectorBits} across channels, K taps in one register, Parallel.For over time-row blocks; dweight/dbias over channel blocks in t order")],
        Listed("Conv1dKernels", Conv1dKernels.Variants), IlgpuTimed: false);

    /// <summary>SGEMM, the engine of Linear.</summary>
    public static OpVariants Gemm { get; } = new("gemm", "gemm [--variant N]",
        [new("Sgemm", $"packed panels, {RouteKit.Sgemm.MR} x {RouteKit.Sgemm.NR}-vector register block at Vector{RouteKit.Sgemm.VectorBits}, K blocks of {RouteKit.Sgemm.KC}, tiles over the thread pool")],
        Listed("LinearKernels", LinearKernels.Variants), IlgpuTimed: false);

    /// <summary>The training ops timed together by `training-ops` (one version of each op per backend).</summary>
    public static OpVariants TrainingOps { get; } = new("training ops", "training-ops [--backend B] [--variant N]",
        [new("LayerNormManaged, RmsNormManaged, GeluManaged, SiluManaged, ReluManaged, CrossEntropyManaged, EmbeddingManaged, AdamWManaged, GradientClipManaged",
            "the one Managed implementation of each op (bindings/Managed), SIMD over the vector width, parallel over rows")],
        [new($"{nameof(LayerNormKernels)}, {nameof(RmsNormKernels)}, {nameof(GeluKernels)}, {nameof(SiluKernels)}, {nameof(ReluKernels)}, {nameof(CrossEntropyKernels)}, {nameof(EmbeddingKernels)}, {nameof(AdamWKernels)}, {nameof(GradientClipKernels)}",
            "the one ILGPU version of each op (kernels/Training; their headers say how each is laid out)")],
        IlgpuTimed: true);

    /// <summary>Every op above, in the order `list` prints them.</summary>
    public static IReadOnlyList<OpVariants> All { get; } = [Scan, LinearRecurrence, FeatureNorms, Collapse, Graph, Depth, Conv1d, Gemm, TrainingOps];

    /// <summary>The usage error for a --variant outside <paramref name="op"/>'s versions on <paramref name="backend"/>, or null when it is one.</summary>
    public static string? Error(OpVariants op, Backend backend, int variant)
    {
        ArgumentNullException.ThrowIfNull(op);
        var versions = op.For(backend);
        if (variant >= 1 && variant <= versions.Count) return null;
        var names = string.Join(", ", versions.Select((v, i) => $"{i + 1} = {v.Name}"));
        return $"routekit-perf {op.Command.Split(' ')[0]}: --variant {variant} is not a version of the {op.Op} on {op.BackendLabel(backend)}: " +
               $"valid is 1..{versions.Count} ({names}); see `routekit-perf list`.";
    }

    /// <summary>Prints every op's versions, Managed and ILGPU, from the lists above.</summary>
    public static void Print(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach (var op in All)
        {
            output.WriteLine($"{op.Op} (routekit-perf {op.Command}):");
            for (var i = 0; i < op.Managed.Count; i++) output.WriteLine($"  managed  {i + 1}. {op.Managed[i].Name}: {op.Managed[i].Idea}");
            var note = op.IlgpuTimed ? "" : " [validated by the tests; the command times Managed until a GPU run times these]";
            for (var i = 0; i < op.Ilgpu.Count; i++) output.WriteLine($"  ilgpu    {i + 1}. {op.Ilgpu[i].Name}: {op.Ilgpu[i].Idea}{note}");
        }
    }

    private static KernelVersion[] Listed(string type, IReadOnlyList<(string Name, string Idea)> versions) =>
        versions.Select(v => new KernelVersion($"{type}.{v.Name}", v.Idea)).ToArray();

    // Forward version N goes with backward version N, as `attention --variant N` pairs them.
    private static KernelVersion[] Paired(string forwardType, IReadOnlyList<(string Name, string Idea)> forward,
        string backwardType, IReadOnlyList<(string Name, string Idea)> backward) =>
        Enumerable.Range(0, Math.Min(forward.Count, backward.Count))
            .Select(i => new KernelVersion($"{forwardType}.{forward[i].Name} + {backwardType}.{backward[i].Name}",
                $"forward: {forward[i].Idea}; backward: {backward[i].Idea}"))
            .ToArray();
}
