// Managed SGEMM (bindings/Managed/Sgemm.cs, the engine of Linear) in GFLOP/s against the FMA peak measured in the same
// run (perf/Peak/FmaPeak.cs, before and after the grid, the larger taken), side by side with ONNX Runtime's CPU MatMul
// (MLAS) on the same operands. Validates before it times (llm.c): the three products of a linear layer at an awkward
// shape against the float64 reference with the 2x rule, then at every timed size 256 sampled entries of C against
// float64 dot products, with the naive float32 dot's error as the yardstick, for RouteKit's C and for ONNX Runtime's.
// Square sizes 512^3, 1024^3, 2048^3 (--quick: 256^3), C = A B with A, B, C row-major (the dx = dy W layout).
// ONNX Runtime: a one-node MatMul model with A and B both graph inputs (OnnxModel.MatMul), so it packs B on every run
// as Sgemm does; OnnxBenchmark.CpuSessionOptions: Environment.ProcessorCount intra-op threads, the same number of
// threads Sgemm fans its tiles out to (min(tiles, ProcessorCount)), no spinning. Samples of the two are interleaved
// (Managed, ORT, Managed, ...) after a warm-up of each, median of --repeats; "Managed / ORT" is the Managed rate over
// ORT's (>= 1: Managed is faster). Goal (issue 11, training stack): Managed >= 0.9x ORT and >= 60% of the FMA peak.
// Where ONNX Runtime's native library is absent (the GPU bundle leaves it out) the ORT columns are empty and a line says so.
// Run: `routekit-perf gemm [--quick] [--repeats N] [--out DIR]` (DIR gets gemm-managed-<date>.md and .csv).
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using RouteKit.Perf.Common;
using RouteKit.Perf.Onnx;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.Gemm;

/// <summary>One timed size.</summary>
/// <param name="Size">M = N = K.</param>
/// <param name="Timing">Wall and CPU time per call.</param>
/// <param name="Gflops">Wall-clock GFLOP/s (2 n^3 flops per call).</param>
/// <param name="GflopsPerCpuSecond">GFLOP per second of process CPU time.</param>
/// <param name="Ort">ONNX Runtime's MatMul on the same operands, timed interleaved with Managed; null where ONNX Runtime
/// is not in this build.</param>
public sealed record GemmTiming(int Size, Timing Timing, double Gflops, double GflopsPerCpuSecond, GemmPeerTiming? Ort = null)
{
    /// <summary>Managed GFLOP/s over ONNX Runtime's (= ORT time / Managed time; >= 1: Managed is faster); NaN without ORT.</summary>
    public double ManagedOverOrt => Ort is null ? double.NaN : Gflops / Ort.Gflops;
}

/// <summary>The peer's side of one size.</summary>
/// <param name="Timing">Wall and CPU time per call.</param>
/// <param name="Gflops">Wall-clock GFLOP/s.</param>
/// <param name="GflopsPerCpuSecond">GFLOP per second of process CPU time (ORT's native threads included).</param>
public sealed record GemmPeerTiming(Timing Timing, double Gflops, double GflopsPerCpuSecond);

/// <summary>Times <see cref="Sgemm"/> on the Managed backend.</summary>
public static class GemmBenchmark
{
    /// <summary>Validates, measures the FMA peak, times each size and writes a markdown report; 0, or 1 when validation fails.</summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">256^3 only, few repeats (seconds; tests and smoke runs).</param>
    /// <param name="repeats">Timed samples per size.</param>
    /// <param name="load">The load check taken at the command's start.</param>
    /// <param name="outDir">Folder for gemm-managed-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    public static int Run(TextWriter output, bool quick, int repeats, LoadCheck load, string? outDir, string? command)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"Managed SGEMM benchmark, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        report.AppendLine(string.Create(Bench.Inv,
            $"- SGEMM: Vector{Sgemm.VectorBits} (widest accelerated), micro-kernel {Sgemm.MR} x {Sgemm.NR} vectors, KC {Sgemm.KC}, MC {Sgemm.MC}, NC {Sgemm.NC}, {Environment.ProcessorCount} threads"));
        int[] sizes = quick ? [256] : [512, 1024, 2048];
        repeats = quick ? Math.Min(repeats, 3) : repeats;
        Bench.Progress("validate Linear's three products against the float64 reference");
        if (!ValidateLinear(report))
        {
            output.Write(report);
            return 1;
        }
        Bench.Progress("FMA peak");
        var peak = FmaPeak.Measure(trials: quick ? 2 : 5);
        var ortVersion = OrtVersion(out var ortMissing);
        report.AppendLine(ortVersion is null
            ? $"- ONNX Runtime: not in this build ({ortMissing}); Managed only"
            : $"- ONNX Runtime {ortVersion} CPU provider: one MatMul node, a and b graph inputs, {Environment.ProcessorCount} intra-op threads " +
              "(Environment.ProcessorCount, as many as Sgemm's workers), sequential, all graph optimisations, no spinning; samples interleaved with Managed's");
        var timings = new List<GemmTiming>();
        foreach (var n in sizes)
        {
            var a = Bench.Normal((long)n * n, 1);
            var b = Bench.Normal((long)n * n, 2);
            var c = new float[n * n];
            Multiply(n, a, b, c);
            if (!ValidateSampled(n, a, b, c, report, "RouteKit"))
            {
                output.Write(report);
                return 1;
            }
            var flops = 2.0 * n * n * n;
            if (ortVersion is null)
            {
                Bench.Progress($"time {n}^3");
                var timing = Bench.TimeHost(() => Multiply(n, a, b, c), repeats);
                timings.Add(new GemmTiming(n, timing, flops / (timing.MedianMs * 1e6), flops / (timing.CpuMs * 1e6)));
                continue;
            }
            using var options = OnnxBenchmark.CpuSessionOptions();
            using var session = new InferenceSession(OnnxModel.MatMul(n, n, n), options);
            var ortC = new float[n * n];
            using var oa = OrtValue.CreateTensorValueFromMemory(a, [n, n]);
            using var ob = OrtValue.CreateTensorValueFromMemory(b, [n, n]);
            using var oc = OrtValue.CreateTensorValueFromMemory(ortC, [n, n]);
            using var run = new RunOptions();
            string[] inNames = ["a", "b"], outNames = ["c"];
            OrtValue[] ins = [oa, ob], outs = [oc];
            void Ort() => session.Run(run, inNames, ins, outNames, outs);
            Ort();
            if (!ValidateSampled(n, a, b, ortC, report, "ONNX Runtime"))
            {
                output.Write(report);
                return 1;
            }
            Bench.Progress($"time {n}^3, Managed and ONNX Runtime interleaved");
            var (managed, ort) = Bench.Interleaved(() => Multiply(n, a, b, c), Ort, repeats);
            timings.Add(new GemmTiming(n, managed, flops / (managed.MedianMs * 1e6), flops / (managed.CpuMs * 1e6),
                new GemmPeerTiming(ort, flops / (ort.MedianMs * 1e6), flops / (ort.CpuMs * 1e6))));
        }
        var peakAfter = FmaPeak.Measure(trials: quick ? 2 : 3);
        // As in attention-managed: the larger estimate is the denominator, so a peak measured while the machine was busy
        // cannot flatter the percentages; per CPU-second is one core's FMA rate, robust to other load.
        var cpuPeak = Math.Max(peak.GflopsPerCpuSecond, peakAfter.GflopsPerCpuSecond);
        var wallPeak = Math.Max(Math.Max(peak.GflopsPerSecond, peakAfter.GflopsPerSecond), cpuPeak * peak.Threads);
        report.AppendLine(string.Create(Bench.Inv,
            $"- FMA peak ({peak.Threads} threads, Vector{peak.VectorBits}, measured before and after): {wallPeak:F1} GFLOP/s wall " +
            $"(measured {peak.GflopsPerSecond:F1} before, {peakAfter.GflopsPerSecond:F1} after), {cpuPeak:F1} GFLOP per CPU-second (one core)"));
        report.AppendLine("- % of peak (wall) divides wall GFLOP/s by the wall peak; % of peak (CPU) divides GFLOP per CPU-second by one core's " +
                          "peak per CPU-second: how well the cores do while they run, the fair figure on a busy machine.");
        report.AppendLine("- Managed / ORT: Managed's wall GFLOP/s over ONNX Runtime's (ORT median time over Managed's; >= 1: Managed is faster). " +
                          "Goal (issue 11): Managed >= 0.9x ORT and >= 60% of the FMA peak.").AppendLine();
        report.AppendLine("| n (M = N = K) | median ms | min ms | max ms | GFLOP/s | % of peak (wall) | GFLOP per CPU-s | % of peak (CPU) | ORT median ms | ORT GFLOP/s | ORT % of peak (wall) | ORT % of peak (CPU) | Managed / ORT |");
        report.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in timings)
            report.AppendLine(string.Create(Bench.Inv,
                $"| {t.Size} | {t.Timing.MedianMs:F2} | {t.Timing.MinMs:F2} | {t.Timing.MaxMs:F2} | {t.Gflops:F1} | {100 * t.Gflops / wallPeak:F0}% | {t.GflopsPerCpuSecond:F1} | {100 * t.GflopsPerCpuSecond / cpuPeak:F0}% | ") +
                (t.Ort is { } o
                    ? string.Create(Bench.Inv, $"{o.Timing.MedianMs:F2} | {o.Gflops:F1} | {100 * o.Gflops / wallPeak:F0}% | {100 * o.GflopsPerCpuSecond / cpuPeak:F0}% | {t.ManagedOverOrt:F2}x |")
                    : "n/a | n/a | n/a | n/a | n/a |"));
        report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            var csv = new StringBuilder(CsvHeader + "\n");
            foreach (var t in timings) csv.AppendLine(CsvRow(t, wallPeak, cpuPeak, load));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"gemm-managed-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }

    /// <summary>
    /// The CSV columns: Managed's timing and fractions of the peaks, then ONNX Runtime's (ort_*) and managed_over_ort
    /// (empty where ONNX Runtime is not in the build), then the load check's.
    /// </summary>
    public const string CsvHeader = "n,median_ms,min_ms,max_ms,gflops,peak_gflops,peak_fraction,gflops_per_cpu_s,cpu_peak_gflops,cpu_peak_fraction,vector_bits," +
                                    "ort_threads,ort_median_ms,ort_min_ms,ort_max_ms,ort_gflops,ort_peak_fraction,ort_gflops_per_cpu_s,ort_cpu_peak_fraction,managed_over_ort," +
                                    LoadCheck.CsvHeader;

    /// <summary>One row of <see cref="CsvHeader"/>.</summary>
    public static string CsvRow(GemmTiming t, double wallPeak, double cpuPeak, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(load);
        var managed = string.Create(Bench.Inv,
            $"{t.Size},{t.Timing.MedianMs:F3},{t.Timing.MinMs:F3},{t.Timing.MaxMs:F3},{t.Gflops:F2},{wallPeak:F2},{t.Gflops / wallPeak:F4},{t.GflopsPerCpuSecond:F2},{cpuPeak:F2},{t.GflopsPerCpuSecond / cpuPeak:F4},{Sgemm.VectorBits}");
        var ort = t.Ort is { } o
            ? string.Create(Bench.Inv,
                $"{Environment.ProcessorCount},{o.Timing.MedianMs:F3},{o.Timing.MinMs:F3},{o.Timing.MaxMs:F3},{o.Gflops:F2},{o.Gflops / wallPeak:F4},{o.GflopsPerCpuSecond:F2},{o.GflopsPerCpuSecond / cpuPeak:F4},{t.ManagedOverOrt:F4}")
            : ",,,,,,,,";
        return $"{managed},{ort},{load.CsvFields}";
    }

    // ONNX Runtime's version, or null (with why) where its native library is not in this build (perf/gpu/bundle.sh).
    private static string? OrtVersion(out string? missing)
    {
        missing = null;
        try
        {
            return OrtEnv.Instance().GetVersionString();
        }
        catch (Exception e) when (e is DllNotFoundException || e.InnerException is DllNotFoundException)
        {
            missing = (e.InnerException ?? e).Message.Split('\n')[0];
            return null;
        }
    }

    private static unsafe void Multiply(int n, float[] a, float[] b, float[] c)
    {
        fixed (float* pa = a, pb = b, pc = c)
            Sgemm.Multiply(n, n, n, new MatrixOperand((nint)pa, n, 1), new MatrixOperand((nint)pb, n, 1), pc, n);
    }

    // Linear's forward and backward (all three stride patterns) at an awkward shape, 2x rule against float64.
    private static bool ValidateLinear(StringBuilder report)
    {
        const int t = 97, i = 131, o = 113;
        using var device = Device.Create(Backend.Managed);
        var xs = Bench.Normal(t * i, 3);
        var ws = Bench.Normal(o * i, 4);
        var bs = Bench.Normal(o, 5);
        var dys = Bench.Normal(t * o, 6);
        using var x = device.FromArray(xs, t, i);
        using var w = device.FromArray(ws, o, i);
        using var b = device.FromArray(bs, o);
        using var dy = device.FromArray(dys, t, o);
        using var y = Linear.Forward(x, w, b);
        using var g = Linear.Backward(dy, x, w, hasBias: true);
        var refG = LinearReference.Backward(Bench.Widen(dys), Bench.Widen(xs), Bench.Widen(ws), t, i, o);
        var naiveG = LinearReference.Backward(dys, xs, ws, t, i, o);
        (string Name, float[] Actual, double[] Reference, float[] Naive)[] checks =
        [
            ("y = x W^T + b", y.ToArray(), LinearReference.Forward(Bench.Widen(xs), Bench.Widen(ws), Bench.Widen(bs), t, i, o), LinearReference.Forward(xs, ws, bs, t, i, o)),
            ("dx = dy W", g.DX.ToArray(), refG.DX, naiveG.DX),
            ("dW = dy^T x", g.DW.ToArray(), refG.DW, naiveG.DW),
            ("db", g.DB!.ToArray(), refG.DB, naiveG.DB),
        ];
        foreach (var (name, actual, reference, naive) in checks)
        {
            var (err, naiveErr) = (MaxError(actual, reference), MaxError(naive, reference));
            // The 2x rule's floor at the output's scale (8 float32 ulps of an O(1) value, DESIGN.md section 7).
            var bound = 2 * naiveErr + 1e-6 * Math.Max(1, reference.Max(Math.Abs));
            if (err > bound)
            {
                report.AppendLine(string.Create(Bench.Inv, $"validation FAILED: {name} at [{t}, {i}, {o}]: maxErr {err:E3} > bound {bound:E3}"));
                return false;
            }
        }
        report.AppendLine($"- validated Linear forward and backward at T={t}, I={i}, O={o} against the float64 reference (2x rule)");
        return true;
    }

    // 256 sampled entries of C against float64 dot products; the naive float32 dot (sequential, unfused) sets the bound.
    private static bool ValidateSampled(int n, float[] a, float[] b, float[] c, StringBuilder report, string who)
    {
        var rng = new Random(n);
        double err = 0, naiveErr = 0, scale = 1;
        for (var s = 0; s < 256; s++)
        {
            var (r, col) = (rng.Next(n), rng.Next(n));
            double exact = 0;
            var naive = 0f;
            for (var k = 0; k < n; k++)
            {
                exact += (double)a[r * n + k] * b[k * n + col];
                naive += a[r * n + k] * b[k * n + col];
            }
            err = Math.Max(err, Math.Abs(c[r * n + col] - exact));
            naiveErr = Math.Max(naiveErr, Math.Abs(naive - exact));
            scale = Math.Max(scale, Math.Abs(exact));
        }
        var bound = 2 * naiveErr + 1e-6 * scale;
        if (err > bound || !double.IsFinite(err))
        {
            report.AppendLine(string.Create(Bench.Inv, $"validation FAILED at {n}^3 ({who}): sampled maxErr {err:E3} > bound {bound:E3}"));
            return false;
        }
        report.AppendLine(string.Create(Bench.Inv, $"- validated {n}^3 ({who}): 256 sampled entries, maxErr {err:E2} <= 2 x naive {naiveErr:E2} + floor"));
        return true;
    }

    private static double MaxError(float[] actual, double[] reference)
    {
        var max = 0.0;
        for (var k = 0; k < reference.Length; k++) max = Math.Max(max, Math.Abs(actual[k] - reference[k]));
        return double.IsNaN(max) ? double.PositiveInfinity : max;
    }
}
