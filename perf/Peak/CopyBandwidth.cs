// Memory-copy bandwidth of this machine, measured in the same run as a bandwidth-bound benchmark so the benchmark
// can be quoted as a fraction of it. Counts bytes read plus bytes written (a copy of S bytes moves 2 S).
using System.Diagnostics;

namespace RouteKit.Perf.Peak;

/// <summary>Multithreaded memory copy, one slice per core, median of several repeats.</summary>
public static class CopyBandwidth
{
    /// <summary>Returns the median copy bandwidth in GB/s (1e9 bytes/s, read + write) over <paramref name="repeats"/> runs.</summary>
    public static double Measure(long bytes = 512L << 20, int repeats = 7)
    {
        var n = (int)(bytes / sizeof(float));
        var src = new float[n];
        var dst = new float[n];
        Array.Fill(src, 1f);
        Array.Fill(dst, 0f);
        var threads = Environment.ProcessorCount;
        var chunk = (n + threads - 1) / threads;
        void Copy() => Parallel.For(0, threads, t =>
        {
            var start = t * chunk;
            var len = Math.Min(chunk, n - start);
            if (len > 0) src.AsSpan(start, len).CopyTo(dst.AsSpan(start, len));
        });
        Copy();
        var times = new double[repeats];
        for (var r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            Copy();
            times[r] = sw.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return 2.0 * n * sizeof(float) / times[repeats / 2] / 1e9;
    }
}
