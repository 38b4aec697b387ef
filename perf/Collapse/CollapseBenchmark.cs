// The collapse reductions (bindings/Ops/Collapse.cs over kernels/Collapse/CollapseKernels.cs on ILGPU backends,
// FeatureNormsManaged's Gram, ColumnSums and RowDeviation on Managed), one version on one backend, llm.c's way: first
// every reduction and the three measures built on them are validated against the float64 reference
// (bindings/Reference/FeatureNormsReference.cs; the reductions by FlashAttention's 2x rule), then each reduction is
// timed. Rates: bytes of X [R, C] read once per second against the read bandwidth measured in the same run
// (StreamRoofline, as featurenorms), and for the Gram, which does C (C + 1) / 2 multiply-adds per row and is bound by
// arithmetic rather than memory, GFLOP/s as well.
// Shapes: R rows, C columns.
// Run: `routekit-perf collapse [--backend managed|ilgpu-cpu|cuda|opencl] [--variant N] [--quick] [--out DIR]` (DIR gets
// collapse-<backend>-<date>.md and .csv). On ilgpu-cpu the shapes are tiny: the figures prove the run, not speed.
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf.Collapse;

/// <summary>One timed reduction at one shape.</summary>
/// <param name="Reduction">Gram, ColumnSums, UnitColumnSums or RowDeviation.</param>
/// <param name="Rows">R.</param>
/// <param name="Columns">C.</param>
/// <param name="Timing">Median, spread and clock.</param>
/// <param name="GBPerSecond">Bytes of X read once over the median time.</param>
/// <param name="Gflops">Multiply-adds x 2 over the median time (Gram only; NaN for the streaming reductions).</param>
public sealed record CollapseTiming(string Reduction, int Rows, int Columns, Timing Timing, double GBPerSecond, double Gflops);

/// <summary>Validate-then-time of the collapse reductions.</summary>
public static class CollapseBenchmark
{
    /// <summary>The CSV header of <see cref="Run"/>'s file.</summary>
    public const string CsvHeader = "backend,variant,reduction,rows,columns,median_ms,min_ms,max_ms,clock,read_gbps,gflops,read_bandwidth_gbps,read_fraction,copy_gbps,copy_fraction," + LoadCheck.CsvHeader;

    /// <summary>
    /// Validates version <paramref name="variant"/> on <paramref name="backend"/>, measures the bandwidths, times every
    /// reduction and writes a markdown report to <paramref name="output"/>; 0, 1 when validation fails (nothing timed),
    /// 2 when the backend has no device.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="backend">The backend.</param>
    /// <param name="variant">1..<c>KernelVariants.Collapse.For(backend).Count</c> (the caller checked it).</param>
    /// <param name="quick">One small shape per reduction, 64 MiB bandwidth buffers, few repeats (seconds).</param>
    /// <param name="load">The load check taken at the command's start.</param>
    /// <param name="outDir">The folder for collapse-&lt;backend&gt;-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    public static int Run(TextWriter output, Backend backend, int variant, bool quick, LoadCheck load, string? outDir, string? command)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(load);
        var versions = KernelVariants.Collapse.For(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(variant, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(variant, versions.Count);
        var version = versions[variant - 1];
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
        var simulator = backend == Backend.IlgpuCpu;
        var started = DateTime.UtcNow;
        var label = backend.ToString().ToLowerInvariant();
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"Collapse reductions on {device}, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        report.AppendLine($"Version {variant} of {versions.Count} ({KernelVariants.Collapse.BackendLabel(backend)}): {version.Name}: {version.Idea}");
        var (ok, lines) = Validate(device, simulator);
        foreach (var line in lines) report.AppendLine(line);
        if (!ok)
        {
            report.AppendLine("validation FAILED: not timing a wrong kernel.");
            output.Write(report);
            return 1;
        }
        var roofline = StreamRoofline.Measure(device, quick || simulator);
        // The simulator runs every GPU thread as an OS thread (a 256-thread group per row for RowDeviation): a few rows.
        var gramShapes = simulator ? new[] { (16, 8) } : quick ? [(4096, 64)] : [(65536, 128), (16384, 512)];
        var streamShapes = simulator ? new[] { (8, 64) } : quick ? [(4096, 512)] : [(65536, 2048), (1024, 65536)];
        var repeats = simulator ? 1 : quick ? 3 : 7;
        var minSampleMs = simulator ? 0 : 20;
        var timings = new List<CollapseTiming>();
        foreach (var (r, c) in gramShapes) timings.Add(Time(device, "Gram", r, c, repeats, minSampleMs));
        foreach (var reduction in new[] { "ColumnSums", "UnitColumnSums", "RowDeviation" })
        foreach (var (r, c) in streamShapes)
            timings.Add(Time(device, reduction, r, c, repeats, minSampleMs));
        report.AppendLine(roofline.How);
        if (simulator) report.AppendLine("IlgpuCpu is the ILGPU simulator (an OS thread per GPU thread): these figures prove the run, not speed.");
        report.AppendLine();
        report.AppendLine("GB/s read counts the bytes of X read once. \"% of read\" divides it by the read bandwidth above (the roofline of a " +
                          "read stream); \"% of copy\" by the copy's bytes read plus written. The Gram does C (C + 1) / 2 multiply-adds per row " +
                          "of C floats, so its ceiling is arithmetic, not bandwidth: GFLOP/s is its figure of merit.");
        report.AppendLine();
        report.AppendLine("| reduction | R | C | median ms | min ms | max ms | GB/s read | % of read | % of copy | GFLOP/s |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in timings)
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {t.Reduction} | {t.Rows} | {t.Columns} | {t.Timing.MedianMs:F3} | {t.Timing.MinMs:F3} | {t.Timing.MaxMs:F3} | {t.GBPerSecond:F2} | " +
                $"{StreamRoofline.Percent(t.GBPerSecond, roofline.ReadGBps)} | {StreamRoofline.Percent(t.GBPerSecond, roofline.CopyGBps)} | " +
                $"{(double.IsNaN(t.Gflops) ? "" : t.Gflops.ToString("F2", CultureInfo.InvariantCulture))} |"));
        report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            var csv = new StringBuilder(CsvHeader).Append('\n');
            foreach (var t in timings)
                csv.Append(string.Create(CultureInfo.InvariantCulture,
                    $"{label},{variant},{t.Reduction},{t.Rows},{t.Columns},{t.Timing.MedianMs:F4},{t.Timing.MinMs:F4},{t.Timing.MaxMs:F4},{t.Timing.Clock}," +
                    $"{t.GBPerSecond:F3},{(double.IsNaN(t.Gflops) ? "" : t.Gflops.ToString("F3", CultureInfo.InvariantCulture))},{roofline.ReadGBps:F2}," +
                    $"{t.GBPerSecond / roofline.ReadGBps:F4},{roofline.CopyGBps:F2},{t.GBPerSecond / roofline.CopyGBps:F4},{load.CsvFields}\n"));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"collapse-{label}-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }

    /// <summary>The four reductions of one validation problem, as read back from the device.</summary>
    public sealed record Reductions(float[] Gram, float[] ColumnSums, float[] UnitColumnSums, float[] RowDeviation);

    /// <summary>
    /// Every reduction on <paramref name="device"/> against the float64 reference with the 2x rule, on shapes with more
    /// columns than a row group's 256 threads and a zero row (the unit sums skip it), then the three measures built on
    /// them against the reference's float64 definitions; the verdict and one line per shape. <paramref name="simulator"/>
    /// keeps the row counts small (IlgpuCpu runs a 256-thread group per row as 256 OS threads).
    /// </summary>
    public static (bool Ok, List<string> Lines) Validate(Device device, bool simulator = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        var lines = new List<string>();
        var ok = true;
        foreach (var (rows, columns) in simulator ? new[] { (9, 17), (3, 300) } : [(97, 17), (40, 300)])
        {
            var x = Problem(rows, columns);
            using var t = device.FromArray(x, rows, columns);
            using var gram = RouteKit.Collapse.Gram(t);
            using var sums = device.Zeros(columns);
            RouteKit.Collapse.ColumnSums(t, null, sums, rows, columns);
            var columnSums = sums.ToArray();
            using var norms = RouteKit.FeatureNorms.Forward(t);
            RouteKit.Collapse.ColumnSums(t, norms.L2, sums, rows, columns);
            var unitSums = sums.ToArray();
            using var mean = device.FromArray(FloatMean(x, rows, columns), columns);
            using var deviation = device.Zeros(rows);
            RouteKit.Collapse.RowDeviation(t, mean, deviation, rows, columns);
            var (reductionsOk, message) = Check(rows, columns, new Reductions(gram.ToArray(), columnSums, unitSums, deviation.ToArray()));
            var xd = Bench.Widen(x);
            var measures = new (string Name, double Actual, double Reference, double Tolerance)[]
            {
                ("effective rank", RouteKit.Collapse.EffectiveRank(t), FeatureNormsReference.EffectiveRank(xd, rows, columns), 1e-6 * FeatureNormsReference.EffectiveRank(xd, rows, columns)),
                ("residual ratio", RouteKit.Collapse.ResidualRatio(t), FeatureNormsReference.ResidualRatio(xd, rows, columns), 1e-5),
                ("mean pairwise cosine", RouteKit.Collapse.MeanPairwiseCosine(t), FeatureNormsReference.MeanPairwiseCosine(xd, rows, columns), 1e-5),
            };
            var measureText = new List<string>();
            var measuresOk = true;
            foreach (var (name, actual, reference, tolerance) in measures)
            {
                var pass = Math.Abs(actual - reference) <= tolerance;
                measuresOk &= pass;
                measureText.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {actual:G7} vs {reference:G7}{(pass ? "" : " FAIL")}"));
            }
            ok &= reductionsOk && measuresOk;
            lines.Add($"validated [{rows}, {columns}] against the float64 reference: reductions (2x rule) {message}; " +
                      $"measures {(measuresOk ? "passed" : "FAILED")}: {string.Join(", ", measureText)}");
        }
        return (ok, lines);
    }

    /// <summary>The validation input X [R, C]: normal values of scale 3 with a zero first row.</summary>
    public static float[] Problem(int rows, int columns)
    {
        var x = Bench.Normal((long)rows * columns, 7 * rows + columns);
        for (var i = 0; i < x.Length; i++) x[i] *= 3f;
        Array.Clear(x, 0, columns);
        return x;
    }

    /// <summary>
    /// <paramref name="actual"/> for <see cref="Problem"/> at [<paramref name="rows"/>, <paramref name="columns"/>]
    /// against the float64 reference with the 2x rule (RowDeviation about the float32 column mean both references see).
    /// </summary>
    public static (bool Ok, string Message) Check(int rows, int columns, Reductions actual)
    {
        ArgumentNullException.ThrowIfNull(actual);
        var x = Problem(rows, columns);
        var xd = Bench.Widen(x);
        var mean32 = FloatMean(x, rows, columns);
        return Bench.Check2x(
        [
            ("Gram", actual.Gram, FeatureNormsReference.Gram(xd, rows, columns), FeatureNormsReference.Gram(x, rows, columns)),
            ("ColumnSums", actual.ColumnSums, FeatureNormsReference.ColumnSums(xd, rows, columns), FeatureNormsReference.ColumnSums(x, rows, columns)),
            ("UnitColumnSums", actual.UnitColumnSums, FeatureNormsReference.UnitColumnSums(xd, rows, columns), FeatureNormsReference.UnitColumnSums(x, rows, columns)),
            ("RowDeviation", actual.RowDeviation, FeatureNormsReference.RowDeviation(xd, rows, columns, Bench.Widen(mean32)),
                FeatureNormsReference.RowDeviation(x, rows, columns, mean32)),
        ]);
    }

    // The deviation pass takes the mean as an input: the float32 column mean, which both references are given too.
    private static float[] FloatMean(float[] x, int rows, int columns) =>
        FeatureNormsReference.ColumnSums(x, rows, columns).Select(v => v / rows).ToArray();

    private static CollapseTiming Time(Device device, string reduction, int rows, int columns, int repeats, double minSampleMs)
    {
        Bench.Progress($"collapse {reduction} [{rows}, {columns}] on {device.Backend}");
        var x = Bench.Normal((long)rows * columns, rows + columns);
        using var t = device.FromArray(x, rows, columns);
        using var sums = device.Zeros(columns);
        using var deviation = device.Zeros(rows);
        using var gram = reduction == "Gram" ? device.Zeros(columns, columns) : null;
        using var norms = reduction == "UnitColumnSums" ? RouteKit.FeatureNorms.Forward(t) : null;
        using var mean = reduction == "RowDeviation" ? device.FromArray(FloatMean(x, rows, columns), columns) : null;
        Action call = reduction switch
        {
            "Gram" => () => RouteKit.Collapse.Gram(t, gram),
            "ColumnSums" => () => RouteKit.Collapse.ColumnSums(t, null, sums, rows, columns),
            "UnitColumnSums" => () => RouteKit.Collapse.ColumnSums(t, norms!.L2, sums, rows, columns),
            "RowDeviation" => () => RouteKit.Collapse.RowDeviation(t, mean!, deviation, rows, columns),
            _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "Gram, ColumnSums, UnitColumnSums or RowDeviation."),
        };
        var timing = Bench.Time(device, call, repeats, minSampleMs);
        var gbps = (double)rows * columns * sizeof(float) / (timing.MedianMs * 1e6);
        var gflops = reduction == "Gram" ? 2.0 * rows * columns * (columns + 1) / 2 / (timing.MedianMs * 1e6) : double.NaN;
        return new CollapseTiming(reduction, rows, columns, timing, gbps, gflops);
    }
}
