// `routekit-perf all --backend B [--smoke] [--out DIR]`: the standard grid on one backend, every point validated against
// the float64 Reference before it is timed; one markdown table plus a CSV. The attention points cover D = 32, 64, 128
// (lanes per row T = 4, 8, 16 on ILGPU), both scores, key normalisation and the causal mask, so a Cuda run validates
// every forward and backward kernel family the dispatcher picks at those head dims; the selective-scan section validates
// the forward and every gradient of the scan kernels (ScanBenchmark). Exit 1 if any validation fails.
//
// Grid per backend (B = 1 everywhere):
//   cuda/opencl: H 8, N = M in 1024, 4096, 8192 at D 64 (Dot, causal and not), plus D 32 and 128 and the variants at N 2048.
//   managed: H 4, N = M in 1024, 4096 at D 64, plus D 128 and the variants at N 1024.
//   ilgpu-cpu (the simulator runs one OS thread per GPU thread): H 2, N = M 64, D 32 and 64, every variant.
//   --smoke: proves a build validates and runs, in seconds on the simulator: two awkward shapes (B1 H2 N33 M47 D32 Dot
//   and B1 H2 N33 M47 D64 Distance+Norm causal: lanes T = 4 and 8, both scores), one sample each, and the scan's quick
//   check. On the 2-core CI machine under load the simulator takes 1-5 s per attention call at N = 64, so the full
//   simulator grid (about 6 minutes there) is for `routekit-perf all --backend ilgpu-cpu` by hand.
using System.Text;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Perf.FeatureNorms;
using RouteKit.Perf.Peak;

namespace RouteKit.Perf;

/// <summary>The standard grid.</summary>
public static class StandardGrid
{
    /// <summary>The attention shapes of the grid for <paramref name="backend"/>.</summary>
    public static IReadOnlyList<AttentionShape> Shapes(Backend backend, bool smoke)
    {
        var shapes = new List<AttentionShape>();
        void Variants(int h, int n, int d)
        {
            shapes.Add(new(1, h, n, n, d, true, Score.Distance, true));
            shapes.Add(new(1, h, n, n, d, false, Score.Distance, false));
            shapes.Add(new(1, h, n, n, d, false, Score.Dot, true));
        }
        if (smoke)
            return [new(1, 2, 33, 47, 32, false, Score.Dot, false), new(1, 2, 33, 47, 64, true, Score.Distance, true)];
        if (backend == Backend.IlgpuCpu)
        {
            foreach (var d in new[] { 32, 64 })
            {
                shapes.Add(new(1, 2, 64, 64, d, false, Score.Dot, false));
                Variants(2, 64, d);
            }
            return shapes;
        }
        var gpu = backend is Backend.Cuda or Backend.OpenCL;
        var heads = gpu ? 8 : 4;
        foreach (var n in gpu ? new[] { 1024, 4096, 8192 } : [1024, 4096])
        foreach (var causal in new[] { false, true })
            shapes.Add(new(1, heads, n, n, 64, causal, Score.Dot, false));
        var small = gpu ? 2048 : 1024;
        foreach (var d in gpu ? new[] { 32, 128 } : [128])
            shapes.Add(new(1, heads, small, small, d, false, Score.Dot, false));
        Variants(heads, small, 64);
        return shapes;
    }

    /// <summary>Runs the grid on <paramref name="device"/>; 0, or 1 when a validation failed.</summary>
    /// <param name="device">Where to run.</param>
    /// <param name="smoke">Tiny shapes, one sample.</param>
    /// <param name="outDir">Folder for all-&lt;backend&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="load">The load check taken at the command's start (header and every CSV row).</param>
    public static int Run(Device device, bool smoke, string? outDir, string command, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var repeats = smoke ? 1 : device.Backend == Backend.IlgpuCpu ? 2 : 7;
        var md = new StringBuilder();
        md.Append(Bench.ReportHeader($"routekit-perf all on {device}, {started:yyyy-MM-dd HH:mm} UTC", load, command));
        Bench.Progress($"peaks of {device}");
        var peak = DevicePeak.Measure(device, quick: smoke || device.Backend == Backend.IlgpuCpu);
        md.AppendLine($"- peak: {peak.How}");
        md.AppendLine($"- timing: a warm-up call, then median of {repeats} samples (spread = (max - min) / median); JIT and transfers excluded").AppendLine();

        // The CSV grows a row per point and each row goes to stderr as it is measured, so a run that meets run.sh's
        // timeout still leaves what it measured.
        var stem = outDir is null ? null : Path.Combine(outDir, $"all-{device.Backend.ToString().ToLowerInvariant()}");
        if (stem is not null)
        {
            Directory.CreateDirectory(outDir!);
            File.WriteAllText(stem + ".csv", AttentionBenchmark.CsvHeader + "\n");
        }
        var results = new List<AttentionResult>();
        var validations = new StringWriter();
        var failed = false;
        foreach (var shape in Shapes(device.Backend, smoke))
        {
            Bench.Progress($"attention {shape}");
            var result = AttentionBenchmark.Run(device, shape, 1, repeats, peak, validations, minSampleMs: smoke ? 0 : 50);
            if (result is null)
            {
                failed = true;
                continue;
            }
            results.Add(result);
            Bench.Progress(AttentionBenchmark.TableRow(result));
            if (stem is not null) File.AppendAllText(stem + ".csv", AttentionBenchmark.CsvRow(result, load) + "\n");
        }
        md.AppendLine("## Attention (variant 1)").AppendLine().AppendLine(AttentionBenchmark.TableHeader);
        foreach (var r in results) md.AppendLine(AttentionBenchmark.TableRow(r));
        md.AppendLine().AppendLine("Validation (2x rule against the float64 Reference on the (batch, head) slices named):").AppendLine();
        foreach (var line in validations.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries)) md.AppendLine($"- {line}");

        Bench.Progress("selective scan");
        var scan = new StringWriter();
        var scanCode = device.Backend == Backend.Managed ? ScanBenchmark.Run(scan, smoke) : ScanBenchmark.RunDevice(scan, device.Backend, smoke || device.Backend == Backend.IlgpuCpu);
        failed |= scanCode != 0;
        md.AppendLine().AppendLine("## Selective scan").AppendLine().Append(scan);
        if (device.Backend == Backend.Managed)
        {
            Bench.Progress("feature norms");
            var norms = new StringWriter();
            failed |= FeatureNormsBenchmark.Run(norms, smoke) != 0;
            md.AppendLine().AppendLine("## Feature norms").AppendLine().Append(norms);
        }
        md.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        md.AppendLine($"- result: {(failed ? "VALIDATION FAILED (failing points were not timed)" : "every point validated")}");

        Console.Out.Write(md);
        if (stem is not null) File.WriteAllText(stem + ".md", md.ToString());
        return failed ? 1 : 0;
    }
}
