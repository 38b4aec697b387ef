// FMA peak of this machine: the denominator of every "% of peak" the perf harness reports (llm.c and FlashAttention
// quote a fraction of a peak; on a CPU we measure it rather than trust a datasheet, so it reflects the clock we get).
// Each thread runs independent FMA chains, 24 on Vector512 where accelerated (32 registers) and 12 on Vector<float> (the
// JIT's preferred width: 256 bits on AVX2, 128 on SSE and Arm NEON; 16 registers without AVX-512), and keeps the faster;
// 2 flops per lane per FMA: 2 FMA pipes x 4-6 cycles latency need 8-12 in flight. Wall-clock GFLOP/s is what a user sees; GFLOP per CPU-second
// is what the cores do while they run, and is the fair denominator when other processes share the machine.
// The chains use MultiplyAddEstimate, as the kernels do: one FMA where the hardware has it, a multiply and an add where
// it does not (x86 with DOTNET_EnableAVX2=0), instead of the exactly-fused operation .NET then emulates in software
// (which measured a "peak" of 0.4 GFLOP/s there, 2026-12-02).
// 2026-11-28, AMD EPYC (2 cores, shared, load average ~100): 12 and 24 chains both gave ~265 GFLOP per CPU-second
// (one core, 64 flops/cycle at ~4.2 GHz), while wall-clock GFLOP/s swung between 80 and 270 with the other load. Time it with `dotnet run -c Release --project perf -- attention-managed`.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit.Perf.Peak;

/// <summary>One FMA peak measurement.</summary>
/// <param name="GflopsPerSecond">Best GFLOP/s over the trials, all threads together.</param>
/// <param name="Threads">Threads that ran FMA chains at once.</param>
/// <param name="VectorBits">512 (Vector512) or the width of Vector&lt;float&gt; (256 on AVX2, 128 on SSE and NEON).</param>
/// <param name="GflopsPerCpuSecond">Best GFLOP per second of process CPU time: what the cores do while they run, which
/// a busy machine does not distort the way it distorts wall time.</param>
public sealed record FmaPeakResult(double GflopsPerSecond, int Threads, int VectorBits, double GflopsPerCpuSecond);

/// <summary>Measures the fused multiply-add throughput of all cores.</summary>
public static class FmaPeak
{
    private const int Chains512 = 24;
    private const int ChainsNarrow = 12;
    private const long Iterations = 10_000_000;

    /// <summary>Width in bits of <see cref="Vector{T}"/> here: 256 with AVX2 (and by default with AVX-512), 128 with SSE or Arm NEON.</summary>
    public static int VectorBits => Vector<float>.Count * 32;

    /// <summary>
    /// The best of <see cref="Vector{T}"/> (the JIT's preferred width on this hardware) and, where the hardware
    /// accelerates it and it is wider, Vector512, on all cores.
    /// </summary>
    public static FmaPeakResult Measure(int threads = 0, int trials = 5)
    {
        threads = threads > 0 ? threads : Environment.ProcessorCount;
        var best = Measure(threads, trials, VectorBits);
        if (Vector512.IsHardwareAccelerated && VectorBits < 512)
        {
            var wide = Measure(threads, trials, 512);
            if (wide.GflopsPerSecond > best.GflopsPerSecond) best = wide;
        }
        return best;
    }

    /// <summary>
    /// GFLOP/s with <paramref name="bits"/>-wide vectors on <paramref name="threads"/> threads: 512 (Vector512) or
    /// <see cref="VectorBits"/> (<see cref="Vector{T}"/>).
    /// </summary>
    public static FmaPeakResult Measure(int threads, int trials, int bits)
    {
        if (bits != 512 && bits != VectorBits)
            throw new ArgumentOutOfRangeException(nameof(bits), bits, $"FMA chains run on Vector512 or Vector<float> ({VectorBits} bits here).");
        var lanes = bits / 32;
        double best = 0, bestCpu = 0;
        using var process = Process.GetCurrentProcess();
        for (var t = 0; t < trials; t++)
        {
            using var start = new Barrier(threads + 1);
            var sink = new float[threads];
            var workers = new Thread[threads];
            for (var w = 0; w < threads; w++)
            {
                var id = w;
                workers[w] = new Thread(() =>
                {
                    start.SignalAndWait();
                    sink[id] = bits == VectorBits ? ChainsVector(Iterations) : ChainsWide(Iterations);
                });
                workers[w].Start();
            }
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            foreach (var worker in workers) worker.Join();
            var seconds = clock.Elapsed.TotalSeconds;
            process.Refresh();
            var cpuSeconds = (process.TotalProcessorTime - cpu0).TotalSeconds;
            if (!float.IsFinite(sink.Sum())) throw new InvalidOperationException("FMA chains diverged.");
            var gflop = 2.0 * lanes * (bits == VectorBits ? ChainsNarrow : Chains512) * Iterations * threads / 1e9;
            best = Math.Max(best, gflop / seconds);
            bestCpu = Math.Max(bestCpu, gflop / cpuSeconds);
        }
        return new FmaPeakResult(best, threads, bits, bestCpu);
    }

    // x <- x * a + b converges (|a| < 1), so the chains never overflow however long they run.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float ChainsWide(long iterations)
    {
        var a = Vector512.Create(0.999f);
        var b = Vector512.Create(1e-3f);
        Vector512<float> x0 = b, x1 = b, x2 = b, x3 = b, x4 = b, x5 = b, x6 = b, x7 = b, x8 = b, x9 = b, x10 = b, x11 = b;
        Vector512<float> x12 = b, x13 = b, x14 = b, x15 = b, x16 = b, x17 = b, x18 = b, x19 = b, x20 = b, x21 = b, x22 = b, x23 = b;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector512.MultiplyAddEstimate(x0, a, b); x1 = Vector512.MultiplyAddEstimate(x1, a, b); x2 = Vector512.MultiplyAddEstimate(x2, a, b); x3 = Vector512.MultiplyAddEstimate(x3, a, b);
            x4 = Vector512.MultiplyAddEstimate(x4, a, b); x5 = Vector512.MultiplyAddEstimate(x5, a, b); x6 = Vector512.MultiplyAddEstimate(x6, a, b); x7 = Vector512.MultiplyAddEstimate(x7, a, b);
            x8 = Vector512.MultiplyAddEstimate(x8, a, b); x9 = Vector512.MultiplyAddEstimate(x9, a, b); x10 = Vector512.MultiplyAddEstimate(x10, a, b); x11 = Vector512.MultiplyAddEstimate(x11, a, b);
            x12 = Vector512.MultiplyAddEstimate(x12, a, b); x13 = Vector512.MultiplyAddEstimate(x13, a, b); x14 = Vector512.MultiplyAddEstimate(x14, a, b); x15 = Vector512.MultiplyAddEstimate(x15, a, b);
            x16 = Vector512.MultiplyAddEstimate(x16, a, b); x17 = Vector512.MultiplyAddEstimate(x17, a, b); x18 = Vector512.MultiplyAddEstimate(x18, a, b); x19 = Vector512.MultiplyAddEstimate(x19, a, b);
            x20 = Vector512.MultiplyAddEstimate(x20, a, b); x21 = Vector512.MultiplyAddEstimate(x21, a, b); x22 = Vector512.MultiplyAddEstimate(x22, a, b); x23 = Vector512.MultiplyAddEstimate(x23, a, b);
        }
        return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11 + x12 + x13 + x14 + x15 + x16 + x17 + x18 + x19 + x20 + x21 + x22 + x23);
    }

    // 12 chains here, not 24: without AVX-512 (DOTNET_EnableAVX512=0, AVX2 and SSE machines, Arm NEON has 32) there
    // are 16 vector registers, and 24 accumulators plus a and b spilled to the stack, so the loop measured loads and
    // stores, not FMAs (2026-12-02: 160 GFLOP/s at Vector256 against 414 at Vector512 on this machine). 12 chains still
    // cover 2 FMA pipes x 4-6 cycles of latency.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float ChainsVector(long iterations)
    {
        var a = new Vector<float>(0.999f);
        var b = new Vector<float>(1e-3f);
        Vector<float> x0 = b, x1 = b, x2 = b, x3 = b, x4 = b, x5 = b, x6 = b, x7 = b, x8 = b, x9 = b, x10 = b, x11 = b;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector.MultiplyAddEstimate(x0, a, b); x1 = Vector.MultiplyAddEstimate(x1, a, b); x2 = Vector.MultiplyAddEstimate(x2, a, b); x3 = Vector.MultiplyAddEstimate(x3, a, b);
            x4 = Vector.MultiplyAddEstimate(x4, a, b); x5 = Vector.MultiplyAddEstimate(x5, a, b); x6 = Vector.MultiplyAddEstimate(x6, a, b); x7 = Vector.MultiplyAddEstimate(x7, a, b);
            x8 = Vector.MultiplyAddEstimate(x8, a, b); x9 = Vector.MultiplyAddEstimate(x9, a, b); x10 = Vector.MultiplyAddEstimate(x10, a, b); x11 = Vector.MultiplyAddEstimate(x11, a, b);
        }
        return Vector.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }
}
