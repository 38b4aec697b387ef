using System.Collections.Concurrent;
using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Backends.OpenCL;
using ILGPU.Runtime.OpenCL;

namespace RouteKit;

/// <summary>
/// A compute device: one backend, one ILGPU accelerator (or none, for <see cref="RouteKit.Backend.Managed"/>),
/// and the kernels compiled for it. Tensors belong to exactly one device.
/// </summary>
public sealed class Device : IDisposable
{
    /// <summary>Threads per simulated warp on <see cref="RouteKit.Backend.IlgpuCpu"/>: the CUDA warp width, so lane
    /// arithmetic and shuffles in the kernels behave exactly as on a GPU.</summary>
    internal const int SimulatedWarpSize = 32;

    /// <summary>Simulated warps per multiprocessor: allows groups of up to 256 threads, as the kernels use.</summary>
    internal const int SimulatedWarpsPerMultiprocessor = 8;

    private readonly Context? context;
    private readonly ConcurrentDictionary<string, object> kernels = new();
    private readonly Dictionary<string, MemoryBuffer1D<float, Stride1D.Dense>> workspaces = new();
    private bool disposed;

    private Device(Backend backend, string name, Context? context, Accelerator? accelerator)
    {
        Backend = backend;
        Name = name;
        this.context = context;
        Accelerator = accelerator;
    }

    /// <summary>The backend this device runs (never <see cref="RouteKit.Backend.Auto"/>).</summary>
    public Backend Backend { get; }

    /// <summary>A human-readable device name, e.g. "NVIDIA H100 80GB HBM3" or "Managed (2 threads, AVX-512)".</summary>
    public string Name { get; }

    /// <summary>The ILGPU accelerator; null on the Managed backend.</summary>
    internal Accelerator? Accelerator { get; }

    /// <summary>True when this device runs ILGPU kernels (Cuda, OpenCL, IlgpuCpu).</summary>
    internal bool IsIlgpu => Accelerator is not null;

    /// <summary>
    /// Creates a device. <see cref="RouteKit.Backend.Auto"/> reads <c>ROUTEKIT_BACKEND</c> (cuda, opencl, ilgpu-cpu,
    /// managed) and otherwise picks Cuda, then OpenCL, then Managed.
    /// </summary>
    /// <exception cref="InvalidOperationException">The requested backend has no usable device here.</exception>
    /// <exception cref="ArgumentException"><paramref name="backend"/> is not a defined <see cref="RouteKit.Backend"/>.</exception>
    public static Device Create(Backend backend = Backend.Auto)
    {
        OptionChecks.Defined(backend, nameof(backend));
        if (backend == Backend.Auto)
        {
            var env = Environment.GetEnvironmentVariable("ROUTEKIT_BACKEND");
            if (!string.IsNullOrWhiteSpace(env))
                backend = ParseBackend(env);
        }

        return backend switch
        {
            Backend.Auto => CreateAuto(),
            Backend.Managed => CreateManaged(),
            Backend.IlgpuCpu => CreateIlgpuCpu(),
            Backend.Cuda => CreateCuda() ?? throw new InvalidOperationException(
                "Backend.Cuda was requested but ILGPU found no CUDA device (is the NVIDIA driver's libcuda.so.1 present?)."),
            Backend.OpenCL => CreateOpenCL() ?? throw new InvalidOperationException(
                "Backend.OpenCL was requested but ILGPU found no OpenCL device with OpenCL C 2.0 and the generic address space."),
            _ => throw new ArgumentOutOfRangeException(nameof(backend), backend, "Unknown backend."),
        };
    }

    /// <summary>Parses the spelling used by <c>ROUTEKIT_BACKEND</c> and the command lines.</summary>
    /// <exception cref="ArgumentException">The name is not one of auto, cuda, opencl, ilgpu-cpu, managed.</exception>
    public static Backend ParseBackend(string name) => name.Trim().ToLowerInvariant() switch
    {
        "auto" => Backend.Auto,
        "cuda" => Backend.Cuda,
        "opencl" => Backend.OpenCL,
        "ilgpu-cpu" or "ilgpucpu" or "cpu-sim" => Backend.IlgpuCpu,
        "managed" => Backend.Managed,
        _ => throw new ArgumentException(
            $"Unknown backend '{name}': expected one of auto, cuda, opencl, ilgpu-cpu, managed.", nameof(name)),
    };

    /// <summary>Describes every device each backend can see on this machine, without keeping any open.</summary>
    public static IReadOnlyList<string> Describe()
    {
        var lines = new List<string> { $"managed: {ManagedName()}" };
        using (var ctx = CreateContext(b => b.CPU(CpuDeviceDescription())))
            foreach (var d in ctx.GetCPUDevices())
                lines.Add($"ilgpu-cpu: {d.Name} (simulator, warp {d.WarpSize}, max group {d.MaxNumThreadsPerGroup})");
        try
        {
            using var ctx = CreateContext(b => b.Cuda());
            var any = false;
            foreach (var d in ctx.GetCudaDevices())
            {
                any = true;
                lines.Add($"cuda: {d.Name} (sm_{(int)d.Architecture!.Value.Major}{d.Architecture.Value.Minor}, {d.MemorySize / (1L << 20):N0} MiB)");
            }
            if (!any) lines.Add("cuda: none found");
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or EntryPointNotFoundException)
        {
            lines.Add($"cuda: unavailable ({e.GetType().Name}: {e.Message})");
        }
        try
        {
            using var ctx = CreateContext(b => b.OpenCL(static _ => true));
            var any = false;
            foreach (var d in ctx.GetCLDevices())
            {
                any = true;
                var usable = IsUsableOpenCL(d) ? "usable" : "not usable: needs OpenCL C 2.0 and the generic address space";
                lines.Add($"opencl: {d.Name} ({d.Vendor}, {d.CVersion}; {usable})");
            }
            if (!any) lines.Add("opencl: none found");
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or EntryPointNotFoundException)
        {
            lines.Add($"opencl: unavailable ({e.GetType().Name}: {e.Message})");
        }
        return lines;
    }

    private long deviceAllocations, hostReads;

    /// <summary>Device buffers this device has allocated so far (tensors, workspaces, flags), for tests of the
    /// "no allocation inside a training step" rule.</summary>
    internal long DeviceAllocations => Interlocked.Read(ref deviceAllocations);

    /// <summary>Device-to-host reads so far (tensor reads, check flags, a step's Finish), for the same tests.</summary>
    internal long HostReads => Interlocked.Read(ref hostReads);

    internal void CountAllocation() => Interlocked.Increment(ref deviceAllocations);

    internal void CountRead() => Interlocked.Increment(ref hostReads);

    private TrainingStep? step;      // reused by every BeginStep, so a step allocates nothing
    private TrainingStep? activeStep;

    /// <summary>The active training step, or null (ops defer their finiteness checks into it).</summary>
    internal TrainingStep? ActiveStep => activeStep;

    /// <summary>
    /// Begins a training step: until it is finished or disposed, ops on this device defer their NaN/infinity input
    /// checks into one device-resident flag array instead of reading each back (see <see cref="TrainingStep"/>). One
    /// step object is reused per device, so a step allocates nothing after the first.
    /// </summary>
    /// <exception cref="InvalidOperationException">A step is already active on this device.</exception>
    public TrainingStep BeginStep(StepChecks checks = StepChecks.Deferred)
    {
        ThrowIfDisposed();
        if (activeStep is not null)
            throw new InvalidOperationException("A training step is already active on this device; finish or dispose it first.");
        step ??= new TrainingStep(this);
        step.Begin(checks);
        activeStep = step;
        return step;
    }

    internal void EndStep(TrainingStep ended)
    {
        if (ReferenceEquals(activeStep, ended)) activeStep = null;
    }

    /// <summary>Blocks until every kernel launched on this device has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        Accelerator?.Synchronize();
    }

    /// <summary>A new tensor of zeros with the given shape (every dimension at least 1).</summary>
    public Tensor Zeros(params int[] shape)
    {
        ThrowIfDisposed();
        return new Tensor(this, shape, null);
    }

    /// <summary>A new tensor holding a copy of <paramref name="data"/>, whose length must equal the shape's product.</summary>
    public Tensor FromArray(float[] data, params int[] shape)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(data);
        return new Tensor(this, shape, data);
    }

    /// <summary>Bytes this device can still allocate (best effort: the driver's or the GC's figure).</summary>
    public long FreeBytes()
    {
        if (Accelerator is CudaAccelerator cuda)
        {
            try
            {
                cuda.Bind();
                return cuda.GetFreeMemory();
            }
            catch (Exception e) when (e is CudaException or InvalidOperationException)
            {
                return cuda.MemorySize;
            }
        }
        if (Accelerator is not null and not CPUAccelerator)
            return Accelerator.MemorySize;
        var info = GC.GetGCMemoryInfo();
        return Math.Max(0, info.TotalAvailableMemoryBytes - GC.GetTotalMemory(false));
    }

    /// <summary>Returns the cached kernel for <paramref name="key"/>, compiling it on first use.</summary>
    internal T GetKernel<T>(string key, Func<Accelerator, T> load) where T : class
    {
        ThrowIfDisposed();
        var accelerator = Accelerator ?? throw new InvalidOperationException("The Managed backend has no ILGPU kernels.");
        // The factory-argument overload: no closure is allocated on the cached path (every op calls this every step).
        return (T)kernels.GetOrAdd(key, static (_, s) => s.load(s.accelerator), (load, accelerator));
    }

    /// <summary>
    /// A scratch buffer of at least <paramref name="length"/> floats, named by its user (e.g. "attention.keys"), that
    /// only grows: repeated calls of an op allocate nothing once the largest shape has been seen. Its contents are
    /// undefined on return; an op must not expect them to survive another op's call. The view stays valid until the
    /// next request for the same name (which may replace the buffer), so an op asks for each name once per call.
    /// </summary>
    internal ArrayView1D<float, Stride1D.Dense> Workspace(string name, long length)
    {
        ThrowIfDisposed();
        var accelerator = Accelerator ?? throw new InvalidOperationException("The Managed backend has no device workspace.");
        length = Math.Max(1, length);
        lock (workspaces)
        {
            if (workspaces.TryGetValue(name, out var buffer) && buffer.Length >= length)
                return buffer.View.SubView(0, length);
            var size = length;
            if (buffer is not null)
            {
                // Grow by at least half again, so a slowly growing shape reallocates O(log) times.
                size = Math.Max(length, buffer.Length + buffer.Length / 2);
                // Kernels queued earlier may still read the old buffer.
                accelerator.Synchronize();
                buffer.Dispose();
                workspaces.Remove(name);
            }
            try
            {
                buffer = accelerator.Allocate1D<float>(size);
                CountAllocation();
            }
            catch (Exception e) when (e is OutOfMemoryException or AcceleratorException or InvalidOperationException)
            {
                throw new DeviceOutOfMemoryException(Name, size * sizeof(float), FreeBytes(), e);
            }
            workspaces[name] = buffer;
            return buffer.View.SubView(0, length);
        }
    }

    private readonly Dictionary<string, float[]> constantsOnHost = new();
    private MemoryBuffer1D<int, Stride1D.Dense>? passFlag;

    /// <summary>A one-element device flag that always holds int.MaxValue ("no check failed"), for kernels that skip
    /// work after a failed check of a training step when called outside one.</summary>
    internal ArrayView1D<int, Stride1D.Dense> PassFlag
    {
        get
        {
            lock (constantsOnHost)
                if (passFlag is null)
                {
                    passFlag = Accelerator!.Allocate1D(new[] { int.MaxValue });
                    CountAllocation();
                }
            return passFlag.View;
        }
    }

    /// <summary>
    /// A small constant array (e.g. per-head slopes) on the device under <paramref name="name"/>: uploaded when its
    /// contents differ from the last upload under that name, otherwise reused with no copy. The view stays valid until
    /// the next call for the same name with other contents or length.
    /// </summary>
    internal ArrayView1D<float, Stride1D.Dense> Constants(string name, float[] values)
    {
        var view = Workspace(name, values.Length);
        lock (constantsOnHost)
        {
            if (constantsOnHost.TryGetValue(name, out var last) && last.AsSpan().SequenceEqual(values)) return view;
            view.BaseView.CopyFromCPU(values.AsSpan());
            constantsOnHost[name] = (float[])values.Clone();
        }
        return view;
    }

    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);

    /// <summary>Releases the accelerator and its compiled kernels. Tensors of this device must be disposed first.</summary>
    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        step?.Free();
        passFlag?.Dispose();
        kernels.Clear();
        lock (workspaces)
        {
            foreach (var buffer in workspaces.Values) buffer.Dispose();
            workspaces.Clear();
        }
        Accelerator?.Dispose();
        context?.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Backend}: {Name}";

    private static Device CreateAuto() => CreateCuda() ?? CreateOpenCL() ?? CreateManaged();

    private static Device CreateManaged() => new(Backend.Managed, ManagedName(), null, null);

    private static string ManagedName()
    {
        var isa = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated ? "AVX-512"
            : System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated ? "AVX2" : "scalar";
        return $"Managed ({Environment.ProcessorCount} threads, {isa})";
    }

    private static CPUDevice CpuDeviceDescription() =>
        new(SimulatedWarpSize, SimulatedWarpsPerMultiprocessor, Math.Max(1, Environment.ProcessorCount));

    private static Device CreateIlgpuCpu()
    {
        var ctx = CreateContext(b => b.CPU(CpuDeviceDescription()));
        var acc = ctx.CreateCPUAccelerator(0);
        return new Device(Backend.IlgpuCpu, $"ILGPU CPU simulator ({acc.NumMultiprocessors} multiprocessors, warp {acc.WarpSize})", ctx, acc);
    }

    private static Device? CreateCuda()
    {
        Context? ctx = null;
        try
        {
            ctx = CreateContext(b => b.Cuda());
            var devices = ctx.GetCudaDevices();
            if (devices.Count == 0)
            {
                ctx.Dispose();
                return null;
            }
            var acc = ctx.CreateCudaAccelerator(0);
            return new Device(Backend.Cuda, acc.Name, ctx, acc);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or EntryPointNotFoundException or CudaException)
        {
            ctx?.Dispose();
            return null;
        }
    }

    private static Device? CreateOpenCL()
    {
        Context? ctx = null;
        try
        {
            ctx = CreateContext(b => b.OpenCL(IsUsableOpenCL));
            var devices = ctx.GetCLDevices();
            if (devices.Count == 0)
            {
                ctx.Dispose();
                return null;
            }
            var acc = ctx.CreateCLAccelerator(0);
            return new Device(Backend.OpenCL, acc.Name, ctx, acc);
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or InvalidOperationException or EntryPointNotFoundException or CLException)
        {
            ctx?.Dispose();
            return null;
        }
    }

    // PoCL 3.x and NVIDIA's OpenCL driver lack the generic address space ILGPU's OpenCL backend emits.
    private static bool IsUsableOpenCL(CLDevice d) =>
        d.CVersion >= CLCVersion.CL20 && d.Capabilities.GenericAddressSpace;

    private static Context CreateContext(Action<Context.Builder> configure)
    {
        RegisterNativeResolver();
        return Context.Create(b =>
        {
            configure(b);
            b.EnableAlgorithms();
            b.Optimize(OptimizationLevel.O2);
            // Profiling markers let routekit-perf time kernels with device-side timestamps (no JIT, no transfers);
            // a marker costs one event, and none is recorded unless a caller asks for one.
            b.Profiling();
        });
    }

    private static int resolverRegistered;

    // On Linux the OpenCL loader ships as libOpenCL.so.1 (no unversioned link without -dev packages).
    private static void RegisterNativeResolver()
    {
        if (Interlocked.Exchange(ref resolverRegistered, 1) != 0) return;
        NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, static (name, assembly, path) =>
        {
            if (!OperatingSystem.IsLinux()) return IntPtr.Zero;
            string? candidate = name.Contains("OpenCL", StringComparison.OrdinalIgnoreCase) ? "libOpenCL.so.1"
                : name.Contains("cuda", StringComparison.OrdinalIgnoreCase) && !name.Contains("nvvm", StringComparison.OrdinalIgnoreCase) ? "libcuda.so.1"
                : null;
            if (candidate is not null && NativeLibrary.TryLoad(candidate, assembly, path, out var handle))
                return handle;
            return IntPtr.Zero;
        });
    }
}
