// `routekit depth` (issue 13): the collapse signature over depth. The byte-level language model of the training stack
// (causal attention blocks) with a depth router between blocks (ModelConfig.DepthRouted: block l reads a DepthRouter
// mix of the embedding and every earlier block's output, query from the latest), trained on the fortunes text for each
// depth score (Dot, Distance, normalised keys) over a grid of the depth brake m (z_lj -= m (l - j)), plus the plain
// residual model as the m -> infinity reference. Every EvalEvery steps, per depth router l >= 1 (router 0 has one layer
// to read): the routing weights' normalised entropy over depth, max prob and embedding mass (the sink over depth; the
// DepthRouter's fused diagnostics, mean over tokens and heads), the collapse of the routed block input (effective rank,
// residual ratio, mean pairwise cosine), the key-norm CV of the depth keys, and the block's token attention (normalised
// entropy and sink mass). Records use the router sweeps' schema (RouterRecord), so onset, shards and merge are shared.
//
// Verdicts (computed): D1 concentration over depth under training at m = 0; D2 the depth brake moves the onset (the
// brake sweep's claim 3); D3 the largest brake gives back the plain model (max prob over depth >= 0.9 and validation
// loss within 0.05 nats of the plain model's). The run fails (exit 1) only when a point is missing or a model did not
// learn (validation loss at m = 0 not at least LearnedDrop nats below its step-0 value).
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Runs;
using RouteKit.Engine.Training;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

internal static class DepthExperiment
{
    public const string Name = "depth";

    /// <summary>A model has learned when its validation loss fell by at least this many nats per byte.</summary>
    public const double LearnedDrop = 0.5;

    /// <summary>D3's thresholds: max prob over depth at the largest brake, and the loss gap to the plain model (nats).</summary>
    public const double LimitMaxProb = 0.9, LimitLossGap = 0.05;

    /// <summary>The depth-router score variants; "plain" is the model without depth routing.</summary>
    public static readonly string[] Variants = ["dot", "distance", "normkeys"];

    public const string Plain = "plain";

    public sealed record Sizes(int Layers, int Width, int Context, int Heads, int Batch, int Steps, int EvalEvery, int Warmup, int Seeds)
    {
        public TrainOptions Train(int seed) => new() { Steps = Steps, Batch = Batch, WarmupSteps = Warmup, DataSeed = seed };
    }

    public static Sizes SizesFor(RunProfile profile) => profile switch
    {
        RunProfile.Smoke => new(Layers: 3, Width: 16, Context: 16, Heads: 2, Batch: 4, Steps: 20, EvalEvery: 10, Warmup: 2, Seeds: 1),
        RunProfile.Small => new(Layers: 4, Width: 32, Context: 32, Heads: 4, Batch: 8, Steps: 600, EvalEvery: 30, Warmup: 30, Seeds: 1),
        _ => new(Layers: 8, Width: 64, Context: 128, Heads: 4, Batch: 16, Steps: 2000, EvalEvery: 50, Warmup: 100, Seeds: 3),
    };

    /// <summary>The depth brake grid: 0 (none) and geometric values, at least 8 except in smoke.</summary>
    public static float[] BrakeGrid(RunProfile profile) => profile switch
    {
        RunProfile.Smoke => [0f, 1f, 8f],
        RunProfile.Small => [0f, .. Enumerable.Range(0, 8).Select(i => 0.125f * MathF.Pow(2, i))],
        _ => [0f, .. Enumerable.Range(0, 12).Select(i => 1f / 32 * MathF.Pow(2, i))],
    };

    public sealed record Point(string Variant, float Brake, int Seed)
    {
        public string Key => Variant == Plain ? $"{Name}/{Plain}/seed={Seed}"
            : $"{Name}/{Variant}/brake={Brake.ToString("R", CultureInfo.InvariantCulture)}/seed={Seed}";

        public string Label => Variant == Plain ? $"plain residual model seed {Seed}" : $"{Variant} depth brake {Brake:G3} seed {Seed}";
    }

    /// <summary>Every point, in the order shards count them: per seed the plain model, then each variant's brake grid.</summary>
    public static List<Point> Points(RunProfile profile, int baseSeed)
    {
        var sizes = SizesFor(profile);
        var points = new List<Point>();
        for (var s = 0; s < sizes.Seeds; s++)
        {
            points.Add(new(Plain, 0f, baseSeed + s));
            foreach (var variant in Variants)
                foreach (var m in BrakeGrid(profile))
                    points.Add(new(variant, m, baseSeed + s));
        }
        return points;
    }

    /// <summary>The model of one point: the signature's attention model (Dot scores, ALiBi's slopes), depth-routed.</summary>
    public static ModelConfig Model(Sizes s, Point p) => new()
    {
        Mixer = MixerKind.Attention, Score = Score.Dot, Brake = 1f, Layers = s.Layers, Width = s.Width, Context = s.Context, Heads = s.Heads,
        Seed = p.Seed, DepthRouted = p.Variant != Plain, DepthScore = p.Variant == "distance" ? Score.Distance : Score.Dot,
        DepthNormalizeKeys = p.Variant == "normkeys", DepthBrake = p.Variant == Plain ? 0f : p.Brake,
    };

    private static readonly Lazy<FortuneText> Text = new(FortuneText.LoadSample);

    /// <summary>Runs this shard's points (resuming when asked) and writes the report.</summary>
    public static RouterSweeps.Result Run(RunContext ctx)
    {
        var device = RouterSweeps.TrainingDevice(ctx);
        var sizes = SizesFor(ctx.Profile);
        return RouterSweeps.RunShard(ctx, Name, Points(ctx.Profile, ctx.Seed), p => new SweepPoint(p.Key, p.Label, () => Compute(device, sizes, p)),
            (run, shard) => Report(run, ctx.Profile, ctx.Seed, shard));
    }

    /// <summary>Trains one point and returns its record (RouterRecord's schema; the plain model's has no layers).</summary>
    public static JsonObject Compute(Device device, Sizes sizes, Point p)
    {
        var text = Text.Value;
        var config = Model(sizes, p);
        if (config.Validate() is { } bad) throw new UsageException(bad);
        using var trainer = new Trainer(device, config, sizes.Train(p.Seed), text.Train, text.Validation);
        var model = trainer.Model;
        var steps = new List<int>();
        var loss = new List<double>();
        var routers = sizes.Layers - 1; // routers 1 .. L-1 (router 0 reads one layer); the plain model: its blocks 1 .. L-1
        var layers = Enumerable.Range(0, routers).Select(_ => new Dictionary<string, List<double>>()).ToList();
        void Add(int i, string m, double x)
        {
            if (!layers[i].TryGetValue(m, out var list)) layers[i][m] = list = [];
            list.Add(x);
        }
        void Evaluate()
        {
            steps.Add(trainer.Step);
            loss.Add(trainer.Evaluate());
            // The last validation batch's forward is in the buffers: recompute each router with its diagnostics.
            // Token-attention routing only: the collapse measured here is of the routed block input, below.
            var token = Diagnostics.Measure(model, trainer.Step, collapse: false).ToList();
            for (var l = 1; l < sizes.Layers; l++)
            {
                if (model.Depth is { } depth)
                {
                    using var routed = depth.Diagnose(l);
                    var d = routed.Diagnostics!;
                    Add(l - 1, "normalized_entropy", d.NormalizedEntropy.ToArray().Average(v => (double)v));
                    Add(l - 1, "max_prob", d.MaxProb.ToArray().Average(v => (double)v));
                    Add(l - 1, "embedding_mass", d.EmbeddingMass.ToArray().Average(v => (double)v));
                    Add(l - 1, "key_norm_cv", Collapse.KeyNorms(depth.Keys(l)).CoefficientOfVariation);
                }
                // A copy: the plain model's block inputs are views of its stream stack, which the collapse measures'
                // Managed kernels (whole arrays) refuse.
                var input = model.BlockInput(l);
                using var x = device.FromArray(input.ToArray(), input.Shape.ToArray());
                Add(l - 1, "effective_rank", Collapse.EffectiveRank(x));
                Add(l - 1, "residual_ratio", Collapse.ResidualRatio(x));
                Add(l - 1, "mean_cosine", Collapse.MeanPairwiseCosine(x));
                Add(l - 1, "token_normalized_entropy", (double)token[l]["normalized_entropy"]!);
                Add(l - 1, "token_sink_mass", (double)token[l]["sink_mass"]!);
            }
        }
        Evaluate();
        while (trainer.Step < sizes.Steps)
        {
            trainer.TrainStep();
            if (trainer.Step % sizes.EvalEvery == 0 || trainer.Step == sizes.Steps) Evaluate();
        }
        var layerArray = new JsonArray();
        foreach (var layer in layers)
        {
            var o = new JsonObject();
            foreach (var (m, xs) in layer) o[m] = new JsonArray(xs.Select(Sweep.Num).ToArray());
            layerArray.Add(o);
        }
        var onset = config.DepthRouted ? Onset.Earliest(layers.Select(l => Onset.Find(steps, l["normalized_entropy"]))) : null;
        return new JsonObject
        {
            ["router"] = p.Variant == Plain ? Plain : $"depth-{p.Variant}", ["content_free"] = false, ["brake"] = (double)p.Brake, ["seed"] = p.Seed,
            ["steps"] = new JsonArray(steps.Select(s => (JsonNode)s).ToArray()),
            ["val_loss"] = new JsonArray(loss.Select(Sweep.Num).ToArray()),
            ["first_router"] = 1,
            ["layers"] = layerArray,
            ["onset"] = onset is { } first ? first : null,
        };
    }

    /// <summary>Plots and summary.md from the run's records (also what `merge` writes for joined shards).</summary>
    public static RouterSweeps.Result Report(RunFolder run, RunProfile profile, int baseSeed, Shard shard)
    {
        var sizes = SizesFor(profile);
        var all = Points(profile, baseSeed);
        var wanted = all.Where((_, i) => shard.Owns(i)).ToList();
        var byKey = run.Records.Where(r => r["router"] is not null).ToDictionary(r => (string)r["key"]!);
        var records = wanted.Where(p => byKey.ContainsKey(p.Key)).Select(p => (Point: p, Record: RouterRecord.Read(byKey[p.Key]))).ToList();
        var missing = wanted.Count - records.Count;
        var plain = records.Where(x => x.Point.Variant == Plain).ToList();
        var routed = records.Where(x => x.Point.Variant != Plain).ToList();
        var md = new StringBuilder();
        md.AppendLine($"# Routing over depth: a depth-routed byte language model — run {run.RunId}").AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Profile {profile.ToString().ToLowerInvariant()}: the training stack's byte-level LM on the fortunes text, {sizes.Layers} causal-attention blocks " +
            $"(Dot scores, ALiBi), width {sizes.Width}, {sizes.Heads} heads, context {sizes.Context}, batch {sizes.Batch}, {sizes.Steps} AdamW steps, evaluated at step 0 and every {sizes.EvalEvery}. ") +
            "Depth-routed: block l reads x_l = sum_{j<=l} softmax_j(score(q_l, k_j) - m (l - j)) o_j over o_0 (the embedding) and the earlier blocks' outputs, " +
            "k_j = LN_j(o_j), q_l = W_q,l LN_l(o_l), with the depth router's own heads. Measures per depth router l = 1 .. L-1 (router 0 has one layer to read). " +
            "The plain model (x_l = o_l) is the limit m -> infinity.").AppendLine();
        md.AppendLine($"Onset: {Onset.Definition}").AppendLine();
        RouterSweeps.ShardNotes(md, shard, wanted.Count, all.Count, wanted.Where(p => !byKey.ContainsKey(p.Key)).Select(p => p.Key).ToList());

        var verdicts = new List<RouterSweeps.Verdict>();
        var plainLoss = plain.Count == 0 ? double.NaN : plain.Average(x => x.Record.ValLoss[^1]);
        md.AppendLine(CultureInfo.InvariantCulture, $"Plain residual model: validation loss {(plain.Count == 0 ? "missing" : $"{plain.Average(x => x.Record.ValLoss[0]):F3} → **{plainLoss:F3}**")} nats per byte.").AppendLine();
        md.AppendLine("## Per score at m = 0: every measure per depth router, step 0 → end").AppendLine();
        md.AppendLine("| score | router l | depth entropy | max prob | embedding mass | key-norm CV | eff. rank of x_l | residual ratio | mean cosine | token entropy | token sink |")
            .AppendLine("|---|---:|---|---|---|---|---|---|---|---|---|");
        var unbraked = routed.Where(x => x.Point.Brake == 0).ToList();
        if (plain.Count > 0)
            for (var i = 0; i < sizes.Layers - 1; i++)
            {
                var rs = plain.Select(x => x.Record).ToList();
                string Move(string m) => $"{RouterSweeps.F(rs.Average(r => r.Layers[i][m][0]))} → {RouterSweeps.F(rs.Average(r => r.Layers[i][m][^1]))}";
                md.AppendLine(CultureInfo.InvariantCulture, $"| plain (x_l = o_l) | {i + 1} | — | — | — | — | " +
                    $"{Move("effective_rank")} | {Move("residual_ratio")} | {Move("mean_cosine")} | {Move("token_normalized_entropy")} | {Move("token_sink_mass")} |");
            }
        foreach (var g in unbraked.GroupBy(x => x.Point.Variant))
        {
            var rs = g.Select(x => x.Record).ToList();
            for (var i = 0; i < sizes.Layers - 1; i++)
            {
                string Move(string m) => $"{RouterSweeps.F(rs.Average(r => r.Layers[i][m][0]))} → {RouterSweeps.F(rs.Average(r => r.Layers[i][m][^1]))}";
                md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | {i + 1} | {Move("normalized_entropy")} | {Move("max_prob")} | {Move("embedding_mass")} | {Move("key_norm_cv")} | " +
                    $"{Move("effective_rank")} | {Move("residual_ratio")} | {Move("mean_cosine")} | {Move("token_normalized_entropy")} | {Move("token_sink_mass")} |");
            }
            var lossEnd = rs.Average(r => r.ValLoss[^1]);
            md.AppendLine(CultureInfo.InvariantCulture, $"| {g.Key} | validation loss | {rs.Average(r => r.ValLoss[0]):F3} → **{lossEnd:F3}** (plain {plainLoss:F3}) | | | | | | | | |");
            var concentrates = rs.Select(r =>
            {
                var h = RouterSweeps.Moved(r, "normalized_entropy", -1);
                var peak = RouterSweeps.Moved(r, "max_prob", +1);
                return h > 0 && peak > 0 ? 1 : h < 0 && peak < 0 ? -1 : 0;
            }).ToList();
            verdicts.Add(new("D1 concentration over depth", g.Key, RouterSweeps.Agree(concentrates),
                $"entropy over depth ↓ and max prob ↑ (each by >= {RouterSweeps.MinChange:P0}) in {concentrates.Count(x => x > 0)} of {rs.Count} seeds"));
            var learned = rs.All(r => r.ValLoss[^1] <= r.ValLoss[0] - LearnedDrop);
            verdicts.Add(new("D learned", g.Key, learned ? "supports" : "contradicts",
                string.Create(CultureInfo.InvariantCulture, $"validation loss {rs.Average(r => r.ValLoss[0]):F3} → {lossEnd:F3} (wanted a fall of >= {LearnedDrop} nats)")));
        }
        md.AppendLine();
        md.AppendLine("## Claim D2: the depth brake moves the onset of concentration over depth").AppendLine();
        verdicts.AddRange(RouterSweeps.BrakeCurves(run, routed.Select(x => ($"depth-{x.Point.Variant}", "depth brake m", x.Record)), sizes.Steps, sizes.EvalEvery,
            md, "D2 brake moves onset", "depth-brake-onset.png", "validation loss end", r => r.ValLoss[^1]));
        // Where the brake already concentrates the routing at initialisation, training can only spread it: say so, as
        // those points have no onset for that reason and not because the brake delayed one.
        var spread = routed.GroupBy(x => x.Point.Brake).Where(b => b.Average(x => x.Record.Ends("normalized_entropy").Last) > b.Average(x => x.Record.Ends("normalized_entropy").First) + 0.01)
            .Select(b => b.Key).Order().ToList();
        if (spread.Count > 0)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"At m = {string.Join(", ", spread.Select(m => m.ToString("G3", CultureInfo.InvariantCulture)))} the brake already concentrates the routing at step 0 and training *raised* its entropy (mean over scores): ") +
                "those runs have no onset because there was nothing left to concentrate, not because the brake delayed one; the onset definition (relative to step 0) counts both as \"none\".").AppendLine();
        md.AppendLine("## Claim D3: the largest brake gives back the plain residual model").AppendLine();
        foreach (var g in routed.GroupBy(x => x.Point.Variant))
        {
            var top = g.Max(x => x.Point.Brake);
            var rs = g.Where(x => x.Point.Brake == top).Select(x => x.Record).ToList();
            var maxProb = rs.Average(r => r.Ends("max_prob").Last);
            var gap = rs.Average(r => r.ValLoss[^1]) - plainLoss;
            var outcome = double.IsNaN(gap) || sizes.Layers < 2 ? "cannot decide"
                : maxProb >= LimitMaxProb && Math.Abs(gap) <= LimitLossGap ? "supports" : "contradicts";
            verdicts.Add(new("D3 large brake = plain model", g.Key, outcome, string.Create(CultureInfo.InvariantCulture,
                $"at m = {top:G3}: max prob over depth {maxProb:F3} (wanted >= {LimitMaxProb}), validation loss {gap:+0.000;-0.000} nats from the plain model's (wanted within {LimitLossGap})")));
        }
        ConcentrationPlot(run, routed, sizes);
        md.AppendLine("Plot: [entropy over depth at the end of training against the brake](depth-concentration.png).").AppendLine();
        md.AppendLine("## Verdicts").AppendLine();
        md.AppendLine("| claim | score | verdict | evidence |").AppendLine("|---|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | {v.Router} | **{v.Outcome}** | {v.Evidence} |");
        md.AppendLine().AppendLine($"Records: [metrics.jsonl]({RunFolder.MetricsFile}).");
        run.WriteSummary(md.ToString());
        return new RouterSweeps.Result(run.Path, Name, verdicts, missing, Path.Combine(run.Path, "depth-concentration.png"));
    }

    /// <summary>True when the run's models learned (every m = 0 variant's "D learned" verdict supports).</summary>
    public static bool Learned(RouterSweeps.Result r) => r.Verdicts.Where(v => v.Claim == "D learned").All(v => v.Supports);

    // Entropy over depth at the end of training against the brake, one curve per score and router (m = 0 drawn at the
    // grid's first value / 2, as the axis is logarithmic).
    private static void ConcentrationPlot(RunFolder run, List<(Point Point, RouterRecord Record)> routed, Sizes sizes)
    {
        var plot = new ScottPlot.Plot();
        var positive = routed.Where(x => x.Point.Brake > 0).Select(x => (double)x.Point.Brake).DefaultIfEmpty(1).Min();
        foreach (var g in routed.GroupBy(x => x.Point.Variant))
            for (var i = 0; i < sizes.Layers - 1; i++)
            {
                var rows = g.GroupBy(x => x.Point.Brake).OrderBy(b => b.Key).ToList();
                var xs = rows.Select(b => Math.Log2(b.Key > 0 ? b.Key : positive / 2)).ToArray();
                var ys = rows.Select(b => b.Average(x => x.Record.Layers[i]["normalized_entropy"][^1])).ToArray();
                var s = plot.Add.Scatter(xs, ys);
                s.LegendText = $"{g.Key} router {i + 1}";
            }
        plot.Title("Entropy of the depth routing at the end of training (leftmost point: m = 0)");
        plot.XLabel("log2 depth brake m");
        plot.YLabel("normalised entropy over depth");
        plot.ShowLegend(ScottPlot.Alignment.UpperRight);
        plot.SavePng(Path.Combine(run.Path, "depth-concentration.png"), 900, 560);
    }
}
