// Helpers every perf command shares: seeded inputs, the machine description a results file needs (CPU, load, commit),
// and timing that counts only the op: Stopwatch plus process CPU time on the CPU backends, ILGPU profiling markers
// (device-side timestamps around the launches) on ILGPU accelerators, so JIT and transfers never enter a sample.
using System.Diagnostics;
using System.Globalization;
using ILGPU.Runtime;

namespace RouteKit.Perf.Common;

/// <summary>Median and spread of one timed call, in milliseconds per call.</summary>
/// <param name="MedianMs">Median over the samples.</param>
/// <param name="MinMs">Fastest sample.</param>
/// <param name="MaxMs">Slowest sample.</param>
/// <param name="CpuMs">Median process CPU milliseconds per call (all threads); NaN where the clock is on the device.</param>
/// <param name="Clock">"wall" or "device markers".</param>
public sealed record Timing(double MedianMs, double MinMs, double MaxMs, double CpuMs, string Clock)
{
    /// <summary>(max - min) / median: the relative spread of the samples.</summary>
    public double Spread => (MaxMs - MinMs) / MedianMs;
}

/// <summary>Shared benchmark helpers.</summary>
public static class Bench
{
    /// <summary>Invariant culture for every number written to a report.</summary>
    public static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>Seeded standard-normal floats (Box-Muller), the same on every machine.</summary>
    public static float[] Normal(long count, int seed)
    {
        var rng = new Random(seed);
        var x = new float[count];
        for (long i = 0; i < count; i++)
            x[i] = (float)(Math.Sqrt(-2.0 * Math.Log(1.0 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        return x;
    }

    /// <summary>Widens to float64 for the reference.</summary>
    public static double[] Widen(float[] x) => Array.ConvertAll(x, static f => (double)f);

    /// <summary>
    /// Times <paramref name="call"/>: one warm-up call (JIT, kernel loading, first-touch allocation), then
    /// <paramref name="repeats"/> samples. On an ILGPU device each sample is the span between two profiling markers
    /// on the default stream around <c>inner</c> calls; elsewhere a sample is wall time around <c>inner</c> calls,
    /// where inner is chosen so one sample lasts at least <paramref name="minSampleMs"/> (timer resolution).
    /// </summary>
    public static Timing Time(Device device, Action call, int repeats, double minSampleMs = 50)
    {
        call();
        device.Synchronize();
        var inner = 1;
        var clock = new Stopwatch();
        if (minSampleMs > 0)
        {
            clock.Restart();
            call();
            device.Synchronize();
            inner = (int)Math.Clamp(Math.Ceiling(minSampleMs / Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
        }
        var wall = new double[repeats];
        var cpu = new double[repeats];
        var acc = device.Accelerator;
        using var process = Process.GetCurrentProcess();
        for (var r = 0; r < repeats; r++)
        {
            if (acc is not null && acc.AcceleratorType != AcceleratorType.CPU)
            {
                using var start = acc.DefaultStream.AddProfilingMarker();
                for (var i = 0; i < inner; i++) call();
                using var end = acc.DefaultStream.AddProfilingMarker();
                end.Synchronize();
                wall[r] = end.MeasureFrom(start).TotalMilliseconds / inner;
                cpu[r] = double.NaN;
                continue;
            }
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            clock.Restart();
            for (var i = 0; i < inner; i++) call();
            device.Synchronize();
            wall[r] = clock.Elapsed.TotalMilliseconds / inner;
            process.Refresh();
            cpu[r] = (process.TotalProcessorTime - cpu0).TotalMilliseconds / inner;
        }
        var clockName = acc is not null && acc.AcceleratorType != AcceleratorType.CPU ? "device markers" : "wall";
        return new Timing(Median(wall), wall.Min(), wall.Max(), Median(cpu), clockName);
    }

    /// <summary>Wall-clock timing of a host call (ONNX Runtime, reference loops) with the same warm-up and sampling.</summary>
    public static Timing TimeHost(Action call, int repeats, double minSampleMs = 50)
    {
        call();
        var clock = Stopwatch.StartNew();
        call();
        var inner = (int)Math.Clamp(Math.Ceiling(minSampleMs / Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
        var wall = new double[repeats];
        var cpu = new double[repeats];
        using var process = Process.GetCurrentProcess();
        for (var r = 0; r < repeats; r++)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            clock.Restart();
            for (var i = 0; i < inner; i++) call();
            wall[r] = clock.Elapsed.TotalMilliseconds / inner;
            process.Refresh();
            cpu[r] = (process.TotalProcessorTime - cpu0).TotalMilliseconds / inner;
        }
        return new Timing(Median(wall), wall.Min(), wall.Max(), Median(cpu), "wall");
    }

    /// <summary>
    /// Median timings of two host calls with their samples interleaved (a, b, a, b, ...), so that other load on a shared
    /// machine falls on both alike: one warm-up call of each, one more to size the sample (each sample repeats its call
    /// for at least <paramref name="minSampleMs"/>), then <paramref name="repeats"/> samples of each. CPU time is the
    /// process's (all threads, native ones included) per call.
    /// </summary>
    public static (Timing A, Timing B) Interleaved(Action a, Action b, int repeats, double minSampleMs = 50)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        a();
        b();
        var clock = Stopwatch.StartNew();
        a();
        var innerA = (int)Math.Clamp(Math.Ceiling(minSampleMs / Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
        clock.Restart();
        b();
        var innerB = (int)Math.Clamp(Math.Ceiling(minSampleMs / Math.Max(clock.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
        double[] wallA = new double[repeats], wallB = new double[repeats], cpuA = new double[repeats], cpuB = new double[repeats];
        using var process = Process.GetCurrentProcess();
        (double Wall, double Cpu) Sample(Action call, int inner)
        {
            process.Refresh();
            var cpu0 = process.TotalProcessorTime;
            clock.Restart();
            for (var i = 0; i < inner; i++) call();
            var wall = clock.Elapsed.TotalMilliseconds / inner;
            process.Refresh();
            return (wall, (process.TotalProcessorTime - cpu0).TotalMilliseconds / inner);
        }
        for (var r = 0; r < repeats; r++)
        {
            (wallA[r], cpuA[r]) = Sample(a, innerA);
            (wallB[r], cpuB[r]) = Sample(b, innerB);
        }
        return (new Timing(Median(wallA), wallA.Min(), wallA.Max(), Median(cpuA), "wall"),
            new Timing(Median(wallB), wallB.Min(), wallB.Max(), Median(cpuB), "wall"));
    }

    /// <summary>The middle value (upper middle for an even count).</summary>
    public static double Median(double[] values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }

    /// <summary>
    /// The header of a results file: "# title", a blank line, the load check's lines (the busy warning first), the
    /// machine and commit, and the command when given; ends with a newline.
    /// </summary>
    public static string ReportHeader(string title, LoadCheck load, string? command)
    {
        ArgumentNullException.ThrowIfNull(load);
        var header = new System.Text.StringBuilder().AppendLine($"# {title}").AppendLine();
        foreach (var line in load.MarkdownLines()) header.AppendLine(line);
        header.AppendLine($"- machine: {CpuModel()}, {Environment.ProcessorCount} logical cores; git commit: {GitCommit()}");
        if (command is not null) header.AppendLine($"- command: `{command}`");
        return header.ToString();
    }

    /// <summary>
    /// The validate-before-timing verdict: FlashAttention's 2x rule (max error against the float64 reference at most
    /// twice the naive float32 reference's, plus 1e-6; non-finite reference entries skipped) for each named output,
    /// and one line that says which passed.
    /// </summary>
    public static (bool Ok, string Message) Check2x(IEnumerable<(string What, float[] Actual, double[] Reference, float[] Naive)> checks)
    {
        ArgumentNullException.ThrowIfNull(checks);
        var parts = new List<string>();
        var ok = true;
        foreach (var (what, actual, reference, naive) in checks)
        {
            double err = 0, naiveErr = 0;
            for (var i = 0; i < reference.Length; i++)
            {
                if (!double.IsFinite(reference[i])) continue;
                err = Math.Max(err, Math.Abs(actual[i] - reference[i]));
                naiveErr = Math.Max(naiveErr, Math.Abs(naive[i] - reference[i]));
            }
            var pass = err <= 2 * naiveErr + 1e-6 && !double.IsNaN(err);
            ok &= pass;
            parts.Add(string.Create(Inv, $"{what} {err:E1} (naive {naiveErr:E1}){(pass ? "" : " FAIL")}"));
        }
        return (ok, (ok ? "passed: " : "FAILED: ") + string.Join(", ", parts));
    }

    /// <summary>/proc/loadavg, or n/a.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";

    /// <summary>The CPU's model name from /proc/cpuinfo, else the architecture.</summary>
    public static string CpuModel()
    {
        if (File.Exists("/proc/cpuinfo"))
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal))
                    return line[(line.IndexOf(':') + 1)..].Trim();
        return System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
    }

    /// <summary>The short commit: the COMMIT file a GPU bundle carries, else git, else "unknown".</summary>
    public static string GitCommit()
    {
        var bundled = Path.Combine(AppContext.BaseDirectory, "COMMIT");
        if (File.Exists(bundled)) return File.ReadAllText(bundled).Trim()[..Math.Min(7, File.ReadAllText(bundled).Trim().Length)];
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse --short HEAD") { RedirectStandardOutput = true, RedirectStandardError = true });
            if (git is null) return "unknown";
            var sha = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 ? sha : "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    /// <summary>A progress line on stderr, so stdout stays the report.</summary>
    public static void Progress(string what) => Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {what}");
}
