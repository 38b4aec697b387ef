using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using NUnit.Framework;
using RouteKit.Kernels.Common;

namespace RouteKit.Tests;

/// <summary>
/// Every attention kernel the dispatcher can pick (and the finite check every op runs first) compiles to PTX for
/// SM_80 and SM_90 and to OpenCL C 2.0, without a GPU (DESIGN.md sections 2 and 7): the warp-shuffle variants the
/// dispatcher picks on Cuda, and the shared-memory-reduction variants it picks on OpenCL.
/// </summary>
[TestFixture]
public sealed class AttentionCodegenTests
{
    private Context context = null!;

    [OneTimeSetUp]
    public void CreateContext() => context = Context.Create(b => b.EnableAlgorithms().Optimize(OptimizationLevel.O2));

    [OneTimeTearDown]
    public void DisposeContext() => context?.Dispose();

    private static IEnumerable<TestCaseData> KernelsFor(SegmentReduction reduction)
    {
        foreach (var (name, method) in AttentionIlgpu.AllKernels(reduction))
            yield return new TestCaseData(method, true).SetArgDisplayNames(name);
        yield return new TestCaseData(typeof(FiniteCheck).GetMethod(nameof(FiniteCheck.FirstNonFiniteKernel))!, false)
            .SetArgDisplayNames("FiniteCheck.FirstNonFiniteKernel");
    }

    private static IEnumerable<TestCaseData> CudaKernels() => KernelsFor(SegmentReduction.WarpShuffle);

    private static IEnumerable<TestCaseData> OpenCLKernels() => KernelsFor(SegmentReduction.GroupShared);

    private static EntryPointDescription Entry(MethodInfo method, bool explicitlyGrouped) =>
        explicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(method)
            : EntryPointDescription.FromImplicitlyGroupedKernel(method);

    private static KernelSpecialization Specialization(bool explicitlyGrouped) =>
        explicitlyGrouped ? AttentionIlgpu.Specialization(32) : KernelSpecialization.Empty;

    private string Ptx(MethodInfo method, bool explicitlyGrouped, CudaArchitecture architecture, CudaInstructionSet isa)
    {
        using var backend = new PTXBackend(context, architecture, isa, null);
        var entry = Entry(method, explicitlyGrouped);
        var specialization = Specialization(explicitlyGrouped);
        var compiled = (PTXCompiledKernel)backend.Compile(entry, specialization);
        return compiled.PTXAssembly;
    }

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm80(MethodInfo method, bool explicitlyGrouped)
    {
        var ptx = Ptx(method, explicitlyGrouped, CudaArchitecture.SM_80, CudaInstructionSet.ISA_70);
        Assert.That(ptx, Does.Contain(".entry"));
        Assert.That(ptx, Does.Contain(".target sm_80"));
        ReportSpills(ptx);
    }

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm90(MethodInfo method, bool explicitlyGrouped)
    {
        var ptx = Ptx(method, explicitlyGrouped, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
        Assert.That(ptx, Does.Contain(".entry"));
        // ILGPU 1.5.3 writes the lowest architecture that has every capability the kernel uses (sm_80 here); the
        // driver JIT-compiles that PTX for sm_90.
        Assert.That(ptx, Does.Match(@"\.target sm_(80|90)"));
        Assert.That(ptx, Does.Contain(".version 8.0"));
        ReportSpills(ptx);
    }

    /// <summary>The specialised forward kernels of the common head dimensions keep their accumulators in registers.</summary>
    [TestCase(64)]
    [TestCase(128)]
    public void ForwardForCommonHeadDimsHasNoLocalMemory(int headDim)
    {
        var lanes = AttentionIlgpu.LanesFor(headDim);
        foreach (var score in new[] { Score.Dot, Score.Distance })
        foreach (var diagnostics in new[] { false, true })
        {
            var method = AttentionIlgpu.ForwardMethod(lanes, score, diagnostics, SegmentReduction.WarpShuffle);
            var ptx = Ptx(method, true, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
            Assert.That(ptx, Does.Not.Contain(".local"), $"D={headDim} {score} diagnostics={diagnostics} spills to .local");
        }
    }

    [TestCaseSource(nameof(OpenCLKernels))]
    public void CompilesToOpenCL(MethodInfo method, bool explicitlyGrouped)
    {
        // The OpenCL variants use no sub-group shuffles (ILGPU 1.5.3 emits those for Intel only), so any vendor
        // compiles them; AMD is the one DESIGN.md names. Every capability flag is on (OpenCL C 2.0 devices).
        var capabilities = new CLCapabilityContext(true, true, true, true, true);
        using var backend = new CLBackend(context, capabilities, CLDeviceVendor.AMD, CLCVersion.CL20);
        var compiled = (CLCompiledKernel)backend.Compile(Entry(method, explicitlyGrouped), Specialization(explicitlyGrouped));
        Assert.That(compiled.Source, Does.Contain("kernel"));
        Assert.That(compiled.Source, Does.Not.Contain("sub_group_shuffle"));
    }

    private static void ReportSpills(string ptx) =>
        TestContext.Out.WriteLine(ptx.Contains(".local", StringComparison.Ordinal) ? "PTX has .local (spilled locals)" : "PTX has no .local");
}
