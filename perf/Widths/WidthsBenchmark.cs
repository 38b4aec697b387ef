// `routekit-perf widths`: the Managed kernels at each SIMD width this machine can run natively, as the issue asks:
// the width is chosen by disabling the wider instruction sets for a process, not by forcing a narrower code path on an
// AVX-512 machine (that would still get AVX-512's 32 registers and encodings). The command runs itself three times as
// child processes: as it is (Vector512 where AVX-512 is there), with DOTNET_EnableAVX512=0 (Vector256: an AVX2-only
// x86) and with DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0 (Vector128: SSE; .NET then also drops FMA, so multiply-adds
// are a multiply and an add, as the kernels' MultiplyAddEstimate is on such a machine). Each child measures its own
// FMA peak (with the same multiply-add), validates each op against the float64 reference on the timed shape, then times:
//   attention: Managed forward and backward, B1 H4 N2048 M2048 D64 (the shape), GFLOP/s and % of that peak;
//   selective scan: Mamba's configuration (softplus, D, z), B1 Dc256 L4096 Nst16, forward and backward Melem/s.
// The table gives each width's figures and its ratio to the first (widest) row: the goals are Vector256 >= 0.8x and
// Vector128 >= 0.4x the Vector512 path, forward and backward.
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.Widths;

/// <summary>One child's measurements.</summary>
public sealed record WidthPoint(
    string Restriction, int WidestBits, int ScanLanes, double FmaGflops, double FmaGflopsPerCpuSecond,
    string AttentionValidation, double AttentionForwardGflops, double AttentionBackwardGflops,
    string ScanValidation, double ScanForwardMelems, double ScanBackwardMelems, string LoadAtEnd);

/// <summary>The width table: a parent that starts one child per restriction, and the child's measurements.</summary>
public static class WidthsBenchmark
{
    /// <summary>The restrictions, widest first: environment variables for the child process.</summary>
    public static IReadOnlyList<(string Name, (string Key, string Value)[] Environment)> Restrictions { get; } =
    [
        ("none", []),
        ("DOTNET_EnableAVX512=0", [("DOTNET_EnableAVX512", "0")]),
        ("DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0", [("DOTNET_EnableAVX512", "0"), ("DOTNET_EnableAVX2", "0")]),
    ];

    private const string ResultPrefix = "WIDTHS-RESULT ";

    /// <summary>
    /// Runs the three children, writes the table to <paramref name="output"/> (and widths-&lt;date&gt;.md to
    /// <paramref name="outDir"/>). Returns 0, 1 when a child's validation failed, 4 when a child did not report.
    /// </summary>
    public static int Run(TextWriter output, bool quick, int repeats, LoadCheck load, string? outDir, string command)
    {
        var started = DateTime.UtcNow;
        var report = new StringBuilder(Bench.ReportHeader($"Managed kernels per SIMD width, {started:yyyy-MM-dd HH:mm} UTC", load, command));
        report.AppendLine($"- shapes: attention {AttentionShapeFor(quick)} forward and backward; selective scan B1 Dc{ScanChannels(quick)} L{ScanSteps(quick)} Nst{ScanBenchmark.States} (softplus, D, z)");
        report.AppendLine("- each row is a child process with the wider instruction sets disabled; its FMA peak is measured in that process with the kernels' multiply-add");
        report.AppendLine();
        var points = new List<WidthPoint>();
        foreach (var (name, environment) in Restrictions)
        {
            Bench.Progress($"widths child: {name}");
            var point = RunChild(name, environment, quick, repeats, output);
            if (point is null)
            {
                output.WriteLine($"routekit-perf widths: the child with {name} did not report a result.");
                return 4;
            }
            points.Add(point);
            if (!point.AttentionValidation.StartsWith("passed", StringComparison.Ordinal) || !point.ScanValidation.StartsWith("ok", StringComparison.Ordinal))
            {
                output.WriteLine($"routekit-perf widths: validation failed with {name}: {point.AttentionValidation}; {point.ScanValidation}");
                return 1;
            }
        }
        var top = points[0];
        report.AppendLine("| restriction | width | scan lanes | FMA peak GFLOP/s | attn fwd GFLOP/s | % peak | vs first | attn bwd GFLOP/s | % peak | vs first | scan fwd Melem/s | vs first | scan bwd Melem/s | vs first |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var p in points)
        {
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {p.Restriction} | Vector{p.WidestBits} | {p.ScanLanes} | {p.FmaGflops:F1} | {p.AttentionForwardGflops:F1} | {100 * p.AttentionForwardGflops / p.FmaGflops:F0}% | {p.AttentionForwardGflops / top.AttentionForwardGflops:F2}x | " +
                $"{p.AttentionBackwardGflops:F1} | {100 * p.AttentionBackwardGflops / p.FmaGflops:F0}% | {p.AttentionBackwardGflops / top.AttentionBackwardGflops:F2}x | " +
                $"{p.ScanForwardMelems:F2} | {p.ScanForwardMelems / top.ScanForwardMelems:F2}x | {p.ScanBackwardMelems:F2} | {p.ScanBackwardMelems / top.ScanBackwardMelems:F2}x |"));
        }
        report.AppendLine();
        foreach (var p in points)
            report.AppendLine($"- {p.Restriction}: attention validation {p.AttentionValidation}; scan validation {p.ScanValidation}; load at its end {p.LoadAtEnd}");
        report.AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"widths-{started:yyyy-MM-dd}.md"), report.ToString());
        }
        return 0;
    }

    // This program again, with the restriction's environment, as `widths --child`; its last result line is parsed.
    private static WidthPoint? RunChild(string name, (string Key, string Value)[] environment, bool quick, int repeats, TextWriter output)
    {
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("no process path");
        var start = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(self).Equals("dotnet", StringComparison.OrdinalIgnoreCase))
            start.ArgumentList.Add(typeof(WidthsBenchmark).Assembly.Location);
        foreach (var a in new[] { "widths", "--child", name, "--repeats", repeats.ToString(CultureInfo.InvariantCulture), "--allow-busy" })
            start.ArgumentList.Add(a);
        if (quick) start.ArgumentList.Add("--quick");
        foreach (var (key, value) in environment) start.Environment[key] = value;
        using var child = Process.Start(start) ?? throw new InvalidOperationException($"could not start {self}");
        WidthPoint? point = null;
        while (child.StandardOutput.ReadLine() is { } line)
        {
            if (line.StartsWith(ResultPrefix, StringComparison.Ordinal)) point = JsonSerializer.Deserialize<WidthPoint>(line[ResultPrefix.Length..]);
            else output.WriteLine(line);
        }
        child.WaitForExit();
        return child.ExitCode == 0 ? point : null;
    }

    private static AttentionShape AttentionShapeFor(bool quick) =>
        quick ? new AttentionShape(1, 2, 256, 256, 64, false, Score.Dot, false) : new AttentionShape(1, 4, 2048, 2048, 64, false, Score.Dot, false);

    private static int ScanChannels(bool quick) => quick ? 16 : 256;

    private static int ScanSteps(bool quick) => quick ? 512 : 4096;

    /// <summary>The child: measure this process's width, print one result line. Returns 0, or 1 when validation failed.</summary>
    public static int Child(TextWriter output, string restriction, bool quick, int repeats)
    {
        using var device = Device.Create(Backend.Managed);
        Bench.Progress($"[{restriction}] FMA peak");
        var peak = DevicePeak.Measure(device, quick);
        var fma = FmaPeak.Measure(trials: quick ? 1 : 3);
        Bench.Progress($"[{restriction}] attention");
        var attention = AttentionBenchmark.Run(device, AttentionShapeFor(quick), 1, repeats, peak, output);
        Bench.Progress($"[{restriction}] selective scan");
        var (scanOk, scanMessage, scanForward, scanBackward) = Scan(device, quick, repeats);
        var point = new WidthPoint(restriction, SimdWidth.ActiveBits, SimdWidth.ActiveBits == 128 ? 4 : 8, fma.GflopsPerSecond, fma.GflopsPerCpuSecond,
            attention?.Validation ?? "FAILED (see above)", attention?.ForwardGflops ?? 0, attention?.BackwardGflops ?? 0,
            scanMessage, scanForward, scanBackward, Bench.LoadAverage());
        output.WriteLine(ResultPrefix + JsonSerializer.Serialize(point));
        return attention is not null && scanOk ? 0 : 1;
    }

    // Validates the scan's forward and backward on the timed shape against the float64 reference (2x rule), then times both.
    private static (bool Ok, string Message, double ForwardMelems, double BackwardMelems) Scan(Device device, bool quick, int repeats)
    {
        int dc = ScanChannels(quick), l = ScanSteps(quick), n = ScanBenchmark.States;
        var data = ScanBenchmark.Problem(1, dc, l, n, seed: 11);
        var options = new SelectiveScanOptions { DeltaSoftplus = true };
        var p = SelectiveScanParams.Resolve([1, dc, l], [1, dc, l], [dc, n], [1, n, l], [1, n, l], [dc], [1, dc, l], [dc], null, options);
        using var inputs = ScanBenchmark.Upload(device, data, 1, dc, l);
        using var result = SelectiveScan.Forward(inputs.Inputs, options);
        var dOutData = Bench.Normal((long)dc * l, 12);
        using var dOut = device.FromArray(dOutData, 1, dc, l);
        using var grads = SelectiveScan.Backward(dOut, inputs.Inputs, result, options);
        var wide = Widen(data);
        var refOut = ScanReference.Forward(p, wide).Output;
        var naiveOut = ScanReference.Forward(p, data).Output;
        var refGrads = ScanReference.Backward(p, wide, Bench.Widen(dOutData));
        var naiveGrads = ScanReference.Backward(p, data, dOutData);
        var (ok, message) = Bench.Check2x(
        [
            ("out", result.Output.ToArray(), refOut, naiveOut),
            ("du", grads.DU.ToArray(), refGrads.DU, naiveGrads.DU),
            ("ddelta", grads.DDelta.ToArray(), refGrads.DDelta, naiveGrads.DDelta),
            ("dB", grads.DB.ToArray(), refGrads.DB, naiveGrads.DB),
            ("dC", grads.DC.ToArray(), refGrads.DC, naiveGrads.DC),
            ("dA", grads.DA.ToArray(), refGrads.DA, naiveGrads.DA),
            ("dz", grads.DZ!.ToArray(), refGrads.DZ, naiveGrads.DZ),
        ]);
        message = (ok ? "ok " : "") + message;
        if (!ok) return (false, message, 0, 0);
        var forward = Bench.Time(device, () => SelectiveScan.Forward(inputs.Inputs, options, result), repeats);
        var backward = Bench.Time(device, () => SelectiveScan.Backward(dOut, inputs.Inputs, result, options, grads), repeats);
        var elements = (double)dc * l;
        return (true, message, elements / forward.MedianMs / 1e3, elements / backward.MedianMs / 1e3);
    }

    private static SelectiveScanReferenceInputs<double> Widen(SelectiveScanReferenceInputs<float> x)
    {
        static double[]? W(float[]? a) => a is null ? null : Array.ConvertAll(a, v => (double)v);
        return new(W(x.U)!, W(x.Delta)!, W(x.A)!, W(x.B)!, W(x.C)!, W(x.D), W(x.Z), W(x.DeltaBias), W(x.InitialState));
    }
}
