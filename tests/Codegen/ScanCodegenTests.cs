using System.Reflection;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// Every scan kernel the dispatchers can pick (selective scan forward and backward in each variant, the reductions,
/// the linear recurrence) compiles to PTX for SM_80 and SM_90 and to OpenCL C 2.0, without a GPU.
/// </summary>
[TestFixture]
public sealed class ScanCodegenTests
{
    private KernelCompiler compiler = null!;

    [OneTimeSetUp]
    public void CreateCompiler() => compiler = new KernelCompiler();

    [OneTimeTearDown]
    public void DisposeCompiler() => compiler?.Dispose();

    private static IEnumerable<TestCaseData> Kernels() =>
        SelectiveScanIlgpu.AllKernels().Concat(LinearRecurrenceIlgpu.AllKernels())
            .Select(k => new TestCaseData(k.Kernel, k.ExplicitlyGrouped).SetArgDisplayNames(k.Name));

    private static KernelSpecialization Specialization(bool explicitlyGrouped) =>
        explicitlyGrouped ? SelectiveScanIlgpu.Specialization : KernelSpecialization.Empty;

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtxSm80(MethodInfo method, bool explicitlyGrouped)
    {
        var ptx = compiler.Ptx(method, explicitlyGrouped, Specialization(explicitlyGrouped), CudaArchitecture.SM_80, CudaInstructionSet.ISA_70);
        Assert.That(ptx, Does.Contain(".entry"));
        Assert.That(ptx, Does.Contain(".target sm_80"));
    }

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToPtxSm90(MethodInfo method, bool explicitlyGrouped)
    {
        var ptx = compiler.Ptx(method, explicitlyGrouped, Specialization(explicitlyGrouped), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
        Assert.That(ptx, Does.Contain(".entry"));
        // ILGPU 1.5.3 writes the lowest architecture with every capability the kernel uses; the driver JITs it for sm_90.
        Assert.That(ptx, Does.Match(@"\.target sm_(80|90)"));
        Assert.That(ptx, Does.Contain(".version 8.0"));
    }

    /// <summary>
    /// The scans keep every per-lane value in registers (states live in shared memory, the warp scan is hand-unrolled),
    /// and shuffle through warp-synchronous instructions.
    /// </summary>
    [TestCaseSource(nameof(Kernels))]
    public void HasNoLocalMemory(MethodInfo method, bool explicitlyGrouped)
    {
        var ptx = compiler.Ptx(method, explicitlyGrouped, Specialization(explicitlyGrouped), CudaArchitecture.SM_90, CudaInstructionSet.ISA_80);
        Assert.That(ptx, Does.Not.Contain(".local"), "spills to .local");
        if (explicitlyGrouped) Assert.That(ptx, Does.Contain("shfl.sync"));
    }

    [TestCaseSource(nameof(Kernels))]
    public void CompilesToOpenCL(MethodInfo method, bool explicitlyGrouped)
    {
        var source = compiler.OpenCL(method, explicitlyGrouped, Specialization(explicitlyGrouped));
        Assert.That(source, Does.Contain("kernel"));
    }
}
