// Conv1d on Managed: bytes moved per second against the read-only bandwidth (ReadBandwidth) measured in the same run,
// with the memory copy (read + write, CopyBandwidth) beside it as FeatureNormsBenchmark does. The op is memory-bound
// (2 K flops per element): the forward streams x [B, T, C] once and writes y once; the backward reads dy and x and
// writes dx (its parameter pass reads dy and x a second time, which the minimal-traffic count leaves out, so the
// figure is what a perfectly fused backward would need). Validates against the float64 reference on a small shape
// before timing (llm.c's validate-then-time).
// Run: `routekit-perf conv1d [--quick] [--out DIR]` (DIR gets conv1d-managed-<date>.md and .csv).
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.Conv1d;

/// <summary>One timed shape and pass (forward or backward).</summary>
public sealed record Conv1dTiming(int Batch, int Time, int Channels, int Width, string Pass, Timing Timing, double GBPerSecond);

/// <summary>Times <see cref="RouteKit.Conv1d.Forward"/> and <see cref="RouteKit.Conv1d.Backward"/> on the Managed backend.</summary>
public static class Conv1dBenchmark
{
    /// <summary>
    /// Validates, measures the read and copy bandwidths, times each shape's forward and backward and writes a markdown
    /// report to <paramref name="output"/>; 0, or 1 when validation fails.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">One shape, 64 MiB bandwidth buffers, few repeats (seconds; tests and smoke runs).</param>
    /// <param name="load">The load check taken at the command's start, written into the report's header and the CSV.</param>
    /// <param name="outDir">The folder for conv1d-managed-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    public static int Run(TextWriter output, bool quick, LoadCheck load, string? outDir = null, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"Managed Conv1d benchmark, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
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
        (int B, int T, int C, int K)[] shapes = quick ? [(2, 1024, 512, 4)] : [(2, 1024, 512, 4), (8, 1024, 1536, 4), (1, 4096, 768, 4), (8, 1024, 1536, 8)];
        var rows = new List<Conv1dTiming>();
        foreach (var s in shapes)
        {
            Bench.Progress($"conv1d B={s.B} T={s.T} C={s.C} K={s.K}");
            rows.AddRange(Time(device, s.B, s.T, s.C, s.K, quick ? 3 : 9));
        }
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Read bandwidth (read only, {Environment.ProcessorCount} threads, Vector{ReadBandwidth.VectorBits} sum of {bandwidthBytes >> 20} MiB, median of {bandwidthRepeats}): {read:F1} GB/s"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Memory copy (read + write, {Environment.ProcessorCount} threads, {bandwidthBytes >> 20} MiB, median of {bandwidthRepeats}): {copy:F1} GB/s"));
        report.AppendLine($"Managed Conv1d at Vector{Conv1dManaged.VectorBits}.");
        report.AppendLine();
        report.AppendLine("GB/s counts the minimal traffic: forward x read + y written, backward dy and x read + dx written (float32). " +
                          "\"% of read\" divides it by the read bandwidth above, \"% of copy\" by the copy's read + write rate (the closer " +
                          "roofline for an op that writes as much as it reads).");
        report.AppendLine();
        report.AppendLine("| B | T | C | K | pass | median ms | min ms | max ms | GB/s | % of read | % of copy (read+write) |");
        report.AppendLine("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {t.Batch} | {t.Time} | {t.Channels} | {t.Width} | {t.Pass} | {t.Timing.MedianMs:F3} | {t.Timing.MinMs:F3} | {t.Timing.MaxMs:F3} | {t.GBPerSecond:F1} | {100 * t.GBPerSecond / read:F0}% | {100 * t.GBPerSecond / copy:F0}% |"));
        report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            var csv = new StringBuilder("batch,time,channels,width,pass,median_ms,min_ms,max_ms,gbps,read_bandwidth_gbps,read_fraction,copy_gbps,copy_fraction," + LoadCheck.CsvHeader + "\n");
            foreach (var t in rows)
                csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"{t.Batch},{t.Time},{t.Channels},{t.Width},{t.Pass},{t.Timing.MedianMs:F4},{t.Timing.MinMs:F4},{t.Timing.MaxMs:F4},{t.GBPerSecond:F2},{read:F2},{t.GBPerSecond / read:F4},{copy:F2},{t.GBPerSecond / copy:F4},{load.CsvFields}"));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"conv1d-managed-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }

    /// <summary>Forward and backward at one awkward shape (T &gt; row block, C with a vector tail) against float64, relative 1e-5 of each output's scale.</summary>
    internal static bool Validate(Device device, TextWriter output)
    {
        const int B = 2, T = 37, C = 67, K = 4;
        float[] x = Bench.Normal(B * T * C, 1), w = Bench.Normal(C * K, 2), b = Bench.Normal(C, 3), dy = Bench.Normal(B * T * C, 4);
        using var tx = device.FromArray(x, B, T, C);
        using var tw = device.FromArray(w, C, K);
        using var tb = device.FromArray(b, C);
        using var tdy = device.FromArray(dy, B, T, C);
        using var y = RouteKit.Conv1d.Forward(tx, tw, tb);
        using var g = RouteKit.Conv1d.Backward(tdy, tx, tw, hasBias: true);
        var refY = Conv1dReference.Forward(Bench.Widen(x), Bench.Widen(w), Bench.Widen(b), B, T, C, K);
        var refG = Conv1dReference.Backward(Bench.Widen(dy), Bench.Widen(x), Bench.Widen(w), B, T, C, K);
        foreach (var (name, actual, reference) in new[]
        {
            ("y", y.ToArray(), refY), ("dx", g.DX.ToArray(), refG.DX), ("dweight", g.DWeight.ToArray(), refG.DWeight), ("dbias", g.DBias!.ToArray(), refG.DBias),
        })
        {
            var scale = reference.Max(Math.Abs);
            for (var i = 0; i < reference.Length; i++)
            {
                if (Math.Abs(actual[i] - reference[i]) <= 1e-5 * scale) continue;
                output.WriteLine($"validation FAILED: {name}[{i}] = {actual[i]}, float64 reference {reference[i]:R}");
                return false;
            }
        }
        output.WriteLine($"validated forward and backward against the float64 reference at B={B} T={T} C={C} K={K}");
        return true;
    }

    private static IEnumerable<Conv1dTiming> Time(Device device, int batch, int time, int channels, int width, int repeats)
    {
        long n = (long)batch * time * channels;
        using var x = device.FromArray(Bench.Normal(n, 5), batch, time, channels);
        using var w = device.FromArray(Bench.Normal(channels * width, 6), channels, width);
        using var b = device.FromArray(Bench.Normal(channels, 7), channels);
        using var dy = device.FromArray(Bench.Normal(n, 8), batch, time, channels);
        using var y = device.Zeros(batch, time, channels);
        using var g = new Conv1dGradients(device.Zeros(batch, time, channels), device.Zeros(channels, width), device.Zeros(channels));
        var forward = Bench.Time(device, () => RouteKit.Conv1d.Forward(x, w, b, y), repeats);
        var backward = Bench.Time(device, () => RouteKit.Conv1d.Backward(dy, x, w, hasBias: true, g), repeats);
        double bytes = n * sizeof(float);
        yield return new Conv1dTiming(batch, time, channels, width, "forward", forward, 2 * bytes / (forward.MedianMs * 1e6));
        yield return new Conv1dTiming(batch, time, channels, width, "backward", backward, 3 * bytes / (backward.MedianMs * 1e6));
    }
}
