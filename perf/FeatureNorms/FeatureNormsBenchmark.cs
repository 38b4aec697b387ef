// FeatureNorms on Managed: bytes read per second against the memory-copy bandwidth measured in the same run.
// Validates against the float64 reference on a small shape before timing (llm.c's validate-then-time).
// Target (issue 4): >= 60% of copy bandwidth at R = 65536, F = 2048.
using System.Diagnostics;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.FeatureNorms;

/// <summary>One timed shape.</summary>
public sealed record FeatureNormsTiming(int Rows, int Features, double MedianMs, double MinMs, double MaxMs, double GBPerSecond);

/// <summary>Times <see cref="RouteKit.FeatureNorms.Forward"/> on the Managed backend.</summary>
public static class FeatureNormsBenchmark
{
    /// <summary>Validates, measures copy bandwidth, times each shape and writes a markdown report to <paramref name="output"/>.</summary>
    public static int Run(TextWriter output, bool quick)
    {
        using var device = Device.Create(Backend.Managed);
        if (!Validate(device, output)) return 1;
        var copy = CopyBandwidth.Measure();
        (int R, int F)[] shapes = quick ? [(8192, 2048)] : [(65536, 2048), (16384, 16384), (65536, 512), (1024, 2048)];
        var rows = shapes.Select(s => Time(device, s.R, s.F, quick ? 5 : 11)).ToList();
        output.WriteLine($"Memory copy (read + write, {Environment.ProcessorCount} threads): {copy:F1} GB/s");
        output.WriteLine();
        output.WriteLine("| R | F | median ms | min ms | max ms | GB/s read | % of copy |");
        output.WriteLine("|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            output.WriteLine($"| {t.Rows} | {t.Features} | {t.MedianMs:F2} | {t.MinMs:F2} | {t.MaxMs:F2} | {t.GBPerSecond:F1} | {100 * t.GBPerSecond / copy:F0}% |");
        return 0;
    }

    private static bool Validate(Device device, TextWriter output)
    {
        const int R = 37, F = 1031;
        var rng = new Random(1);
        var x = Enumerable.Range(0, R * F).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var reference = FeatureNormsReference.Forward(Array.ConvertAll(x, v => (double)v), R, F);
        using var t = device.FromArray(x, R, F);
        using var o = RouteKit.FeatureNorms.Forward(t);
        var l1 = o.L1.ToArray();
        var l2 = o.L2.ToArray();
        for (var r = 0; r < R; r++)
        {
            if (Math.Abs(l1[r] - reference.L1[r]) <= 1e-5 * reference.L1[r] && Math.Abs(l2[r] - reference.L2[r]) <= 1e-5 * reference.L2[r])
                continue;
            output.WriteLine($"validation FAILED at row {r}: L1 {l1[r]} vs {reference.L1[r]}, L2 {l2[r]} vs {reference.L2[r]}");
            return false;
        }
        output.WriteLine($"validated against the float64 reference at [{R}, {F}]");
        return true;
    }

    private static FeatureNormsTiming Time(Device device, int rows, int features, int repeats)
    {
        var rng = new Random(2);
        var data = new float[rows * features];
        for (var i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        using var x = device.FromArray(data, rows, features);
        using var outputs = RouteKit.FeatureNorms.Forward(x);
        var times = new double[repeats];
        for (var r = 0; r < repeats; r++)
        {
            var sw = Stopwatch.StartNew();
            RouteKit.FeatureNorms.Forward(x, outputs);
            times[r] = sw.Elapsed.TotalMilliseconds;
        }
        Array.Sort(times);
        var median = times[repeats / 2];
        return new FeatureNormsTiming(rows, features, median, times[0], times[^1], (double)rows * features * sizeof(float) / (median * 1e6));
    }
}
