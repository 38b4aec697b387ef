// The machine's load when a benchmark starts, in one place for every routekit-perf command that times something
// (attention, all, onnx, attention-managed, featurenorms, gemm, training-ops, scan, scan-device, bdn). Each reads
// /proc/loadavg once before it measures anything and writes the 1-, 5- and 15-minute averages into its markdown header and CSV rows. A run whose
// 1-minute average is above 0.5 per logical core is refused (exit code 3): other work would take cores from the timed
// calls and from the peaks they are divided by, and a "quiet machine" figure from it would not hold. `--allow-busy`
// runs anyway and marks the results as taken on a busy machine: a bold line at the top of the markdown and
// machine=busy in every CSV row. Where /proc/loadavg does not exist (not Linux) the run goes ahead, marked "unknown".
using System.Globalization;

namespace RouteKit.Perf.Common;

/// <summary>The 1-, 5- and 15-minute load averages (run-queue length, as /proc/loadavg gives them).</summary>
/// <param name="One">1-minute average.</param>
/// <param name="Five">5-minute average.</param>
/// <param name="Fifteen">15-minute average.</param>
public sealed record LoadAverages(double One, double Five, double Fifteen)
{
    /// <summary>Where Linux publishes them.</summary>
    public const string ProcPath = "/proc/loadavg";

    /// <summary>
    /// Parses the text of /proc/loadavg ("0.72 0.36 0.14 3/92 3406": three averages, then runnable/total tasks and
    /// the last pid, which are ignored). Throws <see cref="FormatException"/> naming the text when the first three
    /// fields are not non-negative numbers.
    /// </summary>
    public static LoadAverages Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var fields = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        var values = new double[3];
        for (var i = 0; i < 3; i++)
            if (fields.Length <= i || !double.TryParse(fields[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i])
                || !double.IsFinite(values[i]) || values[i] < 0)
                throw new FormatException($"/proc/loadavg text must start with three non-negative load averages; got '{text.Trim()}'.");
        return new LoadAverages(values[0], values[1], values[2]);
    }

    /// <summary>This machine's load averages, or null where <paramref name="path"/> does not exist (not Linux).</summary>
    public static LoadAverages? Read(string path = ProcPath) => File.Exists(path) ? Parse(File.ReadAllText(path)) : null;

    /// <summary>"0.72 0.36 0.14".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{One:F2} {Five:F2} {Fifteen:F2}");
}

/// <summary>
/// The load check one benchmark run took at its start: the averages, the core count they are judged against, and
/// whether the run was allowed on a busy machine. Every report writes <see cref="MarkdownLines"/> into its header and
/// <see cref="CsvFields"/> into every CSV row.
/// </summary>
/// <param name="Load">The averages at start; null where they cannot be read.</param>
/// <param name="Cores">Logical cores (<see cref="Environment.ProcessorCount"/> for a real run).</param>
/// <param name="AllowBusy">Whether --allow-busy was given.</param>
public sealed record LoadCheck(LoadAverages? Load, int Cores, bool AllowBusy)
{
    /// <summary>The quiet-machine limit on the 1-minute load average, per logical core.</summary>
    public const double PerCoreLimit = 0.5;

    /// <summary>The CSV columns of <see cref="CsvFields"/>.</summary>
    public const string CsvHeader = "load1,load5,load15,machine";

    /// <summary>The limit on the 1-minute average for <see cref="Cores"/> cores.</summary>
    public double Limit => PerCoreLimit * Cores;

    /// <summary>The 1-minute average is above <see cref="Limit"/>.</summary>
    public bool Busy => Load is { } load && load.One > Limit;

    /// <summary>The run must not go ahead: busy and not allowed.</summary>
    public bool Refused => Busy && !AllowBusy;

    /// <summary>"quiet", "busy" or "unknown" (no load averages on this OS).</summary>
    public string Machine => Load is null ? "unknown" : Busy ? "busy" : "quiet";

    /// <summary>The message a refused run prints (on stderr) before it exits with <see cref="LoadGate.RefusedExitCode"/>.</summary>
    public string RefusalMessage => string.Create(CultureInfo.InvariantCulture,
        $"routekit-perf: refusing to benchmark on a busy machine: 1-minute load average {Load?.One:F2} (1, 5, 15 min: {Load}) is above " +
        $"{Limit:F2} ({PerCoreLimit} per logical core x {Cores}). Wait for the machine to be quiet, or pass --allow-busy to run anyway " +
        $"(the results are then marked as taken on a busy machine).");

    /// <summary>
    /// The markdown header lines: on a busy machine first a bold warning, then always the averages, the limit and the
    /// verdict. Each line starts with "- " (or "**" for the warning) and none ends with a newline.
    /// </summary>
    public IReadOnlyList<string> MarkdownLines()
    {
        var lines = new List<string>();
        if (Busy)
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"**BUSY MACHINE: the 1-minute load average was {Load!.One:F2} at start, above the quiet limit {Limit:F2} " +
                $"({PerCoreLimit} per core x {Cores}); run with --allow-busy. These timings are not quiet-machine figures.**"));
        lines.Add(Load is null
            ? $"- load average at start: unknown ({LoadAverages.ProcPath} not found); {Cores} logical cores; machine: unknown (quiet not verified)"
            : string.Create(CultureInfo.InvariantCulture,
                $"- load average at start (1, 5, 15 min): {Load}; {Cores} logical cores; quiet limit 1-minute <= {Limit:F2} " +
                $"({PerCoreLimit} per core); machine: {Machine}{(Busy ? " (--allow-busy)" : "")}"));
        return lines;
    }

    /// <summary>The values of <see cref="CsvHeader"/>: "0.72,0.36,0.14,quiet" (empty averages where unknown).</summary>
    public string CsvFields => Load is { } l
        ? string.Create(CultureInfo.InvariantCulture, $"{l.One:F2},{l.Five:F2},{l.Fifteen:F2},{Machine}")
        : $",,,{Machine}";
}

/// <summary>The gate every timing command passes through before it measures anything.</summary>
public static class LoadGate
{
    /// <summary>Exit code of a run refused because the machine was busy (0 done, 1 validation failed, 2 bad usage).</summary>
    public const int RefusedExitCode = 3;

    /// <summary>The check for <paramref name="load"/> on <paramref name="cores"/> logical cores.</summary>
    public static LoadCheck Check(LoadAverages? load, int cores, bool allowBusy)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cores, 1);
        return new LoadCheck(load, cores, allowBusy);
    }

    /// <summary>
    /// Runs <paramref name="benchmark"/> with <paramref name="check"/> unless the check refuses the run; then writes
    /// <see cref="LoadCheck.RefusalMessage"/> to <paramref name="error"/> and returns <see cref="RefusedExitCode"/>
    /// without calling it.
    /// </summary>
    public static int Run(LoadCheck check, TextWriter error, Func<LoadCheck, int> benchmark)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(benchmark);
        if (check.Refused)
        {
            error.WriteLine(check.RefusalMessage);
            return RefusedExitCode;
        }
        return benchmark(check);
    }
}
