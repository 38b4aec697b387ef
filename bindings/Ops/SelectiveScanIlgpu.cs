// Selective scan on ILGPU accelerators (Cuda, OpenCL, IlgpuCpu): the launcher and the one dispatcher from a resolved
// SelectiveScanParams to the compile-time kernel variants of kernels/Scan/.
// Kernels: SelectiveScanForward.ChunkedKernel; SelectiveScanBackward.ChunkedKernel, ReduceChannelsKernel,
// ReduceBatchKernel. Time them with `routekit-perf scan --variant N`.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups; Chunks = ceil(L / 32).
//
// Launch configuration (one place): one warp per (batch, channel) row, 4 warps (128 threads) per group, so
// ceil(B Dc / 4) groups; static shared memory 4 x 256 floats (forward) or 2 x 4 x 256 floats (backward).
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Scan;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

internal static class SelectiveScanIlgpu
{
    /// <summary>Threads per group: 4 warps of 32.</summary>
    internal const int GroupThreads = SelectiveScanForward.WarpsPerGroup * WarpScan.ChunkLength;

    // The dispatcher: every runtime flag becomes a type argument here and nowhere else.
    internal static MethodInfo ForwardMethod(bool softplus) =>
        Generic(typeof(SelectiveScanForward), nameof(SelectiveScanForward.ChunkedKernel), DeltaType(softplus), typeof(AffineScanOp));

    internal static MethodInfo BackwardMethod(bool softplus, bool deterministic) =>
        Generic(typeof(SelectiveScanBackward), nameof(SelectiveScanBackward.ChunkedKernel), DeltaType(softplus),
            typeof(AffineScanOp), deterministic ? typeof(PartialSink) : typeof(AtomicSink));

    /// <summary>Every kernel instantiation the dispatcher can pick, named, for the codegen tests and the perf harness.</summary>
    internal static IEnumerable<(string Name, MethodInfo Kernel, bool ExplicitlyGrouped)> AllKernels()
    {
        foreach (var softplus in new[] { false, true })
        {
            var act = softplus ? "softplus" : "identity";
            yield return ($"SelectiveScanForward.ChunkedKernel<{act}>", ForwardMethod(softplus), true);
            foreach (var deterministic in new[] { true, false })
                yield return ($"SelectiveScanBackward.ChunkedKernel<{act},{(deterministic ? "partials" : "atomics")}>",
                    BackwardMethod(softplus, deterministic), true);
        }
        yield return ("SelectiveScanBackward.ReduceChannelsKernel",
            typeof(SelectiveScanBackward).GetMethod(nameof(SelectiveScanBackward.ReduceChannelsKernel))!, false);
        yield return ("SelectiveScanBackward.ReduceBatchKernel",
            typeof(SelectiveScanBackward).GetMethod(nameof(SelectiveScanBackward.ReduceBatchKernel))!, false);
    }

    /// <summary>The specialisation the row kernels are compiled with: groups of at most 128 threads.</summary>
    internal static KernelSpecialization Specialization => new(GroupThreads, null);

    internal static void Forward(Device device, SelectiveScanParams p, SelectiveScanInputs inputs, SelectiveScanOutput result)
    {
        var acc = device.Accelerator!;
        CheckDevice(acc);
        var kernel = Load<Action<KernelConfig, SelectiveScanViews, SelectiveScanForwardViews, ScanKernelParams>>(
            device, ForwardMethod(p.DeltaSoftplus),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<SelectiveScanViews, SelectiveScanForwardViews, ScanKernelParams>>(), s));
        var outputs = new SelectiveScanForwardViews
        {
            Output = result.Output.View,
            PreGate = (result.PreGate ?? result.Output).View,
            LastState = result.LastState.View,
            ChunkStates = result.ChunkStates.View,
        };
        kernel(RowConfig(acc, p.B * p.Dc), Views(inputs), outputs, p.KernelParams);
    }

    internal static void Backward(Device device, SelectiveScanParams p, SelectiveScanInputs inputs, Tensor dOut,
        SelectiveScanOutput forward, SelectiveScanGradients result)
    {
        var acc = device.Accelerator!;
        CheckDevice(acc);
        var rows = (long)p.B * p.Dc;
        var stateTimes = (long)p.Nst * p.L;
        var rowPartials = device.Workspace("scan.rowPartials", rows * (p.Nst + 2)); // [B, Dc, Nst + 2]
        View targetB, targetC;
        if (p.Deterministic)
        {
            targetB = device.Workspace("scan.partialB", rows * stateTimes); // [B, Dc, Nst, L]
            targetC = device.Workspace("scan.partialC", rows * stateTimes); // [B, Dc, Nst, L]
        }
        else
        {
            result.DB.View.MemSetToZero();
            result.DC.View.MemSetToZero();
            (targetB, targetC) = (result.DB.View, result.DC.View);
        }
        var grads = new SelectiveScanBackwardViews
        {
            DOut = dOut.View,
            PreGate = (forward.PreGate ?? dOut).View,
            ChunkStates = forward.ChunkStates.View,
            DU = result.DU.View,
            DDelta = result.DDelta.View,
            DZ = (result.DZ ?? result.DU).View,
            DBTarget = targetB,
            DCTarget = targetC,
            RowPartials = rowPartials,
            DInitialState = (result.DInitialState ?? result.DA).View,
        };
        var kernel = Load<Action<KernelConfig, SelectiveScanViews, SelectiveScanBackwardViews, ScanKernelParams>>(
            device, BackwardMethod(p.DeltaSoftplus, p.Deterministic),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<SelectiveScanViews, SelectiveScanBackwardViews, ScanKernelParams>>(), s));
        kernel(RowConfig(acc, p.B * p.Dc), Views(inputs), grads, p.KernelParams);

        if (p.Deterministic)
        {
            var channels = device.GetKernel("scan:SelectiveScanBackward.ReduceChannelsKernel", static a =>
                a.LoadAutoGroupedStreamKernel<Index1D, View, View, int, int>(SelectiveScanBackward.ReduceChannelsKernel));
            channels(result.DB.Length, targetB, result.DB.View, p.ChannelsPerGroup, (int)stateTimes);
            channels(result.DC.Length, targetC, result.DC.View, p.ChannelsPerGroup, (int)stateTimes);
        }
        var batch = device.GetKernel("scan:SelectiveScanBackward.ReduceBatchKernel", static a =>
            a.LoadAutoGroupedStreamKernel<Index1D, View, View, int, int, int, int, int>(SelectiveScanBackward.ReduceBatchKernel));
        batch(result.DA.Length, rowPartials, result.DA.View, p.B, p.Dc, p.Nst, p.Nst + 2, 0);
        if (result.DD is not null) batch(p.Dc, rowPartials, result.DD.View, p.B, p.Dc, 1, p.Nst + 2, p.Nst);
        if (result.DDeltaBias is not null) batch(p.Dc, rowPartials, result.DDeltaBias.View, p.B, p.Dc, 1, p.Nst + 2, p.Nst + 1);
    }

    // Absent optional inputs point at u: the kernels read them only behind their Has* flags.
    private static SelectiveScanViews Views(SelectiveScanInputs x) => new()
    {
        U = x.U.View, Delta = x.Delta.View, A = x.A.View, B = x.B.View, C = x.C.View,
        D = (x.D ?? x.U).View, Z = (x.Z ?? x.U).View, DeltaBias = (x.DeltaBias ?? x.U).View,
        InitialState = (x.InitialState ?? x.U).View,
    };

    private static KernelConfig RowConfig(Accelerator acc, long rows)
    {
        var groups = (rows + SelectiveScanForward.WarpsPerGroup - 1) / SelectiveScanForward.WarpsPerGroup;
        if (groups > acc.MaxGridSize.X)
            throw new NotSupportedException(
                $"SelectiveScan needs {groups:N0} groups in one grid dimension; {acc.Name} allows {acc.MaxGridSize.X:N0}.");
        return new KernelConfig((int)groups, GroupThreads);
    }

    // Chunks are one time step per lane of a 32-wide warp, and the scans shuffle across exactly 32 lanes; the decay's
    // exp is evaluated in float64 (kernels/Scan/ScanCommon.cs), which an OpenCL device must support.
    internal static void CheckDevice(Accelerator acc)
    {
        if (acc.Capabilities is ILGPU.Runtime.OpenCL.CLCapabilityContext { Float64: false })
            throw new NotSupportedException(
                $"The scan kernels evaluate exp in float64; {acc.Name} lacks OpenCL's cl_khr_fp64.");
        // ILGPU 1.5.3 emits warp shuffles on OpenCL only as Intel sub-group shuffles.
        if (acc is ILGPU.Runtime.OpenCL.CLAccelerator cl && cl.Vendor != ILGPU.Runtime.OpenCL.CLDeviceVendor.Intel)
            throw new NotSupportedException(
                $"The scan kernels use warp shuffles, which ILGPU 1.5.3 emits on OpenCL only for Intel devices; {acc.Name} is {cl.Vendor}.");
        if (acc.WarpSize != WarpScan.ChunkLength || acc.MaxNumThreadsPerGroup < GroupThreads)
            throw new NotSupportedException(
                $"The scan kernels need a warp (sub-group) of exactly {WarpScan.ChunkLength} lanes and groups of " +
                $"{GroupThreads} threads; {acc.Name} has warp size {acc.WarpSize} and at most {acc.MaxNumThreadsPerGroup} threads per group.");
    }

    private static T Load<T>(Device device, MethodInfo method, Func<Accelerator, MethodInfo, KernelSpecialization, T> load)
        where T : class =>
        device.GetKernel($"scan:{method.DeclaringType!.Name}.{method}", acc => load(acc, method, Specialization));

    private static Type DeltaType(bool softplus) => softplus ? typeof(DeltaSoftplus) : typeof(DeltaIdentity);

    private static MethodInfo Generic(Type owner, string name, params Type[] typeArguments) =>
        owner.GetMethod(name, BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(typeArguments);
}
