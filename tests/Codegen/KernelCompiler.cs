using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace RouteKit.Tests;

/// <summary>
/// Compiles a kernel to PTX or OpenCL C without a device (DESIGN.md section 2), for the codegen tests: one context
/// with the algorithms library, backends built from explicit architectures and capability flags.
/// </summary>
public sealed class KernelCompiler : IDisposable
{
    private readonly Context context = Context.Create(b => b.EnableAlgorithms().Optimize(OptimizationLevel.O2));

    private static EntryPointDescription Entry(MethodInfo method, bool explicitlyGrouped) =>
        explicitlyGrouped
            ? EntryPointDescription.FromExplicitlyGroupedKernel(method)
            : EntryPointDescription.FromImplicitlyGroupedKernel(method);

    /// <summary>The PTX text of <paramref name="method"/> for one architecture and instruction set.</summary>
    public string Ptx(MethodInfo method, bool explicitlyGrouped, KernelSpecialization specialization,
        CudaArchitecture architecture, CudaInstructionSet isa)
    {
        using var backend = new PTXBackend(context, architecture, isa, null!);
        var compiled = (PTXCompiledKernel)backend.Compile(Entry(method, explicitlyGrouped), specialization);
        return compiled.PTXAssembly;
    }

    /// <summary>
    /// The OpenCL C source of <paramref name="method"/> for an OpenCL C 2.0 device of <paramref name="vendor"/> with every
    /// capability flag on. ILGPU 1.5.3 emits warp shuffles for OpenCL only as Intel's sub-group shuffles.
    /// </summary>
    public string OpenCL(MethodInfo method, bool explicitlyGrouped, KernelSpecialization specialization, CLDeviceVendor vendor)
    {
        var capabilities = new CLCapabilityContext(true, true, true, true, true);
        using var backend = new CLBackend(context, capabilities, vendor, CLCVersion.CL20);
        var compiled = (CLCompiledKernel)backend.Compile(Entry(method, explicitlyGrouped), specialization);
        return compiled.Source;
    }

    /// <inheritdoc />
    public void Dispose() => context.Dispose();
}
