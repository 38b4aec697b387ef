namespace RouteKit;

/// <summary>Where a <see cref="Device"/> runs its kernels (DESIGN.md section 2).</summary>
public enum Backend
{
    /// <summary>Cuda, then OpenCL, then Managed; overridden by the <c>ROUTEKIT_BACKEND</c> environment variable.</summary>
    Auto = 0,
    /// <summary>ILGPU's CUDA accelerator (PTX): the real target.</summary>
    Cuda,
    /// <summary>ILGPU's OpenCL accelerator; needs OpenCL C 2.0 with the generic address space.</summary>
    OpenCL,
    /// <summary>ILGPU's CPU simulator: the exact GPU kernels, one OS thread per GPU thread; small shapes only.</summary>
    IlgpuCpu,
    /// <summary>Plain C#: SIMD and Parallel.For, fused, the fast CPU path.</summary>
    Managed,
}
