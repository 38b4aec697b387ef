// Times the Managed attention (bindings/Managed/AttentionManaged.cs) llm.c style: validate one small shape against the
// float64 reference first and abort on a mismatch, then time forward and backward over a grid and report GFLOP/s and
// the fraction of the FMA peak measured in the same run, plus the peak memory of an N = M = 65536 forward.
//
// Shapes: B batch (1), H heads (chosen so every call does >= 2.5 GFLOP), N = M sequence length, D head dim.
// Run: `dotnet run -c Release --project perf -- attention-managed [--quick] [--out DIR]`; nothing else heavy should run.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using RouteKit.Perf.Peak;
using RouteKit.Reference;
using static RouteKit.Perf.Common.Bench;

namespace RouteKit.Perf.Attention;

/// <summary>One timed point of the grid.</summary>
/// <remarks>Cpu* are per second of process CPU time (all threads), the fair measure on a shared machine.</remarks>
public sealed record ManagedAttentionPoint(
    int N, int D, bool Causal, string Variant, int B, int H, double ForwardMs, double ForwardGflops, double ForwardCpuGflops,
    double BackwardMs, double BackwardGflops, double BackwardCpuGflops);

/// <summary>The validate-then-time benchmark of the Managed attention.</summary>
public static class ManagedAttentionBenchmark
{

    /// <summary>The score variants timed at every shape, Dot first (the others are reported relative to it).</summary>
    public static readonly (string Name, Score Score, bool Normalize)[] Variants =
    [
        ("Dot", Score.Dot, false), ("Distance", Score.Distance, false), ("Dot+Norm", Score.Dot, true), ("Distance+Norm", Score.Distance, true),
    ];

    /// <summary>Runs everything and prints the markdown report (and writes it with a CSV under outDir); 1 on a failed validation.</summary>
    /// <param name="quick">Small grid, few repeats.</param>
    /// <param name="outDir">Folder for managed-attention-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="load">The load check taken at the command's start (header and every CSV row).</param>
    public static int Run(bool quick, string? outDir, string command, RouteKit.Perf.Common.LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        report.AppendLine($"# Managed attention benchmark, {started:yyyy-MM-dd HH:mm} UTC").AppendLine();
        foreach (var line in load.MarkdownLines()) report.AppendLine(line);
        report.AppendLine($"- machine: {CpuModel()}, {Environment.ProcessorCount} logical cores, Vector512 accelerated: {System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated}");
        report.AppendLine($"- runtime: {System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription}, Server GC: {System.Runtime.GCSettings.IsServerGC}");
        report.AppendLine($"- git commit: {GitCommit()}");
        report.AppendLine($"- command: `{command}`");

        using var device = Device.Create(Backend.Managed);
        Progress("validating against the float64 reference");
        var validation = Validate(device);
        report.AppendLine($"- validation (B1 H4/2 N150 M200 D72 Distance+Norm causal brake, 2x rule vs naive float32): {validation.Message}");
        if (!validation.Ok)
        {
            Console.Out.Write(report);
            Console.Error.WriteLine("validation failed: not timing a wrong kernel.");
            return 1;
        }

        Progress("memory check: forward at N = M = 65536, D = 64");
        var memory = MemoryCheck(device, causal: quick);
        Progress("FMA peak");
        var peak = FmaPeak.Measure();

        int[] lengths = quick ? [512, 2048] : [512, 1024, 2048, 4096, 8192];
        int[] dims = quick ? [64] : [64, 128];
        var repeats = quick ? 3 : 5;
        var points = new List<ManagedAttentionPoint>();
        foreach (var d in dims)
        foreach (var n in lengths)
        foreach (var causal in new[] { false, true })
        {
            Progress($"N={n} D={d} {(causal ? "causal" : "full")}");
            points.AddRange(TimeShape(device, n, d, causal, repeats));
        }
        var peakAfter = FmaPeak.Measure(trials: 3);
        // The largest estimate is the denominator: a peak measured while the machine was busy would flatter every
        // percentage. The per-CPU-second peak (one core's FMA rate) times the cores is what an idle machine gives,
        // and is robust where the wall-clock measurement only got some of the cores.
        var cpuPeak = Math.Max(peak.GflopsPerCpuSecond, peakAfter.GflopsPerCpuSecond);
        var wallPeak = Math.Max(Math.Max(peak.GflopsPerSecond, peakAfter.GflopsPerSecond), cpuPeak * peak.Threads);

        report.AppendLine(string.Create(Inv,
            $"- FMA peak ({peak.Threads} threads, Vector{peak.VectorBits}, 24 chains each, measured before and after the grid): " +
            $"{cpuPeak:F1} GFLOP per CPU-second (before {peak.GflopsPerCpuSecond:F1}, after {peakAfter.GflopsPerCpuSecond:F1}); " +
            $"wall clock {peak.GflopsPerSecond:F1} before and {peakAfter.GflopsPerSecond:F1} after; the \"% wall\" denominator is " +
            $"the largest of those and {peak.Threads} x the per-CPU-second peak: {wallPeak:F1} GFLOP/s"));
        report.AppendLine();
        report.AppendLine("## Forward and backward").AppendLine();
        report.AppendLine($"Median of {repeats} timed samples after a warm-up, each sample >= 50 ms (calls repeated inside it). " +
                          "FLOPs: forward 4 B H N M D, backward 2.5x that, both halved when causal (FlashAttention's count). " +
                          "\"% wall\" is wall-clock GFLOP/s over the wall-clock FMA peak; \"% CPU\" is GFLOP per CPU-second over the FMA " +
                          "GFLOP per CPU-second, which other processes on the machine do not distort (on a shared machine a timed call may get " +
                          "only some of the cores, which lowers \"% wall\" but not \"% CPU\"). \"vs Dot\" is CPU time " +
                          "relative to Dot at the same shape; the four variants' samples are interleaved.").AppendLine();
        report.AppendLine("| N | D | causal | variant | H | fwd ms | fwd GFLOP/s | fwd % wall | fwd % CPU | fwd vs Dot | bwd ms | bwd GFLOP/s | bwd % wall | bwd % CPU | bwd vs Dot |");
        report.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var pt in points)
        {
            var dot = DotAt(points, pt);
            report.AppendLine(string.Create(Inv,
                $"| {pt.N} | {pt.D} | {(pt.Causal ? "yes" : "no")} | {pt.Variant} | {pt.H} | {pt.ForwardMs:F2} | {pt.ForwardGflops:F1} | " +
                $"{100 * pt.ForwardGflops / wallPeak:F1} | {100 * pt.ForwardCpuGflops / cpuPeak:F1} | {dot.ForwardCpuGflops / pt.ForwardCpuGflops:F3} | " +
                $"{pt.BackwardMs:F2} | {pt.BackwardGflops:F1} | {100 * pt.BackwardGflops / wallPeak:F1} | {100 * pt.BackwardCpuGflops / cpuPeak:F1} | " +
                $"{dot.BackwardCpuGflops / pt.BackwardCpuGflops:F3} |"));
        }
        report.AppendLine();

        report.AppendLine("## Memory").AppendLine();
        report.AppendLine(string.Create(Inv,
            $"Forward at B1 H1 N=M=65536 D64 {(memory.Causal ? "causal" : "non-causal")}: {memory.Seconds:F1} s, peak resident memory " +
            $"{memory.PeakBytes / 1048576.0:F0} MiB ({memory.Source}); limit 1024 MiB: {(memory.PeakBytes < 1L << 30 ? "met" : "NOT met")}."));
        report.AppendLine();

        report.AppendLine("## Targets").AppendLine();
        foreach (var line in Targets(points, wallPeak, cpuPeak, memory)) report.AppendLine($"- {line}");
        report.AppendLine($"- load average at end: {LoadAverage()}");

        var csv = new StringBuilder("n,m,d,causal,variant,b,h,forward_ms,forward_gflops,forward_wall_peak_fraction,forward_cpu_gflops,forward_cpu_peak_fraction," +
                                    "backward_ms,backward_gflops,backward_wall_peak_fraction,backward_cpu_gflops,backward_cpu_peak_fraction," +
                                    RouteKit.Perf.Common.LoadCheck.CsvHeader + "\n");
        foreach (var pt in points)
            csv.AppendLine(string.Create(Inv,
                $"{pt.N},{pt.N},{pt.D},{pt.Causal},{pt.Variant},{pt.B},{pt.H},{pt.ForwardMs:F3},{pt.ForwardGflops:F2},{pt.ForwardGflops / wallPeak:F4}," +
                $"{pt.ForwardCpuGflops:F2},{pt.ForwardCpuGflops / cpuPeak:F4},{pt.BackwardMs:F3},{pt.BackwardGflops:F2},{pt.BackwardGflops / wallPeak:F4}," +
                $"{pt.BackwardCpuGflops:F2},{pt.BackwardCpuGflops / cpuPeak:F4},{load.CsvFields}"));

        Console.Out.Write(report);
        Console.Out.WriteLine();
        Console.Out.Write(csv);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"managed-attention-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString() + "\n## CSV\n\n```\n" + csv + "```\n");
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }

    private static ManagedAttentionPoint DotAt(List<ManagedAttentionPoint> points, ManagedAttentionPoint pt) =>
        points.First(x => x.N == pt.N && x.D == pt.D && x.Causal == pt.Causal && x.Variant == "Dot");

    private static IEnumerable<string> Targets(List<ManagedAttentionPoint> points, double wallPeak, double cpuPeak,
        (long PeakBytes, double Seconds, bool Causal, string Source) memory)
    {
        foreach (var d in points.Select(x => x.D).Distinct())
        {
            var at = points.FirstOrDefault(x => x.N == 4096 && x.D == d && !x.Causal && x.Variant == "Dot");
            if (at is null) continue;
            double wall = at.ForwardGflops / wallPeak, cpu = at.ForwardCpuGflops / cpuPeak;
            yield return string.Create(Inv,
                $"forward N=4096 D={d} Dot non-causal: {100 * wall:F1}% of the FMA peak by wall clock, {100 * cpu:F1}% by CPU time " +
                $"(target >= 35% at D=64: {(d != 64 ? "n/a" : wall >= 0.35 && cpu >= 0.35 ? "met by both" : cpu >= 0.35 ? "met by CPU time only" : "NOT met")}); " +
                $"backward {100 * at.BackwardGflops / wallPeak:F1}% wall, {100 * at.BackwardCpuGflops / cpuPeak:F1}% CPU");
        }
        foreach (var (name, pick) in new (string, Func<ManagedAttentionPoint, double>)[] { ("forward", x => x.ForwardCpuGflops), ("backward", x => x.BackwardCpuGflops) })
        {
            var worst = double.NegativeInfinity;
            var worstAt = "";
            foreach (var pt in points.Where(x => x.Variant != "Dot" && x.N >= 2048))
            {
                var over = pick(DotAt(points, pt)) / pick(pt) - 1;
                if (over > worst) (worst, worstAt) = (over, $"{pt.Variant} N={pt.N} D={pt.D}{(pt.Causal ? " causal" : "")}");
            }
            if (worstAt.Length > 0)
                yield return string.Create(Inv,
                    $"Distance / NormalizeKeys {name} CPU-time overhead over Dot (N >= 2048): worst {100 * worst:F1}% ({worstAt}); " +
                    $"target <= 5%: {(worst <= 0.05 ? "met" : "NOT met")}");
        }
        yield return string.Create(Inv, $"N = M = 65536 forward peak memory {memory.PeakBytes / 1048576.0:F0} MiB; target < 1 GiB: {(memory.PeakBytes < 1L << 30 ? "met" : "NOT met")}");
    }

    /// <summary>
    /// Times forward and backward of every score variant at one shape: median of <paramref name="repeats"/> samples after
    /// a warm-up. The variants' samples are interleaved (Dot, Distance, ..., Dot, Distance, ...) so that a change in the
    /// machine's other load during the run falls on all of them alike and their ratios stay fair.
    /// </summary>
    public static ManagedAttentionPoint[] TimeShape(Device device, int n, int d, bool causal, int repeats)
    {
        const int b = 1;
        var perHead = 4.0 * n * n * d * (causal ? 0.5 : 1.0);
        var h = (int)Math.Clamp(Math.Ceiling(2.5e9 / perHead), 1, 64);
        using var q = device.FromArray(Normal(b * h * n * d, 1), b, h, n, d); // [B, H, N, D]
        using var k = device.FromArray(Normal(b * h * n * d, 2), b, h, n, d); // [B, H, M, D]
        using var v = device.FromArray(Normal(b * h * n * d, 3), b, h, n, d); // [B, H, M, D]
        using var dOut = device.FromArray(Normal(b * h * n * d, 4), b, h, n, d); // [B, H, N, D]
        var calls = new List<(Action Forward, Action Backward, IDisposable[] Outputs)>();
        foreach (var variant in Variants)
        {
            var options = new AttentionOptions { Score = variant.Score, NormalizeKeys = variant.Normalize, Causal = causal };
            var fwd = RouteKit.Attention.Forward(q, k, v, options);
            var grads = RouteKit.Attention.Backward(dOut, q, k, v, fwd, options);
            calls.Add((() => RouteKit.Attention.Forward(q, k, v, options, fwd),
                () => RouteKit.Attention.Backward(dOut, q, k, v, fwd, options, grads), [fwd, grads]));
        }
        try
        {
            var forward = Interleaved(calls.Select(c => c.Forward).ToArray(), repeats);
            var backward = Interleaved(calls.Select(c => c.Backward).ToArray(), repeats);
            var flops = perHead * b * h;
            return Variants.Select((variant, i) => new ManagedAttentionPoint(n, d, causal, variant.Name, b, h,
                forward[i].WallMs, flops / forward[i].WallMs / 1e6, flops / forward[i].CpuMs / 1e6,
                backward[i].WallMs, 2.5 * flops / backward[i].WallMs / 1e6, 2.5 * flops / backward[i].CpuMs / 1e6)).ToArray();
        }
        finally
        {
            foreach (var output in calls.SelectMany(c => c.Outputs)) output.Dispose();
        }
    }

    // Median wall and CPU milliseconds per call of each action; a sample repeats its call until it lasts >= 50 ms so
    // short calls are not timer noise.
    private static (double WallMs, double CpuMs)[] Interleaved(Action[] actions, int repeats)
    {
        using var process = Process.GetCurrentProcess();
        var clock = new Stopwatch();
        var inner = new int[actions.Length];
        for (var a = 0; a < actions.Length; a++)
        {
            clock.Restart();
            actions[a]();
            inner[a] = (int)Math.Max(1, Math.Ceiling(50 / Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3)));
        }
        var wall = new double[actions.Length, repeats];
        var cpu = new double[actions.Length, repeats];
        for (var r = 0; r < repeats; r++)
        for (var a = 0; a < actions.Length; a++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            clock.Restart();
            for (var i = 0; i < inner[a]; i++) actions[a]();
            wall[a, r] = clock.Elapsed.TotalMilliseconds / inner[a];
            process.Refresh();
            cpu[a, r] = (process.TotalProcessorTime - cpu0).TotalMilliseconds / inner[a];
        }
        return Enumerable.Range(0, actions.Length).Select(a => (MedianOf(wall, a), MedianOf(cpu, a))).ToArray();
    }

    private static double MedianOf(double[,] samples, int row)
    {
        var values = Enumerable.Range(0, samples.GetLength(1)).Select(r => samples[row, r]).Order().ToArray();
        return values[values.Length / 2];
    }

    private static (bool Ok, string Message) Validate(Device device)
    {
        const int b = 1, h = 4, hkv = 2, n = 150, m = 200, d = 72;
        var options = new AttentionOptions
        {
            Score = Score.Distance, NormalizeKeys = true, Causal = true, BrakeSlopes = AttentionOptions.AlibiSlopes(h),
        };
        var p = AttentionParams.Resolve([b, h, n, d], [b, hkv, m, d], [b, hkv, m, d], options);
        float[] q = Normal(b * h * n * d, 11), k = Normal(b * hkv * m * d, 12), v = Normal(b * hkv * m * d, 13), dOut = Normal(b * h * n * d, 14);
        using var tq = device.FromArray(q, b, h, n, d); // [B, H, N, D]
        using var tk = device.FromArray(k, b, hkv, m, d); // [B, Hkv, M, D]
        using var tv = device.FromArray(v, b, hkv, m, d); // [B, Hkv, M, D]
        using var tdo = device.FromArray(dOut, b, h, n, d); // [B, H, N, D]
        using var fwd = RouteKit.Attention.Forward(tq, tk, tv, options);
        using var grads = RouteKit.Attention.Backward(tdo, tq, tk, tv, fwd, options);
        double[] qd = Widen(q), kd = Widen(k), vd = Widen(v), dd = Widen(dOut);
        var f64 = AttentionReference.Forward(p, qd, kd, vd);
        var f32 = AttentionReference.Forward(p, q, k, v);
        var g64 = AttentionReference.Backward(p, dd, qd, kd, vd);
        var g32 = AttentionReference.Backward(p, dOut, q, k, v);
        (string, float[], double[], float[])[] checks =
        [
            ("O", fwd.Output.ToArray(), f64.Output, f32.Output), ("Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse),
            ("dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ), ("dK", grads.DK.ToArray(), g64.DK, g32.DK), ("dV", grads.DV.ToArray(), g64.DV, g32.DV),
        ];
        return Check2x(checks);
    }

    private static (long PeakBytes, double Seconds, bool Causal, string Source) MemoryCheck(Device device, bool causal)
    {
        const int n = 65536, d = 64;
        GC.Collect();
        var reset = TryResetPeak();
        var clock = Stopwatch.StartNew();
        using (var q = device.FromArray(Normal(n * d, 21), 1, 1, n, d)) // [B, H, N, D]
        using (var k = device.FromArray(Normal(n * d, 22), 1, 1, n, d)) // [B, H, M, D]
        using (var v = device.FromArray(Normal(n * d, 23), 1, 1, n, d)) // [B, H, M, D]
        using (RouteKit.Attention.Forward(q, k, v, new AttentionOptions { Causal = causal }))
        {
        }
        var seconds = clock.Elapsed.TotalSeconds;
        var hwm = ReadStatusKb("VmHWM");
        return hwm is { } kb
            ? (kb * 1024, seconds, causal, reset ? "VmHWM after resetting it via /proc/self/clear_refs" : "VmHWM of the whole process")
            : (Process.GetCurrentProcess().PeakWorkingSet64, seconds, causal, "Process.PeakWorkingSet64 of the whole process");
    }

    private static bool TryResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static long? ReadStatusKb(string key)
    {
        if (!File.Exists("/proc/self/status")) return null;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], Inv);
        return null;
    }
}
