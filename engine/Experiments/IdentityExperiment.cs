// `routekit identity`: the identity checks of IdentityCheck as a resumable sweep, one point per (backend, problem).
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>The identity sweep: every problem of the profile's grid on every selected device.</summary>
internal static class IdentityExperiment
{
    public const string Name = "identity";

    /// <summary>The outcome: the run folder and every row (earlier runs' rows included when resumed).</summary>
    public sealed record Result(string RunPath, List<(string Backend, IdentityRow Row)> Rows)
    {
        /// <summary>Rows over their threshold.</summary>
        public int Failed => Rows.Count(r => !r.Row.Passed);
    }

    public static Result Run(RunContext ctx)
    {
        using var run = ctx.OpenRun(Name);
        var points = new List<SweepPoint>();
        foreach (var device in ctx.Devices)
            foreach (var problem in IdentityCheck.Grid(ctx.Profile, device.Backend))
            {
                var backend = RunContext.BackendName(device.Backend);
                points.Add(new($"{backend}|{problem}", $"{backend} {problem}", () => Point(device, problem, ctx.Seed)));
            }
        Sweep.Run(ctx.Console, ctx.Interactive, Name, run, points);
        var rows = run.Records.SelectMany(r => ((JsonArray)r["rows"]!).Select(x => ((string)r["backend"]!, ReadRow(x!.AsObject())))).ToList();
        run.WriteSummary(Summary(run, rows));
        var result = new Result(run.Path, rows);
        Print(ctx.Console, result);
        return result;
    }

    private static JsonObject Point(Device device, IdentityCheck.Problem problem, int seed)
    {
        var rows = IdentityCheck.Run(device, [problem], seed);
        return new JsonObject
        {
            ["backend"] = RunContext.BackendName(device.Backend),
            ["device"] = device.Name,
            ["problem"] = problem.ToString(),
            ["failed"] = rows.Count(r => !r.Passed),
            ["rows"] = new JsonArray(rows.Select(r => (JsonNode)new JsonObject
            {
                ["check"] = r.Check, ["problem"] = r.Problem, ["quantity"] = r.Quantity,
                ["error"] = Sweep.Num(r.Error), ["magnitude"] = Sweep.Num(r.Magnitude), ["threshold"] = Sweep.Num(r.Threshold), ["rule"] = r.Rule, ["passed"] = r.Passed,
            }).ToArray()),
        };
    }

    private static IdentityRow ReadRow(JsonObject o) => new(
        (string)o["check"]!, (string)o["problem"]!, (string)o["quantity"]!, Sweep.ReadNum(o["error"]), Sweep.ReadNum(o["threshold"]), (string)o["rule"]!,
        Sweep.ReadNum(o["magnitude"]));

    private static void Print(IAnsiConsole console, Result result)
    {
        var table = new Table().AddColumns("backend", "check", "problem", "quantity", "max abs error", "relative", "threshold", "result");
        foreach (var (backend, r) in result.Rows)
            table.AddRow(backend, Markup.Escape(r.Check), r.Problem, Markup.Escape(r.Quantity), r.Error.ToString("0.00E+00", CultureInfo.InvariantCulture),
                r.Relative.ToString("0.00E+00", CultureInfo.InvariantCulture),
                r.Threshold.ToString("0.00E+00", CultureInfo.InvariantCulture), r.Passed ? "[green]pass[/]" : "[red]FAIL[/]");
        console.Write(table);
        console.WriteLine($"{result.Rows.Count - result.Failed} of {result.Rows.Count} checks passed; thresholds: " +
            $"{string.Join("; ", result.Rows.Select(r => r.Row.Rule).Distinct())}.");
    }

    private static string Summary(RunFolder run, List<(string Backend, IdentityRow Row)> rows)
    {
        var failed = rows.Count(r => !r.Row.Passed);
        var md = new StringBuilder();
        md.AppendLine($"# Reframing identity, run {run.RunId}").AppendLine();
        md.AppendLine($"{rows.Count - failed} of {rows.Count} checks passed. Each threshold is stated in the table, fixed in " +
            "`engine/Experiments/IdentityCheck.cs` before any run, and not tuned to the measured errors.").AppendLine();
        md.AppendLine("- (a) with NormalizeKeys, Dot and Distance give the same O, dQ, dK, dV;");
        md.AppendLine("- (b) without, Distance equals Dot on augmented vectors carrying the key bias `-(s/2)|k|^2` (gradients by the chain rule);");
        md.AppendLine("- (c) Distance equals the literal Boltzmann weights `softmax(-(s/2)|q-k|^2)`, float64 and float32.").AppendLine();
        md.AppendLine("Relative error = max abs error / max |b| of the compared quantity; pass/fail uses the absolute rule shown.").AppendLine();
        md.AppendLine("| backend | check | problem | quantity | max abs error | relative | threshold | rule | result |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---|---|");
        foreach (var (backend, r) in rows)
            md.AppendLine(CultureInfo.InvariantCulture, $"| {backend} | {Cell(r.Check)} | {r.Problem} | {Cell(r.Quantity)} | {r.Error:0.00E+00} | {r.Relative:0.00E+00} | {r.Threshold:0.00E+00} | {Cell(r.Rule)} | {(r.Passed ? "pass" : "**FAIL**")} |");
        return md.ToString();
    }

    // Norms like |q-k| would end a Markdown table cell.
    private static string Cell(string text) => text.Replace("|", "\\|", StringComparison.Ordinal);
}
