// Times the depth router on Managed (bindings/Managed/DepthRouterManaged.cs) llm.c style: validate one small shape
// against the float64 reference first (the 2x rule vs naive float32; abort on a mismatch), then time forward and
// backward over L, for every layer at once (Lq = L) and for one block's call (Lq = 1, the last layer reading all L),
// and report GFLOP/s and the fraction of the FMA peak measured in the same run, and, since the Lq = 1 call is
// memory-bound, the bytes it must move and their rate against the memory copy bandwidth (CopyBandwidth, read + write)
// measured in the same run, with the time that copy rate needs for those bytes ("floor ms").
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim (defaults T = 4096, H = 8, D = 64).
// FLOPs: forward 4 D per (query layer, visible layer) pair per (token, head) (a score dot and a value axpy), backward
// 2.5x that (score, dO . v, and three axpys: dq, dk', dv), the FlashAttention ratio.
// Bytes (the minimum the op must move, float32, C = T H columns, diagnostics off): forward reads q, k, v and writes O and
// stats, 4 (2 Lq C D + 2 L C D + 2 Lq C); backward reads dO, q, O, stats, k, v and writes dq, dk, dv,
// 4 (4 Lq C D + 2 Lq C + 4 L C D). Not counted: the launcher's finiteness checks, which read q, k, v (and dO, O in the
// backward) once more, and the line reads of write-allocate stores.
// Run: `dotnet run -c Release --project perf -- depth [--quick] [--out DIR] [--allow-busy]`.
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;
using static RouteKit.Perf.Common.Bench;

namespace RouteKit.Perf.Depth;

/// <summary>One timed point.</summary>
public sealed record DepthPoint(int Lq, int L, int T, int H, int D, Timing Forward, Timing Backward, double ForwardFlops)
{
    private double Columns => (double)T * H;
    /// <summary>Bytes the forward must move at minimum: q, k, v read, O and stats written.</summary>
    public double ForwardBytes => 4 * (2.0 * Lq * Columns * D + 2.0 * L * Columns * D + 2.0 * Lq * Columns);
    /// <summary>Bytes the backward must move at minimum: dO, q, O, stats, k, v read, dq, dk, dv written.</summary>
    public double BackwardBytes => 4 * (4.0 * Lq * Columns * D + 2.0 * Lq * Columns + 4.0 * L * Columns * D);
    /// <summary>Forward GB/s (1e9 bytes/s) by wall clock.</summary>
    public double ForwardGBps => ForwardBytes / Forward.MedianMs / 1e6;
    /// <summary>Backward GB/s by wall clock.</summary>
    public double BackwardGBps => BackwardBytes / Backward.MedianMs / 1e6;
    /// <summary>Forward GFLOP/s by wall clock.</summary>
    public double ForwardGflops => ForwardFlops / Forward.MedianMs / 1e6;
    /// <summary>Backward GFLOP/s by wall clock.</summary>
    public double BackwardGflops => 2.5 * ForwardFlops / Backward.MedianMs / 1e6;
}

/// <summary>The validate-then-time benchmark of the Managed depth router.</summary>
public static class DepthBenchmark
{
    /// <summary>Validates, measures the FMA peak, times the grid, prints the report (and writes it under outDir).</summary>
    public static int Run(bool quick, string? outDir, string command, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var report = new StringBuilder(ReportHeader($"Managed depth router, {started:yyyy-MM-dd HH:mm} UTC", load, command));
        report.AppendLine($"- Vector<float>: {System.Numerics.Vector<float>.Count * 32} bits");
        using var device = Device.Create(Backend.Managed);
        Progress("validating against the float64 reference");
        var (ok, message) = Validate(device);
        report.AppendLine($"- validation (Lq5 L7 T33 H3 D59 Distance+Norm, per-head brakes, 2x rule vs naive float32): {message}");
        if (!ok)
        {
            Console.Out.Write(report);
            Console.Error.WriteLine("validation failed: not timing a wrong kernel.");
            return 1;
        }
        Progress("FMA peak");
        var peak = FmaPeak.Measure();
        Progress("memory copy bandwidth");
        long copyBytes = quick ? 64L << 20 : 512L << 20;
        var copyRepeats = quick ? 3 : 7;
        var copy = CopyBandwidth.Measure(copyBytes, copyRepeats);
        int t = quick ? 512 : 4096, h = 8, d = 64, repeats = quick ? 3 : 7;
        var points = new List<DepthPoint>();
        foreach (var l in quick ? new[] { 8, 24 } : [8, 24, 64])
        foreach (var lq in new[] { l, 1 })
        {
            Progress($"Lq={lq} L={l} T={t} H={h} D={d}");
            points.Add(TimePoint(device, lq, l, t, h, d, repeats));
        }
        var wallPeak = Math.Max(peak.GflopsPerSecond, peak.GflopsPerCpuSecond * peak.Threads);
        report.AppendLine(string.Create(Inv,
            $"- FMA peak ({peak.Threads} threads, Vector{peak.VectorBits}): {peak.GflopsPerSecond:F1} GFLOP/s wall, " +
            $"{peak.GflopsPerCpuSecond:F1} GFLOP per CPU-second; \"% peak\" divides by {wallPeak:F1} GFLOP/s"));
        report.AppendLine(string.Create(Inv,
            $"- memory copy (read + write, {Environment.ProcessorCount} threads, {copyBytes >> 20} MiB, median of {copyRepeats}): {copy:F1} GB/s; " +
            $"\"% copy\" divides the op's minimum bytes per second by it, \"floor ms\" is those bytes at that rate"));
        report.AppendLine().AppendLine("| Lq | L | T | H | D | fwd ms | fwd GFLOP/s | fwd % peak | fwd % CPU | fwd MB | fwd GB/s | fwd % copy | fwd floor ms | bwd ms | bwd GFLOP/s | bwd % peak | bwd % CPU | bwd MB | bwd GB/s | bwd % copy | bwd floor ms |");
        report.AppendLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var pt in points)
        {
            double fwdCpu = pt.ForwardFlops / pt.Forward.CpuMs / 1e6, bwdCpu = 2.5 * pt.ForwardFlops / pt.Backward.CpuMs / 1e6;
            report.AppendLine(string.Create(Inv,
                $"| {pt.Lq} | {pt.L} | {pt.T} | {pt.H} | {pt.D} | {pt.Forward.MedianMs:F2} | {pt.ForwardGflops:F1} | " +
                $"{100 * pt.ForwardGflops / wallPeak:F1} | {100 * fwdCpu / peak.GflopsPerCpuSecond:F1} | " +
                $"{pt.ForwardBytes / 1e6:F0} | {pt.ForwardGBps:F1} | {100 * pt.ForwardGBps / copy:F1} | {pt.ForwardBytes / copy / 1e6:F2} | " +
                $"{pt.Backward.MedianMs:F2} | {pt.BackwardGflops:F1} | {100 * pt.BackwardGflops / wallPeak:F1} | {100 * bwdCpu / peak.GflopsPerCpuSecond:F1} | " +
                $"{pt.BackwardBytes / 1e6:F0} | {pt.BackwardGBps:F1} | {100 * pt.BackwardGBps / copy:F1} | {pt.BackwardBytes / copy / 1e6:F2} |"));
        }
        report.AppendLine().AppendLine($"- load average at end: {LoadAverage()}");
        Console.Out.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"managed-depth-{started:yyyy-MM-dd}.md"), report.ToString());
        }
        return 0;
    }

    private static DepthPoint TimePoint(Device device, int lq, int l, int t, int h, int d, int repeats)
    {
        var options = new DepthRouterOptions { Score = Score.Distance, NormalizeKeys = true, Brake = 0.1f };
        using var q = device.FromArray(Normal((long)lq * t * h * d, 1), lq, t, h, d);   // [Lq, T, H, D]
        using var k = device.FromArray(Normal((long)l * t * h * d, 2), l, t, h, d);     // [L, T, H, D]
        using var v = device.FromArray(Normal((long)l * t * h * d, 3), l, t, h, d);     // [L, T, H, D]
        using var dOut = device.FromArray(Normal((long)lq * t * h * d, 4), lq, t, h, d); // [Lq, T, H, D]
        using var fwd = DepthRouter.Forward(q, k, v, options);
        using var grads = DepthRouter.Backward(dOut, q, k, v, fwd, options);
        var forward = Time(device, () => DepthRouter.Forward(q, k, v, options, fwd), repeats);
        var backward = Time(device, () => DepthRouter.Backward(dOut, q, k, v, fwd, options, grads), repeats);
        var flops = DepthRouterParams.Resolve([lq, t, h, d], [l, t, h, d], [l, t, h, d], options).ForwardFlops;
        return new DepthPoint(lq, l, t, h, d, forward, backward, flops);
    }

    private static (bool Ok, string Message) Validate(Device device)
    {
        const int lq = 5, l = 7, t = 33, h = 3, d = 59;
        var options = new DepthRouterOptions { Score = Score.Distance, NormalizeKeys = true, BrakeSlopes = [0.1f, 0.5f, 2f] };
        var p = DepthRouterParams.Resolve([lq, t, h, d], [l, t, h, d], [l, t, h, d], options);
        float[] q = Normal(lq * t * h * d, 11), k = Normal(l * t * h * d, 12), v = Normal(l * t * h * d, 13), dOut = Normal(lq * t * h * d, 14);
        using var tq = device.FromArray(q, p.QueryShape);
        using var tk = device.FromArray(k, p.KeyShape);
        using var tv = device.FromArray(v, p.KeyShape);
        using var tdo = device.FromArray(dOut, p.QueryShape);
        using var fwd = DepthRouter.Forward(tq, tk, tv, options);
        using var grads = DepthRouter.Backward(tdo, tq, tk, tv, fwd, options);
        double[] qd = Widen(q), kd = Widen(k), vd = Widen(v), dd = Widen(dOut);
        var (f64, f32) = (DepthRouterReference.Forward(p, qd, kd, vd), DepthRouterReference.Forward(p, q, k, v));
        var (g64, g32) = (DepthRouterReference.Backward(p, dd, qd, kd, vd), DepthRouterReference.Backward(p, dOut, q, k, v));
        (string, float[], double[], float[])[] checks =
        [
            ("O", fwd.Output.ToArray(), f64.Output, f32.Output), ("dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ),
            ("dK", grads.DK.ToArray(), g64.DK, g32.DK), ("dV", grads.DV.ToArray(), g64.DV, g32.DV),
        ];
        return Check2x(checks);
    }
}
