// `routekit reproduce`: every experiment that exists, then results/reproduce/<run-id>/report.md, which links every
// table and plot (relative links into the experiments' own run folders) and states, per claim, what this run showed.
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>Runs every experiment and writes the report.</summary>
internal static class Reproduce
{
    public const string Name = "reproduce";

    /// <summary>The report's path and whether every check passed (the exit code follows it).</summary>
    public sealed record Result(string ReportPath, bool Passed);

    public static Result Run(RunContext ctx)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var identity = IdentityExperiment.Run(ctx);
        var blindness = Blindness.Run(ctx);
        // The report folder is always new; only the experiments resume (each its own latest run with these options).
        using var run = RunFolder.Open(ctx.OutRoot, Name, ctx.Options(Name), ctx.DeviceList(), ctx.CommandLine, resumePath: null);
        run.Append(new JsonObject { ["key"] = IdentityExperiment.Name, ["run_id"] = Path.GetFileName(identity.RunPath), ["failed"] = identity.Failed });
        run.Append(new JsonObject { ["key"] = Blindness.Name, ["run_id"] = Path.GetFileName(blindness.RunPath), ["failed"] = blindness.Failed });
        var reportPath = Path.Combine(run.Path, "report.md");
        File.WriteAllText(reportPath, Report(run, identity, blindness, clock.Elapsed));
        var passed = identity.Failed == 0 && blindness.Failed == 0;
        ctx.Console.WriteLine($"reproduce: report {reportPath} ({clock.Elapsed.TotalSeconds:F0} s); " +
            (passed ? "every check passed." : $"{identity.Failed} identity check(s) and {blindness.Failed} blindness point(s) failed."));
        return new Result(reportPath, passed);
    }

    private static string Report(RunFolder run, IdentityExperiment.Result identity, Blindness.Result blindness, TimeSpan elapsed)
    {
        string Link(string file) => Path.GetRelativePath(run.Path, file).Replace('\\', '/');
        string Files(string runPath) =>
            $"[summary]({Link(Path.Combine(runPath, RunFolder.SummaryFile))}), [metrics]({Link(Path.Combine(runPath, RunFolder.MetricsFile))}), " +
            $"[config]({Link(Path.Combine(runPath, RunFolder.ConfigFile))})";
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run.Path, RunFolder.ConfigFile)))!;
        var md = new StringBuilder();
        md.AppendLine($"# RouteKit reproduce, run {run.RunId}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Commit `{config["git_commit"]}`, options `{config["options"]!.ToJsonString()}`, " +
            $"{elapsed.TotalSeconds:F0} s wall.").AppendLine();
        md.AppendLine("Devices:").AppendLine();
        foreach (var d in config["devices"]!.AsArray()) md.AppendLine($"- {d!["backend"]}: {d["name"]}");
        md.AppendLine();
        md.AppendLine("| experiment | run | files |").AppendLine("|---|---|---|");
        md.AppendLine($"| identity | `{Path.GetFileName(identity.RunPath)}` | {Files(identity.RunPath)} |");
        md.AppendLine($"| blindness | `{Path.GetFileName(blindness.RunPath)}` | {Files(blindness.RunPath)}, [plot PNG]({Link(blindness.Png)}), [plot SVG]({Link(blindness.Svg)}) |");
        md.AppendLine().AppendLine("## Claims").AppendLine();

        var failed = identity.Failed;
        md.AppendLine("### 1. The reframing identity holds numerically").AppendLine();
        md.AppendLine(failed == 0
            ? $"**Shown.** All {identity.Rows.Count} checks passed (Dot = Distance with normalised keys; Distance = Dot + key bias; Distance = Boltzmann; O and every gradient) on {Backends(identity.Rows.Select(r => r.Backend))}."
            : $"**Not shown.** {failed} of {identity.Rows.Count} checks failed; see the [summary]({Link(Path.Combine(identity.RunPath, RunFolder.SummaryFile))}).");
        md.AppendLine();

        var curves = Blindness.Curves(blindness.Points);
        md.AppendLine("### 2. Dot attention is blind to key-magnitude differences that Distance sees: TV grows with sigma").AppendLine();
        md.AppendLine($"![TV vs sigma]({Link(blindness.Png)})").AppendLine();
        var grows = curves.Count(c => c.ShowsGrowth);
        md.AppendLine(grows == curves.Count && blindness.Failed == 0
            ? $"**Shown** for every one of the {curves.Count} (backend, D) curves:"
            : $"**Not shown everywhere:** {grows} of {curves.Count} curves grow as stated; {blindness.Failed} point(s) disagree with the float64 reference:");
        md.AppendLine();
        md.AppendLine("| backend | D | TV at sigma 0 | TV at sigma max | sigma max | decreases | grows |").AppendLine("|---|---:|---:|---:|---:|---:|---|");
        foreach (var c in curves)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {c.Backend} | {c.D} | {c.TvAtZero:0.00E+00} | {c.TvAtMax:F4} | {c.SigmaMax:F1} | {c.Decreases} | {(c.ShowsGrowth ? "yes" : "**no**")} |");
        md.AppendLine().AppendLine(CultureInfo.InvariantCulture,
            $"\"Grows\" means TV(0) <= {Blindness.Coincide:0E+0}, TV(sigma max) >= {Blindness.Grows} and no decrease between neighbouring sigmas.").AppendLine();

        md.AppendLine("### 3. With normalised keys, Dot and Distance coincide").AppendLine();
        var identityA = identity.Rows.Where(r => r.Row.Check.StartsWith("(a)", StringComparison.Ordinal)).ToList();
        var normOk = curves.All(c => c.ShowsNormalisedCoincide) && identityA.All(r => r.Row.Passed);
        md.AppendLine(CultureInfo.InvariantCulture, $"**{(normOk ? "Shown" : "Not shown")}.** Identity check (a): {identityA.Count(r => r.Row.Passed)} of {identityA.Count} " +
            $"passed. Blindness sweep with NormalizeKeys: the largest TV over every sigma and D is {curves.Max(c => c.MaxNormTv):0.00E+00} (threshold {Blindness.Coincide:0E+0}).");
        return md.ToString();
    }

    private static string Backends(IEnumerable<string> names) => string.Join(", ", names.Distinct());
}
