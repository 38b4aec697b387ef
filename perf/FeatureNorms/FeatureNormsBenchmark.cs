// FeatureNorms on Managed: bytes read per second against the read-only bandwidth (ReadBandwidth) measured in the same
// run, its roofline: the op streams x [R, F] once and writes 5 R floats. The memory copy (read + write, CopyBandwidth) is
// measured too and printed as a second, clearly labelled column; a read stream can pass 100% of it, so it is not the
// roofline. Validates against the float64 reference on a small shape before timing (llm.c's validate-then-time).
// Target (issue 4): >= 60% of copy bandwidth at R = 65536, F = 2048.
// Run: `routekit-perf featurenorms [--quick] [--out DIR]` (DIR gets featurenorms-managed-<date>.md and .csv).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.FeatureNorms;

/// <summary>One timed shape.</summary>
public sealed record FeatureNormsTiming(int Rows, int Features, double MedianMs, double MinMs, double MaxMs, double GBPerSecond);

/// <summary>Times <see cref="RouteKit.FeatureNorms.Forward"/> on the Managed backend.</summary>
public static class FeatureNormsBenchmark
{
    /// <summary>
    /// Validates, measures the read and copy bandwidths, times each shape and writes a markdown report to
    /// <paramref name="output"/>; 0, or 1 when validation fails.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">One shape, 64 MiB bandwidth buffers, few repeats (seconds; tests and smoke runs).</param>
    /// <param name="load">The load check taken at the command's start, written into the report's header and the CSV;
    /// null when the caller's report already carries it (the standard grid's section).</param>
    /// <param name="outDir">With <paramref name="load"/>: the folder for featurenorms-managed-&lt;date&gt;.md and .csv.</param>
    /// <param name="command">The command line, for the header.</param>
    public static int Run(TextWriter output, bool quick, LoadCheck? load = null, string? outDir = null, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        if (load is not null) report.Append(Bench.ReportHeader($"Managed feature norms benchmark, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        using var device = Device.Create(Backend.Managed);
        var validation = new StringWriter();
        var ok = Validate(device, validation);
        report.Append(validation);
        if (!ok)
        {
            output.Write(report);
            return 1;
        }
        var bandwidthBytes = quick ? 64L << 20 : 512L << 20;
        var bandwidthRepeats = quick ? 3 : 7;
        Bench.Progress("read and copy bandwidth");
        var read = ReadBandwidth.Measure(bandwidthBytes, bandwidthRepeats);
        var copy = CopyBandwidth.Measure(bandwidthBytes, bandwidthRepeats);
        (int R, int F)[] shapes = quick ? [(8192, 2048)] : [(65536, 2048), (16384, 16384), (65536, 512), (1024, 2048)];
        var rows = shapes.Select(s => Time(device, s.R, s.F, quick ? 5 : 11)).ToList();
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Read bandwidth (read only, {Environment.ProcessorCount} threads, Vector{ReadBandwidth.VectorBits} sum of {bandwidthBytes >> 20} MiB, median of {bandwidthRepeats}): {read:F1} GB/s"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Memory copy (read + write, {Environment.ProcessorCount} threads, {bandwidthBytes >> 20} MiB, median of {bandwidthRepeats}): {copy:F1} GB/s"));
        report.AppendLine();
        report.AppendLine("GB/s read counts the bytes of x read once. \"% of read\" divides it by the read bandwidth above (the roofline of a " +
                          "read stream); \"% of copy (read+write)\" by the copy's bytes read plus written, a different traffic pattern that a read " +
                          "stream can exceed.");
        report.AppendLine();
        report.AppendLine("| R | F | median ms | min ms | max ms | GB/s read | % of read | % of copy (read+write) |");
        report.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {t.Rows} | {t.Features} | {t.MedianMs:F2} | {t.MinMs:F2} | {t.MaxMs:F2} | {t.GBPerSecond:F1} | {100 * t.GBPerSecond / read:F0}% | {100 * t.GBPerSecond / copy:F0}% |"));
        if (load is not null) report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (load is not null && outDir is not null)
        {
            var csv = new StringBuilder("rows,features,median_ms,min_ms,max_ms,read_gbps,read_bandwidth_gbps,read_fraction,copy_gbps,copy_fraction," + LoadCheck.CsvHeader + "\n");
            foreach (var t in rows)
                csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"{t.Rows},{t.Features},{t.MedianMs:F3},{t.MinMs:F3},{t.MaxMs:F3},{t.GBPerSecond:F2},{read:F2},{t.GBPerSecond / read:F4},{copy:F2},{t.GBPerSecond / copy:F4},{load.CsvFields}"));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"featurenorms-managed-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
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
