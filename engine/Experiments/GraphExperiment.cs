// `routekit graph` (issue 13): the collapse signature over nodes. A kNN graph of real images (Fashion-MNIST, cosine of
// pixels, KnnGraph), node classification by a small graph-attention network (GraphNetwork) trained full-batch on a few
// labelled nodes per class, for each score (Dot, Distance, NormalizeKeys) over a grid of the graph brake m (a bias -m
// on every edge to another node). Every EvalEvery steps, per layer: the routing weights' normalised entropy, max prob
// and self-mass (GraphAttention's fused diagnostics, mean over heads and nodes) and the collapse of the layer's node
// representations (effective rank, residual ratio, mean pairwise cosine: over-smoothing), plus the accuracy on the
// unlabelled nodes. Records use the router sweeps' schema (RouterRecord), so onset, shards and merge are shared.
//
// Verdicts (computed): G1 concentration under training at m = 0 (as the signature's claim 1); G2 over-smoothing with
// depth at the end of training (mean cosine rises and effective rank falls with the layer index: |Spearman rho| >= 0.6
// over the layers); G3 the brake moves the onset (as the brake sweep's claim 3). The run fails (exit 1) only when a
// point is missing or a model did not learn (accuracy below LearnedAccuracy at m = 0).
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

internal static class GraphExperiment
{
    public const string Name = "graph";

    /// <summary>Unlabelled-node accuracy a model must reach at m = 0 for the run to count as learned (chance is 0.1).</summary>
    public const double LearnedAccuracy = 0.4;

    /// <summary>The score variants, side by side.</summary>
    public static readonly string[] Variants = ["dot", "distance", "normkeys"];

    public sealed record Sizes(int Nodes, int K, int LabelsPerClass, int Width, int Heads, int Layers, int Steps, int EvalEvery, int Seeds, double LearningRate);

    public static Sizes SizesFor(RunProfile profile) => profile switch
    {
        RunProfile.Smoke => new(Nodes: 200, K: 5, LabelsPerClass: 5, Width: 16, Heads: 2, Layers: 2, Steps: 20, EvalEvery: 10, Seeds: 1, LearningRate: 3e-3),
        RunProfile.Small => new(Nodes: 2000, K: 8, LabelsPerClass: 20, Width: 32, Heads: 4, Layers: 4, Steps: 300, EvalEvery: 20, Seeds: 1, LearningRate: 3e-3),
        _ => new(Nodes: 2000, K: 10, LabelsPerClass: 20, Width: 64, Heads: 4, Layers: 8, Steps: 1000, EvalEvery: 50, Seeds: 3, LearningRate: 2e-3),
    };

    /// <summary>The graph brake grid: 0 (none) and geometric values, at least 8 except in smoke.</summary>
    public static float[] BrakeGrid(RunProfile profile) => profile switch
    {
        RunProfile.Smoke => [0f, 1f, 8f],
        RunProfile.Small => [0f, .. Enumerable.Range(0, 8).Select(i => 0.125f * MathF.Pow(2, i))],
        _ => [0f, .. Enumerable.Range(0, 12).Select(i => 1f / 32 * MathF.Pow(2, i))],
    };

    public sealed record Point(string Variant, float Brake, int Seed)
    {
        public string Key => $"{Name}/{Variant}/brake={Brake.ToString("R", CultureInfo.InvariantCulture)}/seed={Seed}";
        public string Label => $"{Variant} brake {Brake:G3} seed {Seed}";
    }

    /// <summary>Every point, in the order shards count them.</summary>
    public static List<Point> Points(RunProfile profile, int baseSeed)
    {
        var sizes = SizesFor(profile);
        var points = new List<Point>();
        for (var s = 0; s < sizes.Seeds; s++)
            foreach (var variant in Variants)
                foreach (var m in BrakeGrid(profile))
                    points.Add(new(variant, m, baseSeed + s));
        return points;
    }

    private sealed record Problem(CsrArrays Graph, float[] Features, int[] Labels, float[] Targets, bool[] Labelled);

    private static readonly Dictionary<(int Nodes, int K, int LabelsPerClass), Problem> Problems = [];

    // The graph, features and labelled nodes of a size (the first LabelsPerClass images of each class are labelled).
    private static Problem ProblemFor(Sizes sizes)
    {
        lock (Problems)
        {
            var key = (sizes.Nodes, sizes.K, sizes.LabelsPerClass);
            if (Problems.TryGetValue(key, out var cached)) return cached;
            var data = FashionMnist.LoadSample();
            var n = Math.Min(sizes.Nodes, data.Count);
            var features = data.Images.AsSpan(0, n * data.Pixels).ToArray();
            var graph = KnnGraph.Build(features, n, data.Pixels, sizes.K);
            var labels = data.Labels.AsSpan(0, n).ToArray();
            var perClass = new int[data.Classes];
            var labelled = new bool[n];
            var targets = new float[n];
            for (var i = 0; i < n; i++)
            {
                labelled[i] = perClass[labels[i]]++ < sizes.LabelsPerClass;
                targets[i] = labelled[i] ? labels[i] : CrossEntropy.DefaultIgnoreIndex;
            }
            var problem = new Problem(graph, features, labels, targets, labelled);
            Problems[key] = problem;
            return problem;
        }
    }

    /// <summary>Runs this shard's points (resuming when asked) and writes the report.</summary>
    public static RouterSweeps.Result Run(RunContext ctx)
    {
        var device = RouterSweeps.TrainingDevice(ctx);
        var sizes = SizesFor(ctx.Profile);
        return RouterSweeps.RunShard(ctx, Name, Points(ctx.Profile, ctx.Seed), p => new SweepPoint(p.Key, p.Label, () => Compute(device, sizes, p)),
            (run, shard) => Report(run, ctx.Profile, ctx.Seed, shard));
    }

    /// <summary>Trains one point and returns its record (RouterRecord's schema plus accuracy).</summary>
    public static JsonObject Compute(Device device, Sizes sizes, Point p)
    {
        var problem = ProblemFor(sizes);
        var config = new GraphNetworkConfig
        {
            Features = FashionMnist.Side * FashionMnist.Side, Classes = 10, Width = sizes.Width, Heads = sizes.Heads, Layers = sizes.Layers,
            Score = p.Variant == "distance" ? Score.Distance : Score.Dot, NormalizeKeys = p.Variant == "normkeys", Brake = p.Brake, Seed = p.Seed,
        };
        using var graph = CsrGraph.Create(device, problem.Graph.RowPtr, problem.Graph.ColIdx);
        using var model = new GraphNetwork(device, graph, config);
        model.Features.CopyFrom(problem.Features);
        model.Targets.CopyFrom(problem.Targets);
        var ps = model.Parameters;
        var schedule = new CosineSchedule(sizes.LearningRate, sizes.LearningRate / 10, Math.Min(sizes.Steps / 10, sizes.Steps - 1), sizes.Steps);
        var adam = new AdamWOptions { WeightDecay = 1e-4f };
        using var norm = device.Zeros(1);
        var steps = new List<int>();
        var loss = new List<double>();
        var accuracy = new List<double>();
        var layers = Enumerable.Range(0, sizes.Layers).Select(_ => new Dictionary<string, List<double>>()).ToList();
        var one = new float[1];
        var logits = new float[problem.Labels.Length * 10];
        void Add(int l, string m, double x)
        {
            if (!layers[l].TryGetValue(m, out var list)) layers[l][m] = list = [];
            list.Add(x);
        }
        void Evaluate(int step)
        {
            model.WantDiagnostics = true;
            model.Forward();
            model.WantDiagnostics = false;
            steps.Add(step);
            model.Loss.CopyTo(one);
            loss.Add(one[0]);
            model.Logits.CopyTo(logits);
            int right = 0, total = 0;
            for (var i = 0; i < problem.Labels.Length; i++)
            {
                if (problem.Labelled[i]) continue;
                var row = logits.AsSpan(i * 10, 10);
                right += System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row) == problem.Labels[i] ? 1 : 0;
                total++;
            }
            accuracy.Add(total == 0 ? double.NaN : right / (double)total);
            for (var l = 0; l < sizes.Layers; l++)
            {
                var d = model.Attention(l).Diagnostics!;
                Add(l, "normalized_entropy", MeanFinite(d.NormalizedEntropy.ToArray()));
                Add(l, "max_prob", MeanFinite(d.MaxProb.ToArray()));
                Add(l, "self_mass", MeanFinite(d.SelfMass.ToArray()));
                var x = model.Stream(l + 1);
                Add(l, "effective_rank", Collapse.EffectiveRank(x));
                Add(l, "residual_ratio", Collapse.ResidualRatio(x));
                Add(l, "mean_cosine", Collapse.MeanPairwiseCosine(x));
            }
        }
        Evaluate(0);
        for (var step = 0; step < sizes.Steps; step++)
        {
            using (var check = device.BeginStep())
            {
                model.Forward();
                model.Backward();
                GradientClip.ClipGlobalNorm(ps.Gradients, 1f, norm);
                AdamW.Step(ps.Values, ps.Gradients, ps.M, ps.V, ps.Decay, adam, step + 1, (float)schedule.LearningRate(step));
                check.Finish();
            }
            if ((step + 1) % sizes.EvalEvery == 0 || step + 1 == sizes.Steps) Evaluate(step + 1);
        }
        var layerArray = new JsonArray();
        foreach (var layer in layers)
        {
            var o = new JsonObject();
            foreach (var (m, xs) in layer) o[m] = new JsonArray(xs.Select(Sweep.Num).ToArray());
            layerArray.Add(o);
        }
        var record = new JsonObject
        {
            ["router"] = $"graph-{p.Variant}", ["content_free"] = false, ["brake"] = (double)p.Brake, ["seed"] = p.Seed,
            ["steps"] = new JsonArray(steps.Select(s => (JsonNode)s).ToArray()),
            ["val_loss"] = new JsonArray(loss.Select(Sweep.Num).ToArray()),
            ["accuracy"] = new JsonArray(accuracy.Select(Sweep.Num).ToArray()),
            ["layers"] = layerArray,
            ["nodes"] = problem.Labels.Length, ["edges"] = problem.Graph.Edges, ["labelled"] = problem.Labelled.Count(x => x),
        };
        var onset = Onset.Earliest(layers.Select(l => Onset.Find(steps, l["normalized_entropy"])));
        record["onset"] = onset is { } first ? first : null;
        return record;
    }

    private static double MeanFinite(float[] xs)
    {
        double sum = 0;
        var n = 0;
        foreach (var x in xs)
            if (float.IsFinite(x)) (sum, n) = (sum + x, n + 1);
        return n == 0 ? double.NaN : sum / n;
    }

    /// <summary>Plots and summary.md from the run's records (also what `merge` writes for joined shards).</summary>
    public static RouterSweeps.Result Report(RunFolder run, RunProfile profile, int baseSeed, Shard shard)
    {
        var sizes = SizesFor(profile);
        var all = Points(profile, baseSeed);
        var wanted = all.Where((_, i) => shard.Owns(i)).ToList();
        var byKey = run.Records.Where(r => r["router"] is not null).ToDictionary(r => (string)r["key"]!);
        var records = wanted.Where(p => byKey.ContainsKey(p.Key))
            .Select(p => (Point: p, Record: RouterRecord.Read(byKey[p.Key]), Accuracy: byKey[p.Key]["accuracy"]!.AsArray().Select(Sweep.ReadNum).ToArray())).ToList();
        var missing = wanted.Count - records.Count;
        var md = new StringBuilder();
        md.AppendLine($"# Graph attention over a kNN graph of Fashion-MNIST images — run {run.RunId}").AppendLine();
        var first = records.Count > 0 ? byKey[records[0].Point.Key] : null;
        md.AppendLine(CultureInfo.InvariantCulture,
            $"Profile {profile.ToString().ToLowerInvariant()}: {first?["nodes"]} nodes (the committed Fashion-MNIST sample), symmetric {sizes.K}-NN graph by pixel cosine with self-loops " +
            $"({first?["edges"]} edges), {sizes.LabelsPerClass} labelled nodes per class; a {sizes.Layers}-layer pre-norm residual graph-attention network, width {sizes.Width}, " +
            $"{sizes.Heads} heads, {sizes.Steps} full-batch AdamW steps, evaluated at step 0 and every {sizes.EvalEvery}. Brake m: z_ij -= m on every edge to another node.").AppendLine();
        md.AppendLine($"Onset: {Onset.Definition}").AppendLine();
        RouterSweeps.ShardNotes(md, shard, wanted.Count, all.Count, wanted.Where(p => !byKey.ContainsKey(p.Key)).Select(p => p.Key).ToList());

        var verdicts = new List<RouterSweeps.Verdict>();
        var unbraked = records.Where(x => x.Point.Brake == 0).ToList();
        md.AppendLine("## Per score at m = 0: accuracy, and every measure per layer at the end of training").AppendLine();
        md.AppendLine("| score | layer | norm. entropy 0 → end | max prob | self-mass | effective rank | residual ratio | mean cosine |").AppendLine("|---|---:|---|---|---|---|---|---|");
        foreach (var g in unbraked.GroupBy(x => x.Point.Variant))
        {
            var rs = g.Select(x => x.Record).ToList();
            for (var l = 0; l < sizes.Layers; l++)
            {
                string Move(string m) => $"{RouterSweeps.F(rs.Average(r => r.Layers[l][m][0]))} → {RouterSweeps.F(rs.Average(r => r.Layers[l][m][^1]))}";
                md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | {l} | {Move("normalized_entropy")} | {Move("max_prob")} | {Move("self_mass")} | {Move("effective_rank")} | {Move("residual_ratio")} | {Move("mean_cosine")} |");
            }
            var acc = g.Average(x => x.Accuracy[^1]);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | accuracy on unlabelled nodes | {g.Average(x => x.Accuracy[0]):F3} → **{acc:F3}** | | | | | |");
            var concentrates = rs.Select(r =>
            {
                var h = RouterSweeps.Moved(r, "normalized_entropy", -1);
                var peak = Math.Max(RouterSweeps.Moved(r, "max_prob", +1), RouterSweeps.Moved(r, "self_mass", +1));
                return h > 0 && peak > 0 ? 1 : h < 0 && peak <= 0 ? -1 : 0;
            }).ToList();
            verdicts.Add(new("G1 concentration", g.Key, RouterSweeps.Agree(concentrates),
                $"entropy ↓ and max prob or self-mass ↑ (each by >= {RouterSweeps.MinChange:P0}) in {concentrates.Count(x => x > 0)} of {rs.Count} seeds"));
            // Over-smoothing with depth, at the end of training: measures against the layer index.
            var depth = Enumerable.Range(0, sizes.Layers).Select(l => (double)l).ToArray();
            var cosine = Enumerable.Range(0, sizes.Layers).Select(l => rs.Average(r => r.Layers[l]["mean_cosine"][^1])).ToArray();
            var rank = Enumerable.Range(0, sizes.Layers).Select(l => rs.Average(r => r.Layers[l]["effective_rank"][^1])).ToArray();
            double rc = RouterSweeps.Spearman(depth, cosine), rr = RouterSweeps.Spearman(depth, rank);
            var smooth = sizes.Layers < 3 || double.IsNaN(rc) || double.IsNaN(rr) ? "cannot decide"
                : rc >= RouterSweeps.BrakeRho && rr <= -RouterSweeps.BrakeRho ? "supports"
                : rc <= -RouterSweeps.BrakeRho && rr >= RouterSweeps.BrakeRho ? "contradicts" : "cannot decide";
            verdicts.Add(new("G2 over-smoothing with depth", g.Key, smooth,
                string.Create(CultureInfo.InvariantCulture, $"Spearman rho over {sizes.Layers} layers: mean cosine {rc:F2}, effective rank {rr:F2}")));
            verdicts.Add(new("G learned", g.Key, acc >= LearnedAccuracy ? "supports" : "contradicts",
                string.Create(CultureInfo.InvariantCulture, $"accuracy {acc:F3} on unlabelled nodes (threshold {LearnedAccuracy}, chance 0.1)")));
        }
        md.AppendLine();
        md.AppendLine("## Claim G3: the graph brake moves the onset of concentration").AppendLine();
        verdicts.AddRange(RouterSweeps.BrakeCurves(run, records.Select(x => ($"graph-{x.Point.Variant}", "edge bias m", x.Record)), sizes.Steps, sizes.EvalEvery,
            md, "G3 brake moves onset", "graph-brake-onset.png", "accuracy end", r => records.First(x => x.Record == r).Accuracy[^1]));
        DepthPlot(run, unbraked, sizes);
        md.AppendLine("Plot: [collapse against depth at the end of training](graph-depth.png).").AppendLine();
        md.AppendLine("## Verdicts").AppendLine();
        md.AppendLine("| claim | score | verdict | evidence |").AppendLine("|---|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | {v.Router} | **{v.Outcome}** | {v.Evidence} |");
        md.AppendLine().AppendLine($"Records: [metrics.jsonl]({RunFolder.MetricsFile}).");
        run.WriteSummary(md.ToString());
        return new RouterSweeps.Result(run.Path, Name, verdicts, missing, Path.Combine(run.Path, "graph-depth.png"));
    }

    /// <summary>True when the run's models learned (every m = 0 point's "G learned" verdict supports).</summary>
    public static bool Learned(RouterSweeps.Result r) => r.Verdicts.Where(v => v.Claim == "G learned").All(v => v.Supports);

    private static void DepthPlot(RunFolder run, List<(Point Point, RouterRecord Record, double[] Accuracy)> unbraked, Sizes sizes)
    {
        var plot = new ScottPlot.Plot();
        foreach (var g in unbraked.GroupBy(x => x.Point.Variant))
        {
            var rs = g.Select(x => x.Record).ToList();
            var xs = Enumerable.Range(0, sizes.Layers).Select(l => (double)l).ToArray();
            var cos = plot.Add.Scatter(xs, xs.Select(l => rs.Average(r => r.Layers[(int)l]["mean_cosine"][^1])).ToArray());
            cos.LegendText = $"{g.Key}: mean cosine";
            var res = plot.Add.Scatter(xs, xs.Select(l => rs.Average(r => r.Layers[(int)l]["residual_ratio"][^1])).ToArray());
            res.LegendText = $"{g.Key}: residual ratio";
            res.LinePattern = ScottPlot.LinePattern.Dashed;
        }
        plot.Title("Node representations after each graph-attention layer (end of training, m = 0)");
        plot.XLabel("layer");
        plot.YLabel("mean pairwise cosine / residual ratio");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plot.SavePng(Path.Combine(run.Path, "graph-depth.png"), 900, 560);
    }
}
