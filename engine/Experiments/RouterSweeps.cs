// `routekit signature` and `routekit brake` (issue 12, paper A), their shards and their reports.
//
// signature: every router of Router.All trained with its default brake for RouterSizes.Seeds seeds (claim 1: the
//   signature under training), plus content-free routing for attention-dot, mamba and recurrent (claim 2a: the
//   mechanism causes it); attention-normkeys beside attention-dot answers claims 2b and 4 (normalised keys concentrate).
// brake: attention-dot, mamba and recurrent over Router.BrakeGrid (claim 3: the brake moves the onset).
//
// Points are listed in one fixed order; `--shard i/n` computes the points whose index is i mod n, so n machines (a
// Slurm job array, a Kubernetes Indexed Job) each run one shard into its own run folder and `routekit merge` joins them.
// Every verdict below is computed from the records by the thresholds named here, never written by hand.
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>Shard i of n: the points whose index is i mod n.</summary>
internal readonly record struct Shard(int Index, int Count)
{
    public static Shard Whole => new(0, 1);

    public override string ToString() => $"{Index}/{Count}";

    /// <summary>Parses "i/n" (0 &lt;= i &lt; n &lt;= 10000).</summary>
    /// <exception cref="UsageException">Not of that form.</exception>
    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var i)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 10000 && i < n)
            return new Shard(i, n);
        throw new UsageException($"--shard {text}: wanted i/n with 0 <= i < n <= 10000 (e.g. 0/3).");
    }

    public bool Owns(int pointIndex) => pointIndex % Count == Index;
}

/// <summary>The two router sweeps (see the file header).</summary>
internal static class RouterSweeps
{
    public const string SignatureName = "signature";
    public const string BrakeName = "brake";

    /// <summary>Content-free ablation routers (attention-normkeys would only repeat attention-dot's).</summary>
    public static readonly string[] AblationRouters = ["attention-dot", "mamba", "recurrent"];

    /// <summary>Brake sweep routers: one per mixer.</summary>
    public static readonly string[] BrakeRouters = ["attention-dot", "mamba", "recurrent"];

    /// <summary>
    /// Claim 2a: a content-free entropy drop below AblationRatio x the content run's supports the claim (the signature
    /// needs content); at or above AblationSame x it contradicts it (position alone concentrates about as much).
    /// </summary>
    public const double AblationRatio = 0.5, AblationSame = 0.9;

    /// <summary>
    /// A measure has moved when it changed by at least this fraction of its first value (so rounding-level drifts of a
    /// router that did not train its routing count as no change, not as a direction).
    /// </summary>
    public const double MinChange = 0.02;

    /// <summary>Claim 3: |Spearman rho| of onset against brake at least this, and onsets spanning this fraction of the run.</summary>
    public const double BrakeRho = 0.6, BrakeSpan = 0.25;

    public sealed record Result(string RunPath, string Experiment, IReadOnlyList<Verdict> Verdicts, int Missing, string Png);

    /// <summary>One claim's verdict for one router (or "all"), with the numbers behind it.</summary>
    public sealed record Verdict(string Claim, string Router, string Outcome, string Evidence)
    {
        public bool Supports => Outcome == "supports";
    }

    /// <summary>Every point of the experiment, in the order shards count them.</summary>
    public static List<RouterPoint> Points(string experiment, RunProfile profile, int baseSeed)
    {
        var sizes = RouterSizes.For(profile);
        var points = new List<RouterPoint>();
        if (experiment == SignatureName)
        {
            for (var s = 0; s < sizes.Seeds; s++)
            {
                foreach (var r in Router.All) points.Add(new(experiment, r, r.DefaultBrake, false, baseSeed + s));
                foreach (var name in AblationRouters)
                {
                    var r = Router.Named(name);
                    points.Add(new(experiment, r, r.DefaultBrake, true, baseSeed + s));
                }
            }
        }
        else
        {
            var seeds = profile == RunProfile.Full ? 2 : 1;
            for (var s = 0; s < seeds; s++)
                foreach (var name in BrakeRouters)
                {
                    var r = Router.Named(name);
                    foreach (var b in r.BrakeGrid(profile)) points.Add(new(experiment, r, b, false, baseSeed + s));
                }
        }
        return points;
    }

    /// <summary>Runs this shard's points of <paramref name="experiment"/> (resuming when asked) and writes its report.</summary>
    public static Result Run(RunContext ctx, string experiment)
    {
        var device = ctx.ManagedOrFirst;
        var sizes = RouterSizes.For(ctx.Profile);
        return RunShard(ctx, experiment, Points(experiment, ctx.Profile, ctx.Seed),
            p => new SweepPoint(p.Key, p.Label, () => RouterTraining.Compute(device, sizes, p)),
            (run, shard) => Report(run, experiment, ctx.Profile, ctx.Seed, shard));
    }

    /// <summary>
    /// One shard of any sweep (signature, brake, graph, depth): computes the points of <paramref name="all"/> this
    /// shard owns (i, i + n, ...) into its run folder, resuming when asked, writes the report and says how many
    /// verdicts support the claims.
    /// </summary>
    internal static Result RunShard<T>(RunContext ctx, string experiment, IReadOnlyList<T> all, Func<T, SweepPoint> point,
        Func<RunFolder, Shard, Result> report)
    {
        var shard = ctx.Shard ?? Shard.Whole;
        using var run = ctx.OpenRun(experiment);
        Sweep.Run(ctx.Console, ctx.Interactive, $"{experiment} {shard}", run, all.Where((_, i) => shard.Owns(i)).Select(point).ToList());
        var result = report(run, shard);
        ctx.Console.WriteLine($"{experiment}: {result.Verdicts.Count(v => v.Supports)} of {result.Verdicts.Count} verdicts support the claims; " +
            $"summary {Path.Combine(run.Path, RunFolder.SummaryFile)}");
        return result;
    }

    /// <summary>The device a training sweep runs on: a GPU when one is open, else Managed (the simulator is too slow).</summary>
    internal static Device TrainingDevice(RunContext ctx) =>
        ctx.Devices.FirstOrDefault(d => d.Backend is Backend.Cuda or Backend.OpenCL) ?? ctx.ManagedOrFirst;

    /// <summary>A report's notes on a partial shard and on missing points (the first 20 keys named).</summary>
    internal static void ShardNotes(StringBuilder md, Shard shard, int wanted, int all, IReadOnlyList<string> missingKeys)
    {
        if (shard.Count > 1)
            md.AppendLine($"**Partial:** shard {shard} ({wanted} of {all} points); verdicts below use only these points. `routekit merge` joins the shards.").AppendLine();
        if (missingKeys.Count > 0)
            md.AppendLine($"**{missingKeys.Count} of {wanted} points are missing** from this run folder: " +
                string.Join(", ", missingKeys.Take(20).Select(k => $"`{k}`")) + (missingKeys.Count > 20 ? ", ..." : "") + ".").AppendLine();
    }

    /// <summary>Plots and summary.md from the run's records (also what `merge` writes for the joined run).</summary>
    public static Result Report(RunFolder run, string experiment, RunProfile profile, int baseSeed, Shard shard)
    {
        var sizes = RouterSizes.For(profile);
        var all = Points(experiment, profile, baseSeed);
        var wanted = all.Where((_, i) => shard.Owns(i)).ToList();
        var byKey = run.Records.Where(r => r["router"] is not null).ToDictionary(r => (string)r["key"]!, RouterRecord.Read);
        var records = wanted.Where(p => byKey.ContainsKey(p.Key)).Select(p => (Point: p, Record: byKey[p.Key])).ToList();
        var missing = wanted.Count - records.Count;
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"# {(experiment == SignatureName ? "Collapse signature per router" : "Brake sweep: onset of concentration against the brake")} — run {run.RunId}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Byte-level language model on the committed fortunes sample, profile {profile.ToString().ToLowerInvariant()}: {sizes.Layers} layers, width {sizes.Width}, context {sizes.Context}, " +
            $"{sizes.Heads} attention heads, batch {sizes.Batch}, {sizes.Steps} AdamW steps, evaluated at step 0 and every {sizes.EvalEvery} steps on a validation batch.").AppendLine();
        md.AppendLine($"Onset: {Onset.Definition}").AppendLine();
        ShardNotes(md, shard, wanted.Count, all.Count, wanted.Where(p => !byKey.ContainsKey(p.Key)).Select(p => p.Key).ToList());
        var verdicts = experiment == SignatureName ? SignatureReport(run, records, sizes, md) : BrakeReport(run, records, sizes, md);
        md.AppendLine("## Verdicts").AppendLine();
        md.AppendLine("| claim | router | verdict | evidence |").AppendLine("|---|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | {v.Router} | **{v.Outcome}** | {v.Evidence} |");
        md.AppendLine().AppendLine($"Records: [metrics.jsonl]({RunFolder.MetricsFile}) (one record per point: the series per layer).");
        run.WriteSummary(md.ToString());
        return new Result(run.Path, experiment, verdicts, missing, Path.Combine(run.Path, experiment == SignatureName ? "signature-normalized_entropy.png" : "brake-onset.png"));
    }

    // Agreement over seeds of a per-seed outcome (+1 as claimed, -1 the opposite, 0 no clear change): supports when every
    // seed shows the claimed change, contradicts when every seed shows the opposite, otherwise undecided.
    internal static string Agree(IReadOnlyCollection<int> seeds) =>
        seeds.Count == 0 ? "cannot decide" : seeds.All(x => x > 0) ? "supports" : seeds.All(x => x < 0) ? "contradicts"
        : seeds.All(x => x == 0) ? "cannot decide (no clear change)" : $"mixed ({seeds.Count(x => x > 0)} of {seeds.Count} seeds as claimed)";

    // +1 when a measure moved (by MinChange of its first value) in the claimed direction, -1 when the other way, 0 neither.
    internal static int Moved(RouterRecord r, string measure, int sign)
    {
        var (a, b) = r.Ends(measure);
        if (!double.IsFinite(a) || !double.IsFinite(b) || Math.Abs(b - a) < MinChange * Math.Abs(a)) return 0;
        return Math.Sign(b - a) == sign ? 1 : -1;
    }

    internal static string F(double x) => x.ToString("F3", CultureInfo.InvariantCulture);

    private static List<Verdict> SignatureReport(RunFolder run, List<(RouterPoint Point, RouterRecord Record)> records, RouterSizes sizes, StringBuilder md)
    {
        var verdicts = new List<Verdict>();
        var content = records.Where(x => !x.Point.ContentFree).ToList();
        md.AppendLine("## Claim 1: every router concentrates and collapses under training").AppendLine();
        md.AppendLine("First → last evaluation, averaged over layers and seeds. Expected directions: sink mass ↑, normalised entropy ↓, max prob ↑ " +
            "(concentration); effective rank ↓, residual ratio ↓, mean pairwise cosine ↑ (collapse); key-norm CV ↑ (stratification, raw-key attention).").AppendLine();
        md.AppendLine("| router | seeds | sink mass | norm. entropy | max prob | effective rank | residual ratio | mean cosine | key-norm CV | onset (per seed) |");
        md.AppendLine("|---|---:|---|---|---|---|---|---|---|---|");
        foreach (var g in content.GroupBy(x => x.Point.Router.Name))
        {
            var rs = g.Select(x => x.Record).ToList();
            string Move(string m)
            {
                var e = rs.Select(r => r.Ends(m)).Where(e => double.IsFinite(e.First)).ToList();
                return e.Count == 0 ? "–" : $"{F(e.Average(x => x.First))} → {F(e.Average(x => x.Last))}";
            }
            var onsets = string.Join(", ", rs.Select(r => r.Onset is { } o ? o.ToString(CultureInfo.InvariantCulture) : "none"));
            md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | {rs.Count} | {Move("sink_mass")} | {Move("normalized_entropy")} | {Move("max_prob")} | " +
                $"{Move("effective_rank")} | {Move("residual_ratio")} | {Move("mean_cosine")} | {Move("key_norm_cv")} | {onsets} |");
            var router = g.First().Point.Router;
            var concentrates = rs.Select(Concentrates).ToList();
            verdicts.Add(new("1 concentration", g.Key, Agree(concentrates),
                $"entropy ↓ and max prob or sink mass ↑ (each by >= {MinChange:P0}) in {concentrates.Count(x => x > 0)} of {rs.Count} seeds, the opposite in {concentrates.Count(x => x < 0)}"));
            var collapses = rs.Select(Collapses).ToList();
            verdicts.Add(new("1 collapse", g.Key, Agree(collapses),
                $"at least 2 of effective rank ↓, residual ratio ↓, mean cosine ↑ in {collapses.Count(x => x > 0)} of {rs.Count} seeds, the opposite in {collapses.Count(x => x < 0)}"));
            if (router.HasKeyNorms)
            {
                var strat = rs.Select(r => Moved(r, "key_norm_cv", +1)).ToList();
                verdicts.Add(new("1 stratification", g.Key, Agree(strat), $"key-norm CV ↑ in {strat.Count(x => x > 0)} of {rs.Count} seeds, ↓ in {strat.Count(x => x < 0)}"));
            }
        }
        md.AppendLine();

        md.AppendLine("## Claim 2a: content-free routing (weights from position alone) does not develop the signature").AppendLine();
        md.AppendLine("Relative entropy drop (H(0) − H(end)) / H(0), mean over layers and seeds; content-free runs use the same seeds and data. " +
            "For attention, position-only weights have no trainable part (queries and keys are constant, the brake is fixed), so its row checks the plumbing more than the claim.").AppendLine();
        md.AppendLine("| router | drop with content | drop content-free | effective rank end, content | content-free |").AppendLine("|---|---:|---:|---:|---:|");
        foreach (var name in AblationRouters)
        {
            var c = records.Where(x => x.Point.Router.Name == name && !x.Point.ContentFree).Select(x => x.Record).ToList();
            var f = records.Where(x => x.Point.Router.Name == name && x.Point.ContentFree).Select(x => x.Record).ToList();
            if (c.Count == 0 || f.Count == 0)
            {
                verdicts.Add(new("2a content-free", name, "cannot decide", "points missing"));
                continue;
            }
            double dc = c.Average(Drop), df = f.Average(Drop);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {F(dc)} | {F(df)} | {F(c.Average(r => r.Ends("effective_rank").Last))} | {F(f.Average(r => r.Ends("effective_rank").Last))} |");
            var outcome = !(dc >= MinChange) ? "cannot decide (no concentration with content)"
                : df < AblationRatio * dc ? "supports" : df >= AblationSame * dc ? "contradicts" : "cannot decide";
            verdicts.Add(new("2a content-free", name, outcome,
                $"drop {F(df)} content-free vs {F(dc)} with content (supports below {AblationRatio} x, contradicts at or above {AblationSame} x)"));
        }
        md.AppendLine();

        md.AppendLine("## Claims 2b and 4: normalised keys concentrate just the same").AppendLine();
        var dot = content.Where(x => x.Point.Router.Name == "attention-dot").Select(x => x.Record).ToList();
        var norm = content.Where(x => x.Point.Router.Name == "attention-normkeys").Select(x => x.Record).ToList();
        if (dot.Count > 0 && norm.Count > 0)
        {
            var both = norm.Select(Concentrates).ToList();
            double dd = dot.Average(Drop), dn = norm.Average(Drop);
            md.AppendLine(CultureInfo.InvariantCulture, $"Relative entropy drop: raw keys {F(dd)}, normalised keys {F(dn)}; onsets raw " +
                $"{string.Join(", ", dot.Select(r => r.Onset?.ToString(CultureInfo.InvariantCulture) ?? "none"))}, normalised {string.Join(", ", norm.Select(r => r.Onset?.ToString(CultureInfo.InvariantCulture) ?? "none"))}.").AppendLine();
            verdicts.Add(new("2b/4 normalised keys", "attention-normkeys", Agree(both),
                $"concentrates in {both.Count(x => x > 0)} of {both.Count} seeds; drop {F(dn)} vs raw keys {F(dd)}"));
        }
        else
            verdicts.Add(new("2b/4 normalised keys", "attention-normkeys", "cannot decide", "points missing"));

        SignaturePlots(run, records, sizes);
        md.AppendLine("Plots (mean over seeds, one line per router and layer): " + string.Join(", ", RouterTraining.Measures.Select(m => $"[{m}](signature-{m}.png)")) +
            "; [content vs content-free entropy](ablation.png).").AppendLine();
        return verdicts;
    }

    // +1: entropy fell and max prob or sink mass rose; -1: entropy rose and neither rose; 0 otherwise.
    private static int Concentrates(RouterRecord r)
    {
        var h = Moved(r, "normalized_entropy", -1);
        var peak = Math.Max(Moved(r, "max_prob", +1), Moved(r, "sink_mass", +1));
        return h > 0 && peak > 0 ? 1 : h < 0 && peak <= 0 ? -1 : 0;
    }

    // +1: at least 2 of the 3 collapse measures moved as claimed; -1: at least 2 moved the other way.
    private static int Collapses(RouterRecord r)
    {
        int[] m = [Moved(r, "effective_rank", -1), Moved(r, "residual_ratio", -1), Moved(r, "mean_cosine", +1)];
        return m.Count(x => x > 0) >= 2 ? 1 : m.Count(x => x < 0) >= 2 ? -1 : 0;
    }

    private static double Drop(RouterRecord r)
    {
        var (h0, h1) = r.Ends("normalized_entropy");
        return h0 > 0 ? (h0 - h1) / h0 : double.NaN;
    }

    private static List<Verdict> BrakeReport(RunFolder run, List<(RouterPoint Point, RouterRecord Record)> records, RouterSizes sizes, StringBuilder md)
    {
        md.AppendLine("## Claim 3: the brake sets the form: sweeping it moves the onset of concentration").AppendLine();
        return BrakeCurves(run, records.Select(x => (x.Point.Router.Name, x.Point.Router.BrakeName, x.Record)), sizes.Steps, sizes.EvalEvery,
            md, "3 brake moves onset", "brake-onset.png", "validation loss end", r => r.ValLoss[^1]);
    }

    /// <summary>
    /// Onset against brake, one curve per name: a table per curve, a verdict per curve (|Spearman rho| >= BrakeRho and
    /// onsets spanning >= BrakeSpan of the run: supports; spanning at most one evaluation interval: contradicts), and
    /// the plot <paramref name="plotFile"/>. Shared by the brake sweep and the graph experiment.
    /// </summary>
    internal static List<Verdict> BrakeCurves(RunFolder run, IEnumerable<(string Curve, string BrakeName, RouterRecord Record)> items, int steps,
        int evalEvery, StringBuilder md, string claim, string plotFile, string endLabel, Func<RouterRecord, double> endValue)
    {
        var verdicts = new List<Verdict>();
        var censored = steps + evalEvery;
        md.AppendLine(CultureInfo.InvariantCulture, $"Onset per brake value (median over seeds; \"none\" = no onset by step {steps}, ranked as {censored}). " +
            $"Verdict: supports when |Spearman rho| of onset against brake >= {BrakeRho} and the onsets span >= {BrakeSpan} of the run; contradicts when they span no more than one evaluation interval.").AppendLine();
        var curves = new List<(string Router, double[] Brake, double[] Onset)>();
        foreach (var g in items.GroupBy(x => x.Curve))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"### {g.Key} ({g.First().BrakeName})").AppendLine();
            md.AppendLine($"| brake | onset | entropy step 0 → end | {endLabel} |").AppendLine("|---:|---:|---|---:|");
            var rows = g.GroupBy(x => x.Record.Brake).OrderBy(b => b.Key).Select(b =>
            {
                var rs = b.Select(x => x.Record).ToList();
                var onsets = rs.Select(r => (double)(r.Onset ?? censored)).Order().ToList();
                var median = onsets.Count % 2 == 1 ? onsets[onsets.Count / 2] : 0.5 * (onsets[onsets.Count / 2 - 1] + onsets[onsets.Count / 2]);
                var (h0, h1) = (rs.Average(r => r.Ends("normalized_entropy").First), rs.Average(r => r.Ends("normalized_entropy").Last));
                md.AppendLine(CultureInfo.InvariantCulture, $"| {b.Key:G4} | {(median >= censored ? "none" : median.ToString("F0", CultureInfo.InvariantCulture))} | {F(h0)} → {F(h1)} | {F(rs.Average(endValue))} |");
                return (Brake: b.Key, Onset: median);
            }).ToList();
            md.AppendLine();
            curves.Add((g.Key, rows.Select(r => r.Brake).ToArray(), rows.Select(r => r.Onset).ToArray()));
            if (rows.Count < 3)
            {
                verdicts.Add(new(claim, g.Key, "cannot decide", $"{rows.Count} brake values"));
                continue;
            }
            var rho = Spearman(rows.Select(r => r.Brake).ToArray(), rows.Select(r => r.Onset).ToArray());
            var span = rows.Max(r => r.Onset) - rows.Min(r => r.Onset);
            var outcome = span <= evalEvery ? "contradicts"
                : Math.Abs(rho) >= BrakeRho && span >= BrakeSpan * steps ? "supports" : "cannot decide";
            verdicts.Add(new(claim, g.Key, outcome,
                string.Create(CultureInfo.InvariantCulture, $"Spearman rho {rho:F2} over {rows.Count} brake values; onsets span {span:F0} of {steps} steps")));
        }
        BrakePlot(run, curves, steps, evalEvery, plotFile);
        md.AppendLine($"Plot: [onset against brake]({plotFile}), one curve per {(claim.StartsWith('3') ? "router" : "score")}.").AppendLine();
        return verdicts;
    }

    /// <summary>Spearman's rank correlation (average ranks for ties); NaN when either side is constant.</summary>
    public static double Spearman(double[] x, double[] y)
    {
        double[] Ranks(double[] v)
        {
            var order = Enumerable.Range(0, v.Length).OrderBy(i => v[i]).ToArray();
            var ranks = new double[v.Length];
            for (var i = 0; i < order.Length;)
            {
                var j = i;
                while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
                for (var k = i; k <= j; k++) ranks[order[k]] = 0.5 * (i + j);
                i = j + 1;
            }
            return ranks;
        }
        double[] rx = Ranks(x), ry = Ranks(y);
        double mx = rx.Average(), my = ry.Average(), sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < rx.Length; i++)
        {
            sxy += (rx[i] - mx) * (ry[i] - my);
            sxx += (rx[i] - mx) * (rx[i] - mx);
            syy += (ry[i] - my) * (ry[i] - my);
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    private static void SignaturePlots(RunFolder run, List<(RouterPoint Point, RouterRecord Record)> records, RouterSizes sizes)
    {
        var content = records.Where(x => !x.Point.ContentFree).ToList();
        foreach (var m in RouterTraining.Measures)
        {
            var plot = new ScottPlot.Plot();
            var any = false;
            foreach (var g in content.GroupBy(x => x.Point.Router.Name))
            {
                var rs = g.Select(x => x.Record).ToList();
                for (var l = 0; l < sizes.Layers; l++)
                {
                    if (!rs.All(r => l < r.Layers.Count && r.Layers[l].ContainsKey(m))) continue;
                    var ys = Enumerable.Range(0, rs[0].Steps.Length).Select(i => rs.Average(r => r.Layers[l][m][i])).ToArray();
                    var s = plot.Add.Scatter(rs[0].Steps.Select(v => (double)v).ToArray(), ys);
                    s.LegendText = $"{g.Key} L{l}";
                    s.MarkerSize = 3;
                    any = true;
                }
            }
            if (!any) continue;
            plot.Title($"{m.Replace('_', ' ')} per router and layer (mean over seeds)");
            plot.XLabel("step");
            plot.YLabel(m.Replace('_', ' '));
            plot.ShowLegend(ScottPlot.Alignment.UpperRight);
            plot.SavePng(Path.Combine(run.Path, $"signature-{m}.png"), 900, 560);
        }
        var ab = new ScottPlot.Plot();
        foreach (var name in AblationRouters)
            foreach (var free in new[] { false, true })
            {
                var rs = records.Where(x => x.Point.Router.Name == name && x.Point.ContentFree == free).Select(x => x.Record).ToList();
                if (rs.Count == 0) continue;
                var ys = Enumerable.Range(0, rs[0].Steps.Length).Select(i => rs.Average(r => r.Mean("normalized_entropy")[i])).ToArray();
                var s = ab.Add.Scatter(rs[0].Steps.Select(v => (double)v).ToArray(), ys);
                s.LegendText = $"{name} {(free ? "content-free" : "content")}";
                s.LinePattern = free ? ScottPlot.LinePattern.Dashed : ScottPlot.LinePattern.Solid;
            }
        ab.Title("Normalised entropy of the routing weights: content vs position-only routing");
        ab.XLabel("step");
        ab.YLabel("normalised entropy (mean over layers and seeds)");
        ab.ShowLegend(ScottPlot.Alignment.LowerLeft);
        ab.SavePng(Path.Combine(run.Path, "ablation.png"), 900, 560);
    }

    /// <summary>The joined brake figure of <c>reproduce</c>: its file name in the reproduce run folder.</summary>
    public const string JoinedBrakeFile = "brake-onset-every-router.png";

    /// <summary>
    /// Onset against brake for every router of the brake, graph and depth sweeps on one figure (issue 13: the node and
    /// depth routers join the brake sweep): per router and brake value the median onset over seeds as a fraction of its
    /// run's steps (no onset drawn at 1 + one evaluation interval), against log2 of the brake (0 drawn one step left of
    /// the smallest positive value). The brakes differ in kind (ALiBi factor, decay scale, c, edge bias, depth bias),
    /// so read each curve's trend, not values across curves. Returns the PNG's path.
    /// </summary>
    public static string JoinedBrakePlot(string folder, IEnumerable<Result> sweeps)
    {
        var plot = new ScottPlot.Plot();
        foreach (var sweep in sweeps)
        {
            var records = File.ReadLines(Path.Combine(sweep.RunPath, RunFolder.MetricsFile))
                .Select(line => System.Text.Json.Nodes.JsonNode.Parse(line)!.AsObject())
                .Where(r => r["router"] is not null && r["content_free"] is { } cf && !(bool)cf
                    && r["layers"] is System.Text.Json.Nodes.JsonArray { Count: > 0 } layers
                    && layers.All(l => l is System.Text.Json.Nodes.JsonObject o && o.ContainsKey("normalized_entropy"))) // not the depth sweep's plain model
                .Select(RouterRecord.Read).ToList();
            foreach (var g in records.GroupBy(r => r.Router))
            {
                var rows = g.GroupBy(r => r.Brake).OrderBy(b => b.Key).Select(b =>
                {
                    var fractions = b.Select(r =>
                    {
                        var steps = r.Steps[^1];
                        var interval = r.Steps.Length > 1 ? r.Steps[1] - r.Steps[0] : steps;
                        return (double)(r.Onset ?? steps + interval) / steps;
                    }).Order().ToList();
                    var median = fractions.Count % 2 == 1 ? fractions[fractions.Count / 2] : 0.5 * (fractions[fractions.Count / 2 - 1] + fractions[fractions.Count / 2]);
                    return (Brake: b.Key, Onset: median);
                }).ToList();
                if (rows.Count < 2) continue;
                var positive = rows.Where(r => r.Brake > 0).Select(r => r.Brake).DefaultIfEmpty(1).Min();
                var line = plot.Add.Scatter(rows.Select(r => r.Brake > 0 ? Math.Log2(r.Brake) : Math.Log2(positive) - 1).ToArray(), rows.Select(r => r.Onset).ToArray());
                line.LegendText = $"{g.Key} ({sweep.Experiment})";
            }
        }
        plot.Add.HorizontalLine(1, pattern: ScottPlot.LinePattern.Dotted).LegendText = "end of training";
        plot.Title("Onset of concentration against each router's brake (tokens, time, nodes, depth)");
        plot.XLabel("log2 brake (each router's own; 0 drawn leftmost)");
        plot.YLabel("onset / training steps (above 1: none)");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        var path = Path.Combine(folder, JoinedBrakeFile);
        plot.SavePng(path, 1000, 620);
        return path;
    }

    private static void BrakePlot(RunFolder run, List<(string Router, double[] Brake, double[] Onset)> curves, int steps, int evalEvery, string file)
    {
        var plot = new ScottPlot.Plot();
        // log2 of the brake on x; attention's brake 0 (no ALiBi) is drawn one step left of its smallest positive value.
        foreach (var (router, brake, onset) in curves)
        {
            var positive = brake.Where(b => b > 0).DefaultIfEmpty(1).Min();
            var xs = brake.Select(b => b > 0 ? Math.Log2(b) : Math.Log2(positive) - 1).ToArray();
            var s = plot.Add.Scatter(xs, onset);
            s.LegendText = router;
        }
        plot.Add.HorizontalLine(steps + evalEvery, pattern: ScottPlot.LinePattern.Dotted).LegendText = "no onset by the last step";
        plot.Title("Onset of concentration against the brake");
        plot.XLabel(file == "brake-onset.png" ? "log2 brake (attention: ALiBi factor, 0 drawn leftmost; mamba: decay scale; recurrent: c)" : "log2 brake (0 drawn leftmost)");
        plot.YLabel("onset step");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(Path.Combine(run.Path, file), 900, 560);
    }
}
