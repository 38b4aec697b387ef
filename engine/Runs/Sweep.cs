using System.Diagnostics;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace RouteKit.Engine.Runs;

/// <summary>One point of a sweep: a key unique within the experiment and the work that yields its metrics record.</summary>
internal sealed record SweepPoint(string Key, string Label, Func<JsonObject> Compute);

/// <summary>Runs the points of a sweep that are not in metrics.jsonl yet, appending each record as it completes.</summary>
internal static class Sweep
{
    /// <summary>
    /// Computes every point not already done. With a terminal, a Spectre progress bar with the remaining time; otherwise
    /// one plain line per point with the elapsed time and an ETA from the mean time per point so far.
    /// </summary>
    public static void Run(IAnsiConsole console, bool interactive, string title, RunFolder run, IReadOnlyList<SweepPoint> points)
    {
        var todo = points.Where(p => !run.IsDone(p.Key)).ToList();
        if (run.Resumed)
            console.WriteLine($"Resuming {run.Path}: skipped {points.Count - todo.Count} completed point(s), {todo.Count} to go" +
                (run.TornBytes > 0 ? $" (cut a torn last record of {run.TornBytes} bytes)." : "."));
        if (todo.Count == 0) return;
        if (interactive)
        {
            console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask(Markup.Escape(title), maxValue: todo.Count);
                    foreach (var p in todo)
                    {
                        task.Description = Markup.Escape($"{title}: {p.Label}");
                        run.Append(Record(p));
                        task.Increment(1);
                    }
                    task.Description = Markup.Escape(title);
                });
            return;
        }
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < todo.Count; i++)
        {
            run.Append(Record(todo[i]));
            var elapsed = clock.Elapsed.TotalSeconds;
            var eta = elapsed / (i + 1) * (todo.Count - i - 1);
            console.WriteLine($"{title} [{i + 1}/{todo.Count}] {todo[i].Label} ({elapsed:F1} s, ETA {eta:F0} s)");
        }
    }

    private static JsonObject Record(SweepPoint p)
    {
        var clock = Stopwatch.StartNew();
        var record = p.Compute();
        record["key"] = p.Key;
        record["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 4);
        record["completed_utc"] = DateTime.UtcNow.ToString("O");
        return record;
    }

    /// <summary>A JSON number, or a string for NaN and infinities (JSON has no literal for them).</summary>
    public static JsonNode Num(double x) => double.IsFinite(x) ? JsonValue.Create(x) : JsonValue.Create(x.ToString(System.Globalization.CultureInfo.InvariantCulture))!;

    /// <summary>Reads a number written by <see cref="Num"/>.</summary>
    public static double ReadNum(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<double>(out var d) ? d : double.Parse((string)node!, System.Globalization.CultureInfo.InvariantCulture);
}
