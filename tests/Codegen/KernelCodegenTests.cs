using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;
using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// Every kernel of <see cref="KernelCatalog"/> (each op's dispatcher, and the finite check every op runs first) compiles
/// to PTX for SM_80 and SM_90 and to OpenCL C 2.0, without a GPU (DESIGN.md sections 2 and 7): the variants the
/// dispatchers pick on Cuda, and those they pick on OpenCL.
/// </summary>
[TestFixture]
public sealed class KernelCodegenTests
{
    private KernelCompiler compiler = null!;

    [OneTimeSetUp]
    public void CreateCompiler() => compiler = new KernelCompiler();

    [OneTimeTearDown]
    public void DisposeCompiler() => compiler?.Dispose();

    // Test cases carry the kernel's name (KernelEntry is internal); the entry is looked up again in the test.
    private static IEnumerable<string> CudaKernels() => KernelCatalog.ForCuda().Select(k => k.Name);

    private static IEnumerable<string> OpenCLKernels() => KernelCatalog.ForOpenCL().Select(k => k.Name);

    private static IEnumerable<string> ScanKernels() => KernelCatalog.Scan().Select(k => k.Name);

    private static KernelEntry Cuda(string name) => KernelCatalog.ForCuda().Single(k => k.Name == name);

    private string Ptx(KernelEntry k, CudaArchitecture architecture, CudaInstructionSet isa) =>
        compiler.Ptx(k.Method, k.ExplicitlyGrouped, k.Specialization, architecture, isa);

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm80(string name)
    {
        var ptx = Ptx(Cuda(name), CudaArchitecture.SM_80, CudaInstructionSet.ISA_70);
        Assert.That(ptx, Does.Contain(".entry"));
        Assert.That(ptx, Does.Contain(".target sm_80"));
        ReportSpills(ptx);
    }

    [TestCaseSource(nameof(CudaKernels))]
    public void CompilesToPtxSm90(string name)
    {
        var ptx = Ptx(Cuda(name), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
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
    public void AttentionForwardForCommonHeadDimsHasNoLocalMemory(int headDim)
    {
        var lanes = AttentionIlgpu.LanesFor(headDim);
        foreach (var score in new[] { Score.Dot, Score.Distance })
        foreach (var diagnostics in new[] { false, true })
        {
            var method = AttentionIlgpu.ForwardMethod(lanes, score, diagnostics, SegmentReduction.WarpShuffle);
            var ptx = compiler.Ptx(method, true, AttentionIlgpu.Specialization(32), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
            Assert.That(ptx, Does.Not.Contain(".local"), $"D={headDim} {score} diagnostics={diagnostics} spills to .local");
        }
    }

    /// <summary>
    /// Version 2's register tiles (2 x 4 scores, 2 rows x 8 dims of O, dq, dk', dv) stay in registers for the common
    /// head dimensions: a .local array would mean ILGPU turned a tile into per-thread memory. Distance only: it holds
    /// every register Dot does and the key bias on top (and the catalog already compiles both).
    /// </summary>
    [TestCase(64)]
    public void AttentionVariant2ForCommonHeadDimsHasNoLocalMemory(int headDim)
    {
        var lanes = AttentionIlgpu.LanesFor(headDim);
        var score = Score.Distance;
        foreach (var (name, method) in new[]
                 {
                     ("forward", AttentionIlgpu.RegisterTiledForwardMethod(lanes, score, true)),
                     ("dQ", AttentionIlgpu.TiledBackwardQueryMethod(lanes, score)),
                     ("dK/dV", AttentionIlgpu.TiledBackwardKeyMethod(lanes, score, SegmentReduction.WarpShuffle)),
                 })
        {
            var ptx = compiler.Ptx(method, true, AttentionIlgpu.Specialization(32), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
            Assert.That(ptx, Does.Not.Contain(".local"), $"D={headDim} {score} {name} spills to .local");
            Assert.That(ptx, Does.Contain(".shared"));
        }
    }

    /// <summary>The graph-attention kernels of the common head dimensions keep their per-slot state in registers.</summary>
    [TestCase(64)]
    [TestCase(128)]
    public void GraphAttentionForCommonHeadDimsHasNoLocalMemory(int headDim)
    {
        var lanes = AttentionIlgpu.LanesFor(headDim);
        foreach (var score in new[] { Score.Dot, Score.Distance })
        foreach (var (name, method) in new[]
                 {
                     ("forward", GraphAttentionIlgpu.ForwardMethod(lanes, score, true)),
                     ("dQ", GraphAttentionIlgpu.BackwardQueryMethod(lanes, score)),
                     ("dK/dV", GraphAttentionIlgpu.BackwardKeyMethod(lanes, score)),
                 })
        {
            var ptx = compiler.Ptx(method, true, AttentionIlgpu.Specialization(32), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
            Assert.That(ptx, Does.Not.Contain(".local"), $"D={headDim} {score} {name} spills to .local");
            Assert.That(ptx, Does.Contain("shfl.sync"));
        }
    }

    /// <summary>The linear layer's SGEMM keeps its 4 x 4 register block in registers and stages tiles in shared memory.</summary>
    [Test]
    public void LinearSgemmKeepsItsRegisterBlockInRegisters()
    {
        var ptx = Ptx(Cuda("Linear.Sgemm"), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
        Assert.That(ptx, Does.Not.Contain(".local"), "the 16 accumulators spill to .local");
        Assert.That(ptx, Does.Contain(".shared"));
    }

    /// <summary>
    /// The scans keep every per-lane value in registers (states live in shared memory, the warp scan is hand-unrolled),
    /// and shuffle through warp-synchronous instructions.
    /// </summary>
    [TestCaseSource(nameof(ScanKernels))]
    public void ScanHasNoLocalMemory(string name)
    {
        var k = Cuda(name);
        var ptx = Ptx(k, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
        Assert.That(ptx, Does.Not.Contain(".local"), "spills to .local");
        if (k.UsesWarpShuffles) Assert.That(ptx, Does.Contain("shfl.sync"));
    }

    [TestCaseSource(nameof(OpenCLKernels))]
    public void CompilesToOpenCL(string name)
    {
        // Kernels without warp shuffles compile for any vendor (AMD is the one DESIGN.md names); ILGPU 1.5.3 emits warp
        // shuffles on OpenCL only as Intel sub-group shuffles, so those are checked as Intel's.
        var k = KernelCatalog.ForOpenCL().Single(e => e.Name == name);
        var source = compiler.OpenCL(k.Method, k.ExplicitlyGrouped, k.Specialization,
            k.UsesWarpShuffles ? CLDeviceVendor.Intel : CLDeviceVendor.AMD);
        Assert.That(source, Does.Contain("kernel"));
        if (!k.UsesWarpShuffles) Assert.That(source, Does.Not.Contain("sub_group_shuffle"));
    }

    private static void ReportSpills(string ptx) =>
        TestContext.Out.WriteLine(ptx.Contains(".local", StringComparison.Ordinal) ? "PTX has .local (spilled locals)" : "PTX has no .local");
}
