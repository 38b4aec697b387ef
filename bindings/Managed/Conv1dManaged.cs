// Causal depthwise Conv1d on the Managed backend. Shapes: B batch, T time, C channels, K kernel width; x, y, dy, dx
// [B, T, C] (channels contiguous); weight, dweight [C, K]; bias, dbias [C]. The maths and the order of every sum are
// those of kernels/Training/Conv1dKernels.cs and bindings/Reference/Conv1dReference.cs.
//
// SIMD across channels, written once over the width strategies of SimdWidth.cs (shared with Sgemm.cs and
// FeatureNormsManaged.cs) and run at the widest accelerated width: Vector512 on AVX-512, Vector256 on AVX2, Vector128
// on SSE and Arm NEON (never an emulated width; 128 where nothing is accelerated, as Sgemm does). The weight is
// transposed once per call into [K, C] (in a per-thread scratch kept between calls, ThreadScratch.cs) so each tap is
// one contiguous vector load across channels. The channel tail shorter than a vector is a scalar multiply then add (never
// MathF.FusedMultiplyAdd, which is emulated in software where FMA is off, e.g. DOTNET_EnableAVX2=0).
//
// Versions (time with `routekit-perf conv1d`):
//   1  (2026-12-02) forward and dx: Parallel.For over blocks of time rows of one batch (about RowElements floats
//      each), each row a pass over channel vectors with the K taps accumulated in one register from bias (forward)
//      or 0 (dx); the K rows a row reads are the K rows just before it, so they come from cache and x is streamed
//      from memory once. dweight/dbias: Parallel.For over blocks of ChannelsPerTask channels; each task keeps
//      (K + 1) x ChannelsPerTask float accumulators (in L1) and walks b, then t, in order, so each (c, j) is summed in
//      the reference's order by one thread (deterministic, no atomics). Fewer than ChannelsPerTask channels run as one task.
//   2  (2026-12-03) no allocation per call (issue 11): ManagedParallel.For over struct bodies instead of Parallel.For
//      and closures, and the transposed weight and every task's accumulators in the calling thread's ThreadScratch
//      instead of ArrayPool rentals (one per task, on the workers). Same blocks and sums in the same order: results
//      bitwise equal to version 1. Before: ~2.1 KB per forward, ~3.7-4.2 KB per backward ([2, 512, 128], K = 4).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class Conv1dManaged
{
    /// <summary>Floats of y (or dx) per forward (or dx) task, and the size under which a call runs on the caller alone.</summary>
    private const int RowElements = 1 << 15;

    /// <summary>Channels per dweight/dbias task: a multiple of every vector width.</summary>
    private const int ChannelsPerTask = 64;

    /// <summary>The vector width in bits this machine runs at: the widest hardware-accelerated one (128 at least).</summary>
    internal static readonly int VectorBits = Math.Max(SimdWidth.WidestBits, 128);

    // This thread's scratch: the [K, C] transposed weight, then (backward) the dweight/dbias accumulators of every task.
    [ThreadStatic] private static ThreadScratch? scratch;

    /// <summary>y = conv(x) + bias; <paramref name="bias"/> empty: no bias. Overwrites y.</summary>
    public static void Forward(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y,
        int batch, int time, int channels, int width, int vectorBits = 0)
    {
        var transposed = (scratch ??= new ThreadScratch()).Ensure((long)width * channels);
        Transpose(weight, transposed, channels, width);
        fixed (float* px = x, pb = bias, py = y)
        {
            var job = new Job(px, transposed, pb, py, batch, time, channels, width, bias.IsEmpty ? 0 : 1);
            RowBlocks(job, vectorBits == 0 ? SimdWidth.ActiveBits : vectorBits, input: false);
        }
    }

    /// <summary>
    /// dx, dweight and dbias (<paramref name="dbias"/> empty: no bias) from dy, x and weight. Overwrites all three.
    /// </summary>
    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> weight,
        Span<float> dx, Span<float> dweight, Span<float> dbias, int batch, int time, int channels, int width, int vectorBits = 0)
    {
        var bits = vectorBits == 0 ? SimdWidth.ActiveBits : vectorBits;
        var tasks = (channels + ChannelsPerTask - 1) / ChannelsPerTask;
        var transposedLength = (long)width * channels;
        var transposed = (scratch ??= new ThreadScratch()).Ensure(transposedLength + (long)tasks * (width + 1) * ChannelsPerTask);
        Transpose(weight, transposed, channels, width);
        fixed (float* pdy = dy, px = x, pdx = dx, pdw = dweight, pdb = dbias)
        {
            RowBlocks(new Job(pdy, transposed, null, pdx, batch, time, channels, width, 0), bits, input: true);
            var parameters = new ParameterBlocks
            {
                Job = new Job(pdy, px, pdb, pdw, batch, time, channels, width, dbias.IsEmpty ? 0 : 1),
                Accumulators = transposed + transposedLength,
                Bits = bits,
            };
            if (tasks == 1 || (long)batch * time * channels <= RowElements)
                for (var k = 0; k < tasks; k++) parameters.Run(k);
            else
                ManagedParallel.For(tasks, ref parameters);
        }
    }

    // weight [C, K] -> transposed [K, C].
    private static void Transpose(ReadOnlySpan<float> weight, float* transposed, int channels, int width)
    {
        for (var c = 0; c < channels; c++)
        for (var j = 0; j < width; j++)
            transposed[(long)j * channels + c] = weight[c * width + j];
    }

    // One call's pinned pointers and sizes (A = x or dy, W = the [K, C] weight or x, Bias = bias or dbias, Out = y, dx or dweight).
    private readonly struct Job(float* a, float* w, float* bias, float* output, int batch, int time, int channels, int width, int hasBias)
    {
        public readonly nint A = (nint)a, W = (nint)w, Bias = (nint)bias, Out = (nint)output;
        public readonly int Batch = batch, Time = time, Channels = channels, Width = width, HasBias = hasBias;
    }

    // Forward (input false) or dx (input true) over blocks of rows of one batch each.
    private static void RowBlocks(Job job, int bits, bool input)
    {
        var rowsPerTask = Math.Max(1, RowElements / job.Channels);
        var blocksPerBatch = (job.Time + rowsPerTask - 1) / rowsPerTask;
        var tasks = job.Batch * blocksPerBatch;
        var body = new RowBlock { Job = job, RowsPerTask = rowsPerTask, BlocksPerBatch = blocksPerBatch, Bits = bits, Input = input };
        if (tasks == 1 || (long)job.Batch * job.Time * job.Channels <= RowElements)
            for (var k = 0; k < tasks; k++) body.Run(k);
        else
            ManagedParallel.For(tasks, ref body);
    }

    // Block k of RowBlocks: rows t0..t1-1 of batch k / BlocksPerBatch.
    private struct RowBlock : IParallelBody
    {
        public Job Job;
        public int RowsPerTask, BlocksPerBatch, Bits;
        public bool Input;

        public readonly void Run(int k)
        {
            var b = k / BlocksPerBatch;
            var t0 = k % BlocksPerBatch * RowsPerTask;
            var t1 = Math.Min(Job.Time, t0 + RowsPerTask);
            switch (Bits)
            {
                case 512: Rows<Simd512, Vector512<float>>(Job, b, t0, t1, Input); break;
                case 256: Rows<Simd256, Vector256<float>>(Job, b, t0, t1, Input); break;
                default: Rows<Simd128, Vector128<float>>(Job, b, t0, t1, Input); break;
            }
        }
    }

    // Task k of the dweight/dbias pass: channels k ChannelsPerTask onwards, its accumulators (K + 1) x ChannelsPerTask
    // floats at Accumulators + k (K + 1) ChannelsPerTask.
    private struct ParameterBlocks : IParallelBody
    {
        public Job Job;
        public float* Accumulators;
        public int Bits;

        public readonly void Run(int task)
        {
            var acc = Accumulators + (long)task * (Job.Width + 1) * ChannelsPerTask;
            switch (Bits)
            {
                case 512: Parameters<Simd512, Vector512<float>>(Job, task, acc); break;
                case 256: Parameters<Simd256, Vector256<float>>(Job, task, acc); break;
                default: Parameters<Simd128, Vector128<float>>(Job, task, acc); break;
            }
        }
    }

    // Rows t0..t1-1 of batch b. Forward: y[t] = bias + sum_{j >= K-1-t} wT[j] x[t - (K-1) + j], j ascending.
    // dx: dx[t] = sum_{d < K, t + d < T} wT[K-1-d] dy[t + d], d ascending.
    private static void Rows<TW, TV>(Job job, int b, int t0, int t1, bool input)
        where TW : struct, ISimdWidth<TV> where TV : struct
    {
        int channels = job.Channels, width = job.Width, time = job.Time;
        var lanes = TW.Lanes;
        var vectorEnd = channels - channels % lanes;
        var source = (float*)job.A + (long)b * time * channels;
        var wt = (float*)job.W;
        var bias = (float*)job.Bias;
        var withBias = job.HasBias != 0;
        for (var t = t0; t < t1; t++)
        {
            var output = (float*)job.Out + ((long)b * time + t) * channels;
            // Taps as (weight row, source row): forward j = first..K-1 reads x[t - (K-1) + j]; dx d = 0..taps-1 reads dy[t + d].
            int first, count;
            if (input)
            {
                first = 0;
                count = Math.Min(width, time - t);
            }
            else
            {
                first = Math.Max(0, width - 1 - t);
                count = width - first;
            }
            var c = 0;
            for (; c < vectorEnd; c += lanes)
            {
                var acc = withBias ? TW.Load(bias + c) : TW.Zero;
                for (var q = 0; q < count; q++)
                {
                    var (j, row) = Tap(input, first + q, t, width);
                    acc = TW.MultiplyAdd(TW.Load(wt + (long)j * channels + c), TW.Load(source + (long)row * channels + c), acc);
                }
                TW.Store(acc, output + c);
            }
            for (; c < channels; c++)
            {
                var s = withBias ? bias[c] : 0f;
                for (var q = 0; q < count; q++)
                {
                    var (j, row) = Tap(input, first + q, t, width);
                    s += wt[(long)j * channels + c] * source[(long)row * channels + c];
                }
                output[c] = s;
            }
        }
    }

    // Tap number k of row t: (weight row j, source time row).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (int J, int Row) Tap(bool input, int k, int t, int width) =>
        input ? (width - 1 - k, t + k) : (k, t - (width - 1) + k);

    // Channels c0..c0+n-1: acc[j, c] += dy[b, t, c] x[b, t - (K-1) + j, c] and acc[K, c] += dy[b, t, c], b then t in
    // order; then dweight[c, j] = acc[j, c], dbias[c] = acc[K, c].
    private static void Parameters<TW, TV>(Job job, int task, float* acc)
        where TW : struct, ISimdWidth<TV> where TV : struct
    {
        int channels = job.Channels, width = job.Width, time = job.Time;
        var c0 = task * ChannelsPerTask;
        var n = Math.Min(ChannelsPerTask, channels - c0);
        var lanes = TW.Lanes;
        var vectorEnd = n - n % lanes;
        var withBias = job.HasBias != 0;
        var rows = width + 1;
        new Span<float>(acc, rows * ChannelsPerTask).Clear();
        var dyBase = (float*)job.A + c0;
        var xBase = (float*)job.W + c0;
        for (var b = 0; b < job.Batch; b++)
        for (var t = 0; t < time; t++)
        {
            var row = (long)b * time + t;
            var dyRow = dyBase + row * channels;
            var first = Math.Max(0, width - 1 - t);
            for (var j = first; j < width; j++)
            {
                var xRow = xBase + (row - (width - 1 - j)) * channels;
                var a = acc + j * ChannelsPerTask;
                var c = 0;
                for (; c < vectorEnd; c += lanes) TW.Store(TW.MultiplyAdd(TW.Load(dyRow + c), TW.Load(xRow + c), TW.Load(a + c)), a + c);
                for (; c < n; c++) a[c] += dyRow[c] * xRow[c];
            }
            if (withBias)
            {
                var a = acc + width * ChannelsPerTask;
                var c = 0;
                for (; c < vectorEnd; c += lanes) TW.Store(TW.Add(TW.Load(dyRow + c), TW.Load(a + c)), a + c);
                for (; c < n; c++) a[c] += dyRow[c];
            }
        }
        var dweight = (float*)job.Out;
        for (var c = 0; c < n; c++)
        for (var j = 0; j < width; j++)
            dweight[(long)(c0 + c) * width + j] = acc[j * ChannelsPerTask + c];
        if (withBias)
        {
            var dbias = (float*)job.Bias;
            for (var c = 0; c < n; c++) dbias[c0 + c] = acc[width * ChannelsPerTask + c];
        }
    }
}
