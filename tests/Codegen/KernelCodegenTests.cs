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
/// Every kernel of <see cref="KernelCatalog"/> (each op's dispatcher, and the finite check every op runs first) compiles to PTX for
/// SM_80 and SM_90 and to OpenCL C 2.0, without a GPU (DESIGN.md sections 2 and 7): the warp-shuffle variants the
/// dispatcher picks on Cuda, and the shared-memory-reduction variants it picks on OpenCL.
/// </summary>
[TestFixture]
public sealed class KernelCodegenTests
{
    private Context context = null!;

    [OneTimeSetUp]
    public void CreateContext() => context = Context.Create(b => b.EnableAlgorithms().Optimize(OptimizationLevel.O2));

    [OneTimeTearDown]
    public void DisposeContext() => context?.Dispose();

    // Test cases carry the kernel's name (KernelEntry is internal); the entry is looked up again in the test.
    private static IEnumerable<string> CudaKernels() => KernelCatalog.ForCuda().Select(k => k.Name);

    private static IEnumerable<string> OpenCLKernels() => KernelCatalog.ForOpenCL().Select(k => k.Name);

    private static KernelEntry Cuda(string name) => KernelCatalog.ForCuda().Single(k => k.Name == name);

    private static EntryPointDescription Entry(KernelEntry k) =>
        k.ExplicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(k.Method)
            : EntryPointDescription.FromImplicitlyGroupedKernel(k.Method);

    private string Ptx(KernelEntry k, CudaArchitecture architecture, CudaInstructionSet isa)
    {
        using var backend = new PTXBackend(context, architecture, isa, null);
        var compiled = (PTXCompiledKernel)backend.Compile(Entry(k), k.Specialization);
        return compiled.PTXAssembly;
    }

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm80(string name)
    {
        var kernel = Cuda(name);
        var ptx = Ptx(kernel, CudaArchitecture.SM_80, CudaInstructionSet.ISA_70);
        Assert.That(ptx, Does.Contain(".entry"));
        Assert.That(ptx, Does.Contain(".target sm_80"));
        ReportSpills(ptx);
    }

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm90(string name)
    {
        var kernel = Cuda(name);
        var ptx = Ptx(kernel, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
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
            var ptx = Ptx(new KernelEntry("forward", method, true, AttentionIlgpu.Specialization(32)), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
            Assert.That(ptx, Does.Not.Contain(".local"), $"D={headDim} {score} diagnostics={diagnostics} spills to .local");
        }
    }

    [TestCaseSource(nameof(OpenCLKernels))]
    public void CompilesToOpenCL(string name)
    {
        var kernel = KernelCatalog.ForOpenCL().Single(k => k.Name == name);
        // The OpenCL variants use no sub-group shuffles (ILGPU 1.5.3 emits those for Intel only), so any vendor
        // compiles them; AMD is the one DESIGN.md names. Every capability flag is on (OpenCL C 2.0 devices).
        var capabilities = new CLCapabilityContext(true, true, true, true, true);
        using var backend = new CLBackend(context, capabilities, CLDeviceVendor.AMD, CLCVersion.CL20);
        var compiled = (CLCompiledKernel)backend.Compile(Entry(kernel), kernel.Specialization);
        Assert.That(compiled.Source, Does.Contain("kernel"));
        Assert.That(compiled.Source, Does.Not.Contain("sub_group_shuffle"));
    }

    private static void ReportSpills(string ptx) =>
        TestContext.Out.WriteLine(ptx.Contains(".local", StringComparison.Ordinal) ? "PTX has .local (spilled locals)" : "PTX has no .local");
}
