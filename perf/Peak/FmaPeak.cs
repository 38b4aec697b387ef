// FMA peak of this machine: the denominator of every "% of peak" the perf harness reports (llm.c and FlashAttention
// quote a fraction of a peak; on a CPU we measure it rather than trust a datasheet, so it reflects the clock we get).
// Each thread runs independent FMA chains on Vector512 (or Vector256): 12 accumulators cover 2 FMA pipes x 4-6 cycles
// latency. GFLOP/s = 2 flops per lane per FMA. Time it with `dotnet run -c Release --project perf -- attention-managed`.
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit.Perf.Peak;

/// <summary>One FMA peak measurement.</summary>
/// <param name="GflopsPerSecond">Best GFLOP/s over the trials, all threads together.</param>
/// <param name="Threads">Threads that ran FMA chains at once.</param>
/// <param name="VectorBits">512 or 256.</param>
public sealed record FmaPeakResult(double GflopsPerSecond, int Threads, int VectorBits);

/// <summary>Measures the fused multiply-add throughput of all cores.</summary>
public static class FmaPeak
{
    private const int Chains = 12;
    private const long Iterations = 20_000_000;

    /// <summary>The best of Vector512 and Vector256 (whichever the hardware accelerates) on all cores.</summary>
    public static FmaPeakResult Measure(int threads = 0, int trials = 5)
    {
        threads = threads > 0 ? threads : Environment.ProcessorCount;
        var best = Measure(threads, trials, 256);
        if (Vector512.IsHardwareAccelerated)
        {
            var wide = Measure(threads, trials, 512);
            if (wide.GflopsPerSecond > best.GflopsPerSecond) best = wide;
        }
        return best;
    }

    /// <summary>GFLOP/s with <paramref name="bits"/>-wide vectors (256 or 512) on <paramref name="threads"/> threads.</summary>
    public static FmaPeakResult Measure(int threads, int trials, int bits)
    {
        var lanes = bits / 32;
        var best = 0.0;
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
                    sink[id] = bits == 512 ? Chains512(Iterations) : Chains256(Iterations);
                });
                workers[w].Start();
            }
            start.SignalAndWait();
            var clock = Stopwatch.StartNew();
            foreach (var worker in workers) worker.Join();
            var seconds = clock.Elapsed.TotalSeconds;
            if (!float.IsFinite(sink.Sum())) throw new InvalidOperationException("FMA chains diverged.");
            best = Math.Max(best, 2.0 * lanes * Chains * Iterations * threads / seconds / 1e9);
        }
        return new FmaPeakResult(best, threads, bits);
    }

    // x <- x * a + b converges (|a| < 1), so the chains never overflow however long they run.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains512(long iterations)
    {
        var a = Vector512.Create(0.999f);
        var b = Vector512.Create(1e-3f);
        Vector512<float> x0 = Vector512.Create(0.1f), x1 = x0 + b, x2 = x1 + b, x3 = x2 + b, x4 = x3 + b, x5 = x4 + b;
        Vector512<float> x6 = x5 + b, x7 = x6 + b, x8 = x7 + b, x9 = x8 + b, x10 = x9 + b, x11 = x10 + b;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector512.FusedMultiplyAdd(x0, a, b); x1 = Vector512.FusedMultiplyAdd(x1, a, b);
            x2 = Vector512.FusedMultiplyAdd(x2, a, b); x3 = Vector512.FusedMultiplyAdd(x3, a, b);
            x4 = Vector512.FusedMultiplyAdd(x4, a, b); x5 = Vector512.FusedMultiplyAdd(x5, a, b);
            x6 = Vector512.FusedMultiplyAdd(x6, a, b); x7 = Vector512.FusedMultiplyAdd(x7, a, b);
            x8 = Vector512.FusedMultiplyAdd(x8, a, b); x9 = Vector512.FusedMultiplyAdd(x9, a, b);
            x10 = Vector512.FusedMultiplyAdd(x10, a, b); x11 = Vector512.FusedMultiplyAdd(x11, a, b);
        }
        return Vector512.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Chains256(long iterations)
    {
        var a = Vector256.Create(0.999f);
        var b = Vector256.Create(1e-3f);
        Vector256<float> x0 = Vector256.Create(0.1f), x1 = x0 + b, x2 = x1 + b, x3 = x2 + b, x4 = x3 + b, x5 = x4 + b;
        Vector256<float> x6 = x5 + b, x7 = x6 + b, x8 = x7 + b, x9 = x8 + b, x10 = x9 + b, x11 = x10 + b;
        for (long i = 0; i < iterations; i++)
        {
            x0 = Vector256.FusedMultiplyAdd(x0, a, b); x1 = Vector256.FusedMultiplyAdd(x1, a, b);
            x2 = Vector256.FusedMultiplyAdd(x2, a, b); x3 = Vector256.FusedMultiplyAdd(x3, a, b);
            x4 = Vector256.FusedMultiplyAdd(x4, a, b); x5 = Vector256.FusedMultiplyAdd(x5, a, b);
            x6 = Vector256.FusedMultiplyAdd(x6, a, b); x7 = Vector256.FusedMultiplyAdd(x7, a, b);
            x8 = Vector256.FusedMultiplyAdd(x8, a, b); x9 = Vector256.FusedMultiplyAdd(x9, a, b);
            x10 = Vector256.FusedMultiplyAdd(x10, a, b); x11 = Vector256.FusedMultiplyAdd(x11, a, b);
        }
        return Vector256.Sum(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + x8 + x9 + x10 + x11);
    }
}
