using System.Reflection;
using ILGPU.Runtime;
using RouteKit.Kernels.Collapse;
using RouteKit.Kernels.Common;
using RouteKit.Kernels.FeatureNorms;

namespace RouteKit;

/// <summary>One kernel entry point as a backend compiles it: the method (generic arguments bound) and how it is launched.</summary>
internal sealed record KernelEntry(string Name, MethodInfo Method, bool ExplicitlyGrouped, KernelSpecialization Specialization)
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
    public static IEnumerable<KernelEntry> ForCuda() => Common().Concat(Attention(SegmentReduction.WarpShuffle));

    /// <summary>The kernels the dispatchers pick on OpenCL (shared-memory reductions instead of sub-group shuffles).</summary>
    public static IEnumerable<KernelEntry> ForOpenCL() => Common().Concat(Attention(SegmentReduction.GroupShared));

    private static IEnumerable<KernelEntry> Attention(SegmentReduction reduction) =>
        AttentionIlgpu.AllKernels(reduction).Select(k => new KernelEntry(k.Name, k.Kernel, true, AttentionIlgpu.Specialization(32)));

    private static IEnumerable<KernelEntry> Common()
    {
        var grouped = new KernelSpecialization(GroupReduce.GroupSize, null);
        yield return Implicit(typeof(FiniteCheck), nameof(FiniteCheck.FirstNonFiniteKernel));
        yield return new("FeatureNorms.Forward", Method(typeof(FeatureNormsKernels), nameof(FeatureNormsKernels.Forward)), true, grouped);
        yield return Implicit(typeof(FeatureNormsKernels), nameof(FeatureNormsKernels.Backward));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.Gram));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.ColumnSums));
        yield return Implicit(typeof(CollapseKernels), nameof(CollapseKernels.UnitColumnSums));
        yield return new("Collapse.RowDeviation", Method(typeof(CollapseKernels), nameof(CollapseKernels.RowDeviation)), true, grouped);
    }

    private static KernelEntry Implicit(Type type, string name) =>
        new($"{type.Name}.{name}", Method(type, name), false, KernelSpecialization.Empty);

    private static MethodInfo Method(Type type, string name) =>
        type.GetMethod(name, BindingFlags.Public | BindingFlags.Static) ?? throw new MissingMethodException(type.Name, name);
}
