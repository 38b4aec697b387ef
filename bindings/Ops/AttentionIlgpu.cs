// Attention on ILGPU accelerators (Cuda, OpenCL, IlgpuCpu): the launcher and the one dispatcher from a resolved
// AttentionParams to the compile-time kernel variants of kernels/Attention/.
// Kernels: AttentionKeys.PrepareKernel; version 1: AttentionForward.TiledKernel, AttentionBackward.QueryKernel + KeyKernel;
// version 2: AttentionForward.RegisterTiledKernel, AttentionBackward.TiledQueryKernel + TiledKeyKernel. The version
// pair comes from AttentionParams.KernelVariant (the internal AttentionOptions.KernelVariant; default 1).
// Time them with `routekit-perf attention --variant N`.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim.
//
// Launch configuration (one place, FlashAttention's launch templates):
//   T lanes per row = smallest power of two with 8 T >= D (D <= 8 -> 1, ..., D <= 256 -> 32), <= warp size for shuffles;
//   group = min(rows T, 128) threads rounded up to the warp size (small problems keep the simulator's groups small);
//   row reduction = warp shuffles on Cuda and the CPU simulator, a shared-memory sum on OpenCL (see
//   GroupSharedReduction: ILGPU 1.5.3 has no portable sub-group shuffle there);
//   stream tile = min(64, 4096 / 8T) rows, so the two shared tiles take 2 * 4 * 8T * tile bytes:
//   8T = 8, 16, 32 -> 4, 8, 16 KB; 8T = 64, 128, 256 -> 32 KB (all under the 48 KB that needs no driver opt-in).
// Version 2 (register tiles of 2 rows per thread): group = min(ceil(rows / 2) T, 32 T for T <= 2, else 128) threads
//   rounded up to max(warp, T), R = 2 threads / T <= 64 rows per group (with a warp of at most 32); key tile of the
//   forward min(64, 2048 / 8T), query/key tile of the backward min(32, 1024 / 8T), rows 8T + 1 floats apart, so the
//   q, k', v, score and statistics buffers stay under 43 KB with warps of at most 32 (44 KB with 64); see
//   RegisterTiledSharedFloats, TiledQuerySharedFloats and TiledKeySharedFloats.
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>How a row's lanes sum their partial products (kernels/Attention/AttentionCommon.cs).</summary>
internal enum SegmentReduction
{
    /// <summary>Warp shuffles; needs T &lt;= warp size.</summary>
    WarpShuffle,
    /// <summary>Shared memory between group barriers; any warp or sub-group size.</summary>
    GroupShared,
}

internal static class AttentionIlgpu
{
    /// <summary>Largest group the launcher asks for (4 warps of 32).</summary>
    internal const int MaxGroupThreads = 128;

    /// <summary>Floats in one shared-memory tile (16 KB); two tiles per group.</summary>
    private const int TileFloats = 4096;

    private const int MaxStreamTile = 64;

    private static readonly Type[] LaneTypes =
        [typeof(Lanes1), typeof(Lanes2), typeof(Lanes4), typeof(Lanes8), typeof(Lanes16), typeof(Lanes32)];

    private static readonly Type[] ScoreTypes = [typeof(DotScore), typeof(DistanceScore)];

    /// <summary>Lanes per row for head dimension <paramref name="d"/>: each lane owns at most 8 dimensions.</summary>
    internal static int LanesFor(int d)
    {
        var lanes = 1;
        while (8 * lanes < d) lanes *= 2;
        return lanes;
    }

    /// <summary>Rows of q/dO or k'/v streamed through shared memory per step.</summary>
    internal static int StreamTileFor(int lanes) => Math.Min(MaxStreamTile, TileFloats / (8 * lanes));

    /// <summary>Dynamic shared memory of one group in floats: two [tile, 8T] tiles.</summary>
    internal static int SharedFloatsFor(int lanes) => 2 * StreamTileFor(lanes) * 8 * lanes;

    /// <summary>The row reduction the dispatcher uses on <paramref name="acc"/>.</summary>
    internal static SegmentReduction ReductionFor(Accelerator acc) =>
        acc.AcceleratorType == AcceleratorType.OpenCL ? SegmentReduction.GroupShared : SegmentReduction.WarpShuffle;

    // The dispatcher: every runtime flag becomes a type argument here and nowhere else.
    internal static MethodInfo PrepareMethod(int lanes, SegmentReduction reduction) =>
        Generic(typeof(AttentionKeys), nameof(AttentionKeys.PrepareKernel), LaneType(lanes), ReductionType(reduction));

    internal static MethodInfo ForwardMethod(int lanes, Score score, bool diagnostics, SegmentReduction reduction) =>
        Generic(typeof(AttentionForward), nameof(AttentionForward.TiledKernel),
            LaneType(lanes), ScoreType(score), diagnostics ? typeof(WithDiagnostics) : typeof(NoDiagnostics),
            ReductionType(reduction));

    internal static MethodInfo BackwardQueryMethod(int lanes, Score score, SegmentReduction reduction) =>
        Generic(typeof(AttentionBackward), nameof(AttentionBackward.QueryKernel),
            LaneType(lanes), ScoreType(score), ReductionType(reduction));

    internal static MethodInfo BackwardKeyMethod(int lanes, Score score, SegmentReduction reduction) =>
        Generic(typeof(AttentionBackward), nameof(AttentionBackward.KeyKernel),
            LaneType(lanes), ScoreType(score), ReductionType(reduction));

    internal static MethodInfo RegisterTiledForwardMethod(int lanes, Score score, bool diagnostics) =>
        Generic(typeof(AttentionForward), nameof(AttentionForward.RegisterTiledKernel),
            LaneType(lanes), ScoreType(score), diagnostics ? typeof(WithDiagnostics) : typeof(NoDiagnostics));

    internal static MethodInfo TiledBackwardQueryMethod(int lanes, Score score) =>
        Generic(typeof(AttentionBackward), nameof(AttentionBackward.TiledQueryKernel), LaneType(lanes), ScoreType(score));

    internal static MethodInfo TiledBackwardKeyMethod(int lanes, Score score, SegmentReduction reduction) =>
        Generic(typeof(AttentionBackward), nameof(AttentionBackward.TiledKeyKernel),
            LaneType(lanes), ScoreType(score), ReductionType(reduction));

    /// <summary>
    /// Every kernel instantiation the dispatcher can pick with <paramref name="reduction"/>, named, for the codegen
    /// tests and the perf harness.
    /// </summary>
    internal static IEnumerable<(string Name, MethodInfo Kernel)> AllKernels(SegmentReduction reduction)
    {
        foreach (var lanes in new[] { 1, 2, 4, 8, 16, 32 })
        {
            yield return ($"PrepareKernel<T{lanes},{reduction}>", PrepareMethod(lanes, reduction));
            foreach (var score in new[] { Score.Dot, Score.Distance })
            {
                foreach (var diagnostics in new[] { false, true })
                    yield return ($"Forward.TiledKernel<T{lanes},{score},{(diagnostics ? "diag" : "nodiag")},{reduction}>",
                        ForwardMethod(lanes, score, diagnostics, reduction));
                yield return ($"Backward.QueryKernel<T{lanes},{score},{reduction}>", BackwardQueryMethod(lanes, score, reduction));
                yield return ($"Backward.KeyKernel<T{lanes},{score},{reduction}>", BackwardKeyMethod(lanes, score, reduction));
                foreach (var diagnostics in new[] { false, true })
                    yield return ($"Forward.RegisterTiledKernel<T{lanes},{score},{(diagnostics ? "diag" : "nodiag")}>",
                        RegisterTiledForwardMethod(lanes, score, diagnostics));
                yield return ($"Backward.TiledQueryKernel<T{lanes},{score}>", TiledBackwardQueryMethod(lanes, score));
                yield return ($"Backward.TiledKeyKernel<T{lanes},{score},{reduction}>", TiledBackwardKeyMethod(lanes, score, reduction));
            }
        }
    }

    /// <summary>The specialisation every attention kernel is compiled with: at most this many threads per group,
    /// which lets the PTX assembler budget registers for 128 threads instead of 1024.</summary>
    internal static KernelSpecialization Specialization(int warpSize) => new(Math.Max(MaxGroupThreads, warpSize), null);

    internal static void Forward(Device device, AttentionParams p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
        Tensor stats, AttentionDiagnostics? diagnostics) =>
        Forward(device, p, q, k, v, o, lse, stats, diagnostics, ReductionFor(device.Accelerator!));

    /// <summary>The forward with an explicit row reduction (tests run the OpenCL path on the CPU simulator).</summary>
    internal static void Forward(Device device, AttentionParams p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
        Tensor stats, AttentionDiagnostics? diagnostics, SegmentReduction reduction)
    {
        var acc = device.Accelerator!;
        var lanes = CheckLanes(acc, p, reduction);
        var (keys, _, bias) = PrepareKeys(device, p, k, lanes, reduction);
        var slopes = Slopes(device, p);
        var withDiagnostics = p.Diagnostics && diagnostics is not null;

        var lengths = KeyLengths(device, p);
        var tiled = p.KernelVariant == 2;
        var kernel = Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(
            device, tiled ? $"attention.forward.v2/{lanes}/{p.Score}/{withDiagnostics}" : $"attention.forward/{lanes}/{p.Score}/{withDiagnostics}/{reduction}",
            () => tiled ? RegisterTiledForwardMethod(lanes, p.Score, withDiagnostics) : ForwardMethod(lanes, p.Score, withDiagnostics, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        var (config, kp) = tiled
            ? TiledLaunch(acc, p, lanes, p.B * p.H, p.N, RegisterTiledKeysFor(lanes), AttentionForward.RegisterTiledSharedFloats)
            : RowLaunch(acc, p, lanes, p.B * p.H, p.N);
        kernel(config, q.View, keys, v.View, bias, slopes, lengths, o.View, lse.View, stats.View,
            withDiagnostics ? diagnostics!.Entropy.View : lse.View,
            withDiagnostics ? diagnostics!.SinkMass.View : lse.View,
            withDiagnostics ? diagnostics!.MaxProb.View : lse.View, kp);
    }

    internal static void Backward(Device device, AttentionParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor stats, Tensor dq, Tensor dk, Tensor dv) =>
        Backward(device, p, dOut, q, k, v, o, stats, dq, dk, dv, ReductionFor(device.Accelerator!));

    /// <summary>The backward with an explicit row reduction.</summary>
    internal static void Backward(Device device, AttentionParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor stats, Tensor dq, Tensor dk, Tensor dv, SegmentReduction reduction)
    {
        var acc = device.Accelerator!;
        var lanes = CheckLanes(acc, p, reduction);
        var (keys, norms, bias) = PrepareKeys(device, p, k, lanes, reduction);
        var slopes = Slopes(device, p);
        var delta = device.Workspace("attention.delta", (long)p.B * p.H * p.N); // [B, H, N]

        var lengths = KeyLengths(device, p);
        if (p.KernelVariant == 2)
        {
            TiledBackward(device, p, dOut, q, k, v, o, stats, dq, dk, dv, reduction, lanes, keys, norms, bias, slopes, delta, lengths);
            return;
        }

        var queryKernel = Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(
            device, $"attention.backward.query/{lanes}/{p.Score}/{reduction}",
            () => BackwardQueryMethod(lanes, p.Score, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        var (queryConfig, queryParams) = RowLaunch(acc, p, lanes, p.B * p.H, p.N);
        queryKernel(queryConfig, q.View, keys, v.View, bias, slopes, lengths, o.View, dOut.View, stats.View, delta, dq.View, queryParams);

        var keyKernel = Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(
            device, $"attention.backward.key/{lanes}/{p.Score}/{reduction}",
            () => BackwardKeyMethod(lanes, p.Score, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        var (keyConfig, keyParams) = RowLaunch(acc, p, lanes, p.B * p.Hkv, p.M);
        keyKernel(keyConfig, q.View, k.View, keys, v.View, bias, norms, slopes, lengths, dOut.View, stats.View, delta, dk.View, dv.View, keyParams);
    }

    // Version 2 of the backward: the register-tiled dQ kernel (writes Delta), then the register-tiled dK/dV kernel.
    private static void TiledBackward(Device device, AttentionParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor stats, Tensor dq, Tensor dk, Tensor dv, SegmentReduction reduction, int lanes, View keys, View norms, View bias,
        View slopes, View delta, View lengths)
    {
        var acc = device.Accelerator!;
        var tile = TiledBackwardTileFor(lanes);
        var queryKernel = Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(
            device, $"attention.backward.query.v2/{lanes}/{p.Score}",
            () => TiledBackwardQueryMethod(lanes, p.Score),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        var (queryConfig, queryParams) = TiledLaunch(acc, p, lanes, p.B * p.H, p.N, tile, AttentionBackward.TiledQuerySharedFloats);
        queryKernel(queryConfig, q.View, keys, v.View, bias, slopes, lengths, o.View, dOut.View, stats.View, delta, dq.View, queryParams);

        var keyKernel = Load<Action<KernelConfig, View, View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(
            device, $"attention.backward.key.v2/{lanes}/{p.Score}/{reduction}",
            () => TiledBackwardKeyMethod(lanes, p.Score, reduction),
            static (a, m, s) => a.LoadStreamKernel(
                m.CreateDelegate<Action<View, View, View, View, View, View, View, View, View, View, View, View, View, AttentionKernelParams>>(), s));
        var (keyConfig, keyParams) = TiledLaunch(acc, p, lanes, p.B * p.Hkv, p.M, tile, AttentionBackward.TiledKeySharedFloats);
        keyKernel(keyConfig, q.View, k.View, keys, v.View, bias, norms, slopes, lengths, dOut.View, stats.View, delta, dk.View, dv.View, keyParams);
    }

    /// <summary>Keys per shared tile of the register-tiled forward (a multiple of 4).</summary>
    internal static int RegisterTiledKeysFor(int lanes) => Math.Min(64, 2048 / (8 * lanes));

    /// <summary>Rows of the other side per shared tile of the register-tiled backward kernels (a multiple of 4).</summary>
    internal static int TiledBackwardTileFor(int lanes) => Math.Min(32, 1024 / (8 * lanes));

    /// <summary>
    /// Threads and rows R = 2 threads / T of a register-tiled group: enough thread pairs for the rows, at most 32 T
    /// threads for T &lt;= 2 and 128 otherwise (R &lt;= 64 with warps of at most 32), a multiple of the warp and of T.
    /// </summary>
    internal static (int Threads, int Rows) TiledGroupShape(Accelerator acc, int lanes, long rows)
    {
        var cap = lanes <= 2 ? 32 * lanes : MaxGroupThreads;
        var unit = Math.Max(acc.WarpSize, lanes);
        var wanted = (int)Math.Min((rows + 1) / 2 * lanes, cap);
        var threads = Math.Max(unit, (wanted + unit - 1) / unit * unit);
        if (threads > acc.MaxNumThreadsPerGroup)
            throw new NotSupportedException(
                $"Attention version 2 needs groups of {threads} threads (warp size {acc.WarpSize}); {acc.Name} allows {acc.MaxNumThreadsPerGroup}.");
        return (threads, 2 * threads / lanes);
    }

    // One group per R rows of one (batch, head) for the register-tiled kernels; sharedFloats(R, tile, T).
    private static (KernelConfig Config, AttentionKernelParams Params) TiledLaunch(
        Accelerator acc, AttentionParams p, int lanes, int heads, int rows, int tile, Func<int, int, int, int> sharedFloats)
    {
        var (threads, rowsPerGroup) = TiledGroupShape(acc, lanes, rows);
        var rowTiles = (rows + rowsPerGroup - 1) / rowsPerGroup;
        var groups = CheckGrid(acc, (long)heads * rowTiles);
        var floats = sharedFloats(rowsPerGroup, tile, lanes);
        if (floats * sizeof(float) > acc.MaxSharedMemoryPerGroup)
            throw new NotSupportedException(
                $"Attention version 2 with D = {p.D} needs {floats * sizeof(float)} bytes of shared memory per group; " +
                $"{acc.Name} offers {acc.MaxSharedMemoryPerGroup}.");
        var config = new KernelConfig(groups, threads, SharedMemoryConfig.RequestDynamic<float>(floats));
        return (config, KernelParams(p, rowTiles, tile));
    }

    /// <summary>
    /// The first row of <paramref name="stats"/> <c>[B, H, N, 2]</c> the forward cannot have written (see
    /// <see cref="AttentionStats.CheckKernel"/>), or int.MaxValue; one small kernel and one read of its flag.
    /// </summary>
    internal static int FirstBadStatsRow(Device device, AttentionParams p, Tensor stats, float minLogSum, float maxLogSum)
    {
        using var flag = device.Accelerator!.Allocate1D(new[] { int.MaxValue });
        device.CountAllocation();
        device.CountRead();
        LaunchStatsCheck(device, p, stats, minLogSum, maxLogSum, flag.View);
        return flag.GetAsArray1D()[0];
    }

    /// <summary>Launches the check into <paramref name="flag"/> (which must hold int.MaxValue) without reading it back.</summary>
    internal static void LaunchStatsCheck(Device device, AttentionParams p, Tensor stats, float minLogSum, float maxLogSum,
        ArrayView1D<int, Stride1D.Dense> flag)
    {
        var kernel = device.GetKernel("attention.statsCheck", static a =>
            a.LoadAutoGroupedStreamKernel<Index1D, View, ArrayView1D<int, Stride1D.Dense>, View, AttentionKernelParams, float, float>(
                AttentionStats.CheckKernel));
        kernel((int)((long)p.B * p.H * p.N), stats.View, flag, KeyLengths(device, p), KernelParams(p, 0, 0), minLogSum, maxLogSum);
    }

    // k' (k itself without NormalizeKeys), |k| and the Distance bias, from workspace buffers. Graph attention and the
    // depth router prepare their keys here too (the depth router as one attention batch and head over all its key rows (DepthRouterParams.KeyRows).
    internal static (View Keys, View Norms, View Bias) PrepareKeys(
        Device device, AttentionParams p, Tensor k, int lanes, SegmentReduction reduction)
    {
        var rows = (long)p.B * p.Hkv * p.M;
        var norms = device.Workspace("attention.keyNorm", rows); // [B, Hkv, M]
        var bias = device.Workspace("attention.keyBias", rows);  // [B, Hkv, M]
        if (!p.NormalizeKeys && p.Score == Score.Dot)
            return (k.View, norms, bias); // neither is read
        var keys = p.NormalizeKeys ? device.Workspace("attention.keys", rows * p.D) : bias; // [B, Hkv, M, D]
        var acc = device.Accelerator!;
        var kernel = Load<Action<KernelConfig, View, View, View, View, int, AttentionKernelParams>>(
            device, $"attention.keys/{lanes}/{reduction}", () => PrepareMethod(lanes, reduction),
            static (a, m, s) => a.LoadStreamKernel(m.CreateDelegate<Action<View, View, View, View, int, AttentionKernelParams>>(), s));
        var (threads, rowsPerGroup) = GroupShape(acc, lanes, rows);
        var groups = CheckGrid(acc, (rows + rowsPerGroup - 1) / rowsPerGroup);
        kernel(new KernelConfig(groups, threads), k.View, keys, norms, bias, p.Score == Score.Distance ? 1 : 0, KernelParams(p, 0, 0));
        return (p.NormalizeKeys ? keys : k.View, norms, bias);
    }

    // The brake slopes [H] on the device, uploaded only when they differ from the last upload (a training loop passes
    // the same slopes every step, so a step copies nothing to the device).
    internal static View Slopes(Device device, AttentionParams p) => device.Constants("attention.slopes", p.BrakeSlopes);

    // The key padding lengths [B] on the device as exact float integers (AttentionParams caps M at 2^24 when they are
    // set), uploaded only when they change, as the slopes; without a mask the kernels never read the one-element view.
    private static readonly float[] NoLengths = [0f];

    internal static View KeyLengths(Device device, AttentionParams p) =>
        p.KeyLengthsAsFloats is { } lengths ? device.Constants("attention.keyLengths", lengths) : device.Constants("attention.noKeyLengths", NoLengths);

    // One group per R rows of one (batch, head); R = threads / T.
    private static (KernelConfig Config, AttentionKernelParams Params) RowLaunch(
        Accelerator acc, AttentionParams p, int lanes, int heads, int rows)
    {
        var (threads, rowsPerGroup) = GroupShape(acc, lanes, rows);
        var rowTiles = (rows + rowsPerGroup - 1) / rowsPerGroup;
        var groups = CheckGrid(acc, (long)heads * rowTiles);
        var sharedFloats = SharedFloatsFor(lanes);
        if (sharedFloats * sizeof(float) > acc.MaxSharedMemoryPerGroup)
            throw new NotSupportedException(
                $"Attention with D = {p.D} needs {sharedFloats * sizeof(float)} bytes of shared memory per group; " +
                $"{acc.Name} offers {acc.MaxSharedMemoryPerGroup}.");
        var config = new KernelConfig(groups, threads, SharedMemoryConfig.RequestDynamic<float>(sharedFloats));
        return (config, KernelParams(p, rowTiles, StreamTileFor(lanes)));
    }

    internal static (int Threads, int RowsPerGroup) GroupShape(Accelerator acc, int lanes, long rows)
    {
        var warp = acc.WarpSize;
        var wanted = (int)Math.Min(rows * lanes, MaxGroupThreads);
        var threads = Math.Max(warp, (wanted + warp - 1) / warp * warp);
        if (threads > acc.MaxNumThreadsPerGroup)
            throw new NotSupportedException(
                $"Attention needs groups of {threads} threads (warp size {warp}); {acc.Name} allows {acc.MaxNumThreadsPerGroup}.");
        return (threads, threads / lanes);
    }

    internal static int CheckGrid(Accelerator acc, long groups)
    {
        if (groups > acc.MaxGridSize.X)
            throw new NotSupportedException(
                $"Attention needs {groups:N0} groups in one grid dimension; {acc.Name} allows {acc.MaxGridSize.X:N0}.");
        return (int)groups;
    }

    // Row segments must sit inside one warp for the shuffle reductions; the shared-memory one only needs the
    // warp-rounded group to fit its scratch.
    internal static int CheckLanes(Accelerator acc, AttentionParams p, SegmentReduction reduction)
    {
        var lanes = LanesFor(p.D);
        var warp = acc.WarpSize;
        if (reduction == SegmentReduction.GroupShared)
        {
            if (warp < 1 || (warp & (warp - 1)) != 0 || Math.Max(warp, MaxGroupThreads) > GroupSharedReduction.MaxGroupThreads)
                throw new NotSupportedException(
                    $"Attention on {acc.Name} needs a power-of-two warp (sub-group) size of at most " +
                    $"{GroupSharedReduction.MaxGroupThreads}; the device reports {warp}.");
            return lanes;
        }
        if (warp < 1 || (warp & (warp - 1)) != 0 || lanes > warp)
            throw new NotSupportedException(
                $"Attention with head dimension D = {p.D} serves each row with {lanes} lanes of one warp, but {acc.Name} " +
                $"has warp (sub-group) size {warp}; it needs a power-of-two warp size of at least {lanes}.");
        return lanes;
    }

    internal static AttentionKernelParams KernelParams(AttentionParams p, int rowTiles, int streamTile) => new()
    {
        B = p.B, H = p.H, Hkv = p.Hkv, N = p.N, M = p.M, D = p.D,
        // |i' - j| < N + M always, so a wider window is no window; clamping keeps i' + W from overflowing.
        Group = p.Group, Offset = p.Offset, Causal = p.Causal ? 1 : 0, Window = p.Window < 0 ? -1 : Math.Min(p.Window, p.N + p.M),
        SinkTokens = p.SinkTokens, NormalizeKeys = p.NormalizeKeys ? 1 : 0, KeyPadding = p.HasKeyLengths ? 1 : 0,
        RowTiles = rowTiles, StreamTile = streamTile,
        Scale = p.Scale, KeyRadius = p.KeyRadius, KeyEpsilon = p.KeyEpsilon,
    };

    // Compiles on first use per device; the key names the variant so later calls skip the reflection.
    internal static T Load<T>(Device device, string key, Func<MethodInfo> method,
        Func<Accelerator, MethodInfo, KernelSpecialization, T> load) where T : class =>
        device.GetKernel(key, acc => load(acc, method(), Specialization(acc.WarpSize)));

    internal static Type LaneType(int lanes) => lanes switch
    {
        1 => LaneTypes[0],
        2 => LaneTypes[1],
        4 => LaneTypes[2],
        8 => LaneTypes[3],
        16 => LaneTypes[4],
        32 => LaneTypes[5],
        _ => throw new ArgumentOutOfRangeException(nameof(lanes), lanes, "Lanes per row must be a power of two from 1 to 32."),
    };

    internal static Type ReductionType(SegmentReduction reduction) => reduction switch
    {
        SegmentReduction.WarpShuffle => typeof(WarpShuffleReduction),
        SegmentReduction.GroupShared => typeof(GroupSharedReduction),
        _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "Unknown reduction."),
    };

    internal static Type ScoreType(Score score) => score switch
    {
        Score.Dot => ScoreTypes[0],
        Score.Distance => ScoreTypes[1],
        _ => throw new ArgumentOutOfRangeException(nameof(score), score, "Unknown score."),
    };

    internal static MethodInfo Generic(Type owner, string name, params Type[] typeArguments) =>
        owner.GetMethod(name, BindingFlags.Public | BindingFlags.Static)!.MakeGenericMethod(typeArguments);
}
