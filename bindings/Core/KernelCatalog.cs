using System.Reflection;
using ILGPU.Runtime;
using RouteKit.Kernels.Collapse;
using RouteKit.Kernels.Common;
using RouteKit.Kernels.FeatureNorms;
using RouteKit.Kernels.Linear;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>One kernel entry point as a backend compiles it: the method (generic arguments bound) and how it is launched.</summary>
/// <param name="Name">Display name.</param>
/// <param name="Method">The entry point, generic arguments bound.</param>
/// <param name="ExplicitlyGrouped">Launched with an explicit group size (else auto-grouped with an index).</param>
/// <param name="Specialization">The specialisation its loader uses.</param>
/// <param name="UsesWarpShuffles">Uses warp shuffles, which ILGPU 1.5.3 emits on OpenCL only as Intel sub-group shuffles.</param>
internal sealed record KernelEntry(string Name, MethodInfo Method, bool ExplicitlyGrouped, KernelSpecialization Specialization,
    bool UsesWarpShuffles = false)
{
    public override string ToString() => Name;
}

/// <summary>
/// Every kernel each GPU backend's dispatchers can launch, so the code-generation tests and the GPU bundle's
/// validation cover all of them and a new op only has to add itself here.
/// </summary>
internal static class KernelCatalog
{
    /// <summary>The kernels the dispatchers pick on Cuda (warp-shuffle variants).</summary>
    public static IEnumerable<KernelEntry> ForCuda() =>
        Common().Concat(Attention(SegmentReduction.WarpShuffle)).Concat(Depth(SegmentReduction.WarpShuffle)).Concat(Scan()).Concat(Graph());

    /// <summary>The kernels the dispatchers pick on OpenCL (shared-memory reductions instead of sub-group shuffles).</summary>
    public static IEnumerable<KernelEntry> ForOpenCL() =>
        Common().Concat(Attention(SegmentReduction.GroupShared)).Concat(Depth(SegmentReduction.GroupShared)).Concat(Scan()).Concat(Graph());

    private static IEnumerable<KernelEntry> Attention(SegmentReduction reduction) =>
        AttentionIlgpu.AllKernels(reduction).Select(k => new KernelEntry(k.Name, k.Kernel, true, AttentionIlgpu.Specialization(32)));

    /// <summary>The graph-attention kernels (warp shuffles merge the edge slots on every backend).</summary>
    public static IEnumerable<KernelEntry> Graph() =>
        GraphAttentionIlgpu.AllKernels().Select(k => new KernelEntry(k.Name, k.Kernel, true, AttentionIlgpu.Specialization(32), true));

    private static IEnumerable<KernelEntry> Depth(SegmentReduction reduction) =>
        DepthRouterIlgpu.AllKernels(reduction).Select(k => new KernelEntry(k.Name, k.Kernel, true, AttentionIlgpu.Specialization(32)));

    /// <summary>The selective-scan and linear-recurrence kernels (warp-shuffle scans on every backend).</summary>
    public static IEnumerable<KernelEntry> Scan() =>
        SelectiveScanIlgpu.AllKernels().Concat(LinearRecurrenceIlgpu.AllKernels()).Select(k => new KernelEntry(k.Name, k.Kernel,
            k.ExplicitlyGrouped, k.ExplicitlyGrouped ? SelectiveScanIlgpu.Specialization : KernelSpecialization.Empty, k.ExplicitlyGrouped));

    private static IEnumerable<KernelEntry> Common()
    {
        var grouped = new KernelSpecialization(GroupReduce.GroupSize, null);
        yield return Implicit(typeof(FiniteCheck), nameof(FiniteCheck.FirstNonFiniteKernel));
        yield return Implicit(typeof(FiniteCheck), nameof(FiniteCheck.FillKernel));
        yield return Implicit(typeof(FiniteCheck), nameof(FiniteCheck.FirstPositiveKernel));
        yield return Implicit(typeof(FiniteCheck), nameof(FiniteCheck.SummarizeKernel));
        yield return Implicit(typeof(Kernels.Attention.AttentionStats), nameof(Kernels.Attention.AttentionStats.CheckKernel));
        yield return new("FeatureNorms.Forward", Method(typeof(FeatureNormsKernels), nameof(FeatureNormsKernels.Forward)), true, grouped);
        yield return Implicit(typeof(FeatureNormsKernels), nameof(FeatureNormsKernels.Backward));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.Gram));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.ColumnSums));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.UnitColumnSums));
        yield return new("Collapse.RowDeviation", Method(typeof(CollapseKernels), nameof(CollapseKernels.RowDeviation)), true, grouped);
        foreach (var k in Training()) yield return k;
        foreach (var k in TrainingNorms()) yield return k;
    }

    /// <summary>The training ops' kernels (DESIGN.md section 9).</summary>
    private static IEnumerable<KernelEntry> Training()
    {
        var grouped = new KernelSpecialization(GroupReduce.GroupSize, null);
        yield return new("Linear.Sgemm", Method(typeof(LinearKernels), nameof(LinearKernels.Sgemm)), true,
            new KernelSpecialization(LinearKernels.GroupSize, null));
        yield return Implicit(typeof(LinearKernels), nameof(LinearKernels.ColumnSums));
        yield return Implicit(typeof(TokenIdCheck), nameof(TokenIdCheck.FirstBadIdKernel));
        foreach (var name in new[] { nameof(CrossEntropyKernels.Count), nameof(CrossEntropyKernels.Rows), nameof(CrossEntropyKernels.Mean) })
            yield return new($"CrossEntropy.{name}", Method(typeof(CrossEntropyKernels), name), true, grouped);
        yield return Implicit(typeof(EmbeddingKernels), nameof(EmbeddingKernels.Forward));
        yield return Implicit(typeof(EmbeddingKernels), nameof(EmbeddingKernels.Backward));
        yield return Implicit(typeof(AdamWKernels), nameof(AdamWKernels.Update));
        yield return new("GradientClip.Norm", Method(typeof(GradientClipKernels), nameof(GradientClipKernels.Norm)), true, grouped);
        yield return Implicit(typeof(GradientClipKernels), nameof(GradientClipKernels.Scale));
        yield return Implicit(typeof(Conv1dKernels), nameof(Conv1dKernels.Forward));
        yield return Implicit(typeof(Conv1dKernels), nameof(Conv1dKernels.BackwardInput));
        yield return Implicit(typeof(Conv1dKernels), nameof(Conv1dKernels.BackwardParameters));
        yield return Implicit(typeof(ResidualKernels), nameof(ResidualKernels.Add));
        yield return Implicit(typeof(ResidualKernels), nameof(ResidualKernels.AddInto));
        yield return Implicit(typeof(PermuteKernels), nameof(PermuteKernels.Gather));
        yield return new("PermuteKernels.Transpose32", Method(typeof(PermuteKernels), nameof(PermuteKernels.Transpose32)), true,
            new KernelSpecialization(PermuteKernels.GroupSize, null));
        yield return Implicit(typeof(RgLruGateKernels), nameof(RgLruGateKernels.Forward));
        yield return Implicit(typeof(RgLruGateKernels), nameof(RgLruGateKernels.Backward));
        yield return Implicit(typeof(NegExpKernels), nameof(NegExpKernels.Forward));
        yield return Implicit(typeof(NegExpKernels), nameof(NegExpKernels.Backward));
    }

    /// <summary>The normalisation layers and activations of the training stack (DESIGN.md section 9).</summary>
    public static IEnumerable<KernelEntry> TrainingNorms()
    {
        var grouped = new KernelSpecialization(RowReduce.GroupSize, null);
        yield return new("LayerNorm.Forward", Method(typeof(LayerNormKernels), nameof(LayerNormKernels.Forward)), true, grouped);
        yield return new("LayerNorm.BackwardInput", Method(typeof(LayerNormKernels), nameof(LayerNormKernels.BackwardInput)), true, grouped);
        yield return Implicit(typeof(LayerNormKernels), nameof(LayerNormKernels.BackwardParameters));
        yield return new("RmsNorm.Forward", Method(typeof(RmsNormKernels), nameof(RmsNormKernels.Forward)), true, grouped);
        yield return new("RmsNorm.BackwardInput", Method(typeof(RmsNormKernels), nameof(RmsNormKernels.BackwardInput)), true, grouped);
        yield return Implicit(typeof(RmsNormKernels), nameof(RmsNormKernels.BackwardWeight));
        foreach (var form in new[] { typeof(GeluTanh), typeof(GeluErf) })
        {
            yield return Generic(typeof(GeluKernels), nameof(GeluKernels.Forward), form);
            yield return Generic(typeof(GeluKernels), nameof(GeluKernels.Backward), form);
        }
        yield return Implicit(typeof(SiluKernels), nameof(SiluKernels.Forward));
        yield return Implicit(typeof(SiluKernels), nameof(SiluKernels.Backward));
        yield return Implicit(typeof(ReluKernels), nameof(ReluKernels.Forward));
        yield return Implicit(typeof(ReluKernels), nameof(ReluKernels.Backward));
    }

    private static KernelEntry Generic(Type type, string name, Type argument) =>
        new($"{type.Name}.{name}<{argument.Name}>", Method(type, name).MakeGenericMethod(argument), false, KernelSpecialization.Empty);

    private static KernelEntry Implicit(Type type, string name) =>
        new($"{type.Name}.{name}", Method(type, name), false, KernelSpecialization.Empty);

    private static MethodInfo Method(Type type, string name) =>
        type.GetMethod(name, BindingFlags.Public | BindingFlags.Static) ?? throw new MissingMethodException(type.Name, name);
}
