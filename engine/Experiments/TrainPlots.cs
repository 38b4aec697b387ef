// Plots of a training run from its metrics.jsonl records: loss.png/svg (train loss per step, validation loss) and
// diagnostics.png/svg (per layer: normalised entropy, sink mass, max prob, and effective rank / width against step).
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;

namespace RouteKit.Engine.Experiments;

internal static class Plots
{
    public static void Write(RunFolder run)
    {
        var records = run.Records;
        var train = records.Where(r => (string?)r["kind"] == "train").OrderBy(r => (int)r["step"]!).ToList();
        var val = records.Where(r => (string?)r["kind"] == "val").OrderBy(r => (int)r["step"]!).ToList();
        var plot = new ScottPlot.Plot();
        if (train.Count > 0)
        {
            var s = plot.Add.Scatter(train.Select(r => (double)(int)r["step"]!).ToArray(), train.Select(r => (double)r["loss"]!).ToArray());
            s.LegendText = "train loss (batch)";
            s.MarkerSize = 0;
        }
        if (val.Count > 0)
        {
            var v = plot.Add.Scatter(val.Select(r => (double)(int)r["step"]!).ToArray(), val.Select(r => (double)r["loss"]!).ToArray());
            v.LegendText = "validation loss";
        }
        plot.Title("Byte-level LM: loss (nats per byte)");
        plot.XLabel("step");
        plot.YLabel("loss");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(Path.Combine(run.Path, "loss.png"), 900, 560);
        plot.SaveSvg(Path.Combine(run.Path, "loss.svg"), 900, 560);

        var diag = records.Where(r => (string?)r["kind"] == "diagnostics").ToList();
        var d = new ScottPlot.Plot();
        foreach (var layer in diag.GroupBy(r => (int)r["layer"]!).OrderBy(g => g.Key))
        {
            var rows = layer.OrderBy(r => (int)r["step"]!).ToList();
            var steps = rows.Select(r => (double)(int)r["step"]!).ToArray();
            foreach (var (field, label) in new[] { ("normalized_entropy", "norm. entropy"), ("sink_mass", "sink mass"), ("max_prob", "max prob"), ("mean_cosine", "mean cosine") })
            {
                var ys = rows.Select(r => r[field] is JsonValue v && v.TryGetValue(out double x) ? x : double.NaN).ToArray();
                if (ys.All(double.IsNaN)) continue;
                var s = d.Add.Scatter(steps, ys);
                s.LegendText = $"L{layer.Key} {label}";
            }
        }
        d.Title("Routing diagnostics per layer");
        d.XLabel("step");
        d.YLabel("value (0..1)");
        d.ShowLegend(ScottPlot.Alignment.UpperRight);
        d.SavePng(Path.Combine(run.Path, "diagnostics.png"), 900, 560);
        d.SaveSvg(Path.Combine(run.Path, "diagnostics.svg"), 900, 560);
    }
}
