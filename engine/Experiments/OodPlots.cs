// Plots of `routekit ood` (PNG), from the per-image scores of this process at the classifier's chosen layer:
//   roc_<set>.png   ROC curves of every classifier score, ID test vs that OOD set
//   hist_l1.png     histogram (density) of the L1 norm: ID test and every OOD set
//   hist_nan.png    the same for NAN
// Histogram bins span [0, the 99.5th percentile of all images' values], so one far set (noise) does not squash the
// rest; values beyond it fall in the last bin.
namespace RouteKit.Engine.Experiments;

internal static class OodPlots
{
    public const int Bins = 40;

    public static void Write(string folder, IReadOnlyDictionary<(string Model, string Set), ImageScores> scores, int layer)
    {
        var id = scores[(OodExperiment.Classifier, "id")];
        var name = OodExperiment.LayerName(layer);
        foreach (var set in OodExperiment.OodSets)
        {
            var ood = scores[(OodExperiment.Classifier, set)];
            var plot = new ScottPlot.Plot();
            foreach (var score in OodScoring.ClassifierScores)
            {
                var (fpr, tpr) = OodScoring.Roc(id.Score(score, layer), ood.Score(score, layer));
                var line = plot.Add.Scatter(fpr, tpr);
                line.MarkerSize = 0;
                line.LegendText = score;
            }
            plot.Title($"ROC, Fashion-MNIST (ID) vs {set}; norms at {name}");
            plot.XLabel("false-positive rate (OOD kept)");
            plot.YLabel("true-positive rate (ID kept)");
            plot.ShowLegend(ScottPlot.Alignment.LowerRight);
            plot.SavePng(Path.Combine(folder, $"roc_{set}.png"), 800, 600);
        }
        foreach (var score in new[] { OodScoring.L1, OodScoring.Nan })
        {
            var series = new List<(string Label, double[] Values)> { ("ID (Fashion-MNIST test)", id.Score(score, layer)) };
            series.AddRange(OodExperiment.OodSets.Select(s => (s, scores[(OodExperiment.Classifier, s)].Score(score, layer))));
            var pooled = series.SelectMany(s => s.Values).Order().ToArray();
            var top = pooled[(int)Math.Min(pooled.Length - 1, Math.Floor(0.995 * pooled.Length))];
            if (!(top > 0)) top = 1;
            var plot = new ScottPlot.Plot();
            foreach (var (label, values) in series)
            {
                var density = new double[Bins];
                foreach (var v in values) density[Math.Clamp((int)(v / top * Bins), 0, Bins - 1)] += Bins / (top * values.Length);
                var centres = Enumerable.Range(0, Bins).Select(b => (b + 0.5) * top / Bins).ToArray();
                var line = plot.Add.Scatter(centres, density);
                line.MarkerSize = 0;
                line.ConnectStyle = ScottPlot.ConnectStyle.StepVertical;
                line.LegendText = label;
            }
            plot.Title($"{(score == OodScoring.L1 ? "L1 norm" : "NAN = L1 / L0")} at {name}: ID vs OOD");
            plot.XLabel(score == OodScoring.L1 ? "L1 norm" : "NAN");
            plot.YLabel("density");
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
            plot.SavePng(Path.Combine(folder, $"hist_{score}.png"), 900, 600);
        }
    }
}
