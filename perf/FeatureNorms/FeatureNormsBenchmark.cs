// FeatureNorms, one kernel version on one backend: bytes read per second against the read-only bandwidth measured in
// the same run (StreamRoofline: ReadBandwidth on the CPU backends), its roofline: the op streams x [R, F] once and
// writes 5 R floats. The memory copy (read + write) is measured too and printed as a second, clearly labelled column; a
// read stream can pass 100% of it, so it is not the roofline. Validates the selected version against the float64
// reference on a small shape before timing (llm.c's validate-then-time).
// Target (issue 4): >= 60% of copy bandwidth at R = 65536, F = 2048 on Managed.
// Versions: KernelVariants.FeatureNorms (Managed: FeatureNormsManaged; ILGPU: FeatureNormsKernels.Variants).
// Run: `routekit-perf featurenorms [--backend managed|ilgpu-cpu|cuda|opencl] [--variant N] [--quick] [--out DIR]` (DIR gets
// featurenorms-<backend>-<date>.md and .csv). On ilgpu-cpu (the simulator: every GPU thread an OS thread) the shapes are
// tiny and the figures prove the run, not speed.
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf.FeatureNorms;

/// <summary>One timed shape.</summary>
public sealed record FeatureNormsTiming(int Rows, int Features, double MedianMs, double MinMs, double MaxMs, double GBPerSecond);

/// <summary>Times <see cref="RouteKit.FeatureNorms.Forward"/> on one backend.</summary>
public static class FeatureNormsBenchmark
{
    /// <summary>
    /// Validates, measures the read and copy bandwidths, times each shape and writes a markdown report to
    /// <paramref name="output"/>; 0, 1 when validation fails, 2 when the backend has no device.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">One shape, 64 MiB bandwidth buffers, few repeats (seconds; tests and smoke runs).</param>
    /// <param name="load">The load check taken at the command's start, written into the report's header and the CSV;
    /// null when the caller's report already carries it (the standard grid's section).</param>
    /// <param name="outDir">With <paramref name="load"/>: the folder for featurenorms-&lt;backend&gt;-&lt;date&gt;.md and .csv.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="backend">The backend to time on (Managed by default).</param>
    /// <param name="variant">The version, 1..<c>KernelVariants.FeatureNorms.For(backend).Count</c> (the caller checked it).</param>
    public static int Run(TextWriter output, bool quick, LoadCheck? load = null, string? outDir = null, string? command = null,
        Backend backend = Backend.Managed, int variant = 1)
    {
        ArgumentNullException.ThrowIfNull(output);
        var versions = KernelVariants.FeatureNorms.For(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(variant, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(variant, versions.Count);
        var version = versions[variant - 1];
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        var label = backend.ToString().ToLowerInvariant();
        Device device;
        try
        {
            device = Device.Create(backend);
        }
        catch (InvalidOperationException e)
        {
            output.WriteLine($"# no {backend} device: {e.Message}");
            return 2;
        }
        using var owned = device;
        if (load is not null) report.Append(Bench.ReportHeader($"Feature norms benchmark on {device}, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        report.AppendLine($"Version {variant} of {versions.Count} ({KernelVariants.FeatureNorms.BackendLabel(backend)}): {version.Name}: {version.Idea}");
        var validation = new StringWriter();
        var ok = Validate(device, validation);
        report.Append(validation);
        if (!ok)
        {
            output.Write(report);
            return 1;
        }
        var simulator = backend == Backend.IlgpuCpu;
        var roofline = StreamRoofline.Measure(device, quick || simulator);
        (int R, int F)[] shapes = simulator ? [(8, 256)] : quick ? [(8192, 2048)] : [(65536, 2048), (16384, 16384), (65536, 512), (1024, 2048)];
        var rows = shapes.Select(s => Time(device, s.R, s.F, simulator ? 1 : quick ? 5 : 11)).ToList();
        report.AppendLine(roofline.How);
        if (simulator) report.AppendLine("IlgpuCpu is the ILGPU simulator (an OS thread per GPU thread): these figures prove the run, not speed.");
        report.AppendLine();
        report.AppendLine("GB/s read counts the bytes of x read once. \"% of read\" divides it by the read bandwidth above (the roofline of a " +
                          "read stream); \"% of copy (read+write)\" by the copy's bytes read plus written, a different traffic pattern that a read " +
                          "stream can exceed.");
        report.AppendLine();
        report.AppendLine("| R | F | median ms | min ms | max ms | GB/s read | % of read | % of copy (read+write) |");
        report.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {t.Rows} | {t.Features} | {t.MedianMs:F2} | {t.MinMs:F2} | {t.MaxMs:F2} | {t.GBPerSecond:F1} | {StreamRoofline.Percent(t.GBPerSecond, roofline.ReadGBps)} | {StreamRoofline.Percent(t.GBPerSecond, roofline.CopyGBps)} |"));
        if (load is not null) report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (load is not null && outDir is not null)
        {
            var csv = new StringBuilder("backend,variant,rows,features,median_ms,min_ms,max_ms,read_gbps,read_bandwidth_gbps,read_fraction,copy_gbps,copy_fraction," + LoadCheck.CsvHeader + "\n");
            foreach (var t in rows)
                csv.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"{label},{variant},{t.Rows},{t.Features},{t.MedianMs:F3},{t.MinMs:F3},{t.MaxMs:F3},{t.GBPerSecond:F2},{roofline.ReadGBps:F2},{t.GBPerSecond / roofline.ReadGBps:F4},{roofline.CopyGBps:F2},{t.GBPerSecond / roofline.CopyGBps:F4},{load.CsvFields}"));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"featurenorms-{label}-{started:yyyy-MM-dd}");
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
        Bench.Progress($"featurenorms [{rows}, {features}] on {device.Backend}");
        var rng = new Random(2);
        var data = new float[rows * features];
        for (var i = 0; i < data.Length; i++) data[i] = (float)(rng.NextDouble() * 2 - 1);
        using var x = device.FromArray(data, rows, features);
        using var outputs = RouteKit.FeatureNorms.Forward(x);
        var t = Bench.Time(device, () => RouteKit.FeatureNorms.Forward(x, outputs), repeats, minSampleMs: device.Backend == Backend.IlgpuCpu ? 0 : 20);
        return new FeatureNormsTiming(rows, features, t.MedianMs, t.MinMs, t.MaxMs, (double)rows * features * sizeof(float) / (t.MedianMs * 1e6));
    }
}
