// Paper A's experiments on trained routers (issue 12): what one training point measures, the routers, the sizes per
// profile, and the one definition of the onset of concentration.
//
// A point trains the byte-level language model of the training stack (engine/Models) with one router, one brake value,
// content or content-free routing and one seed, in memory, and evaluates at step 0 and every EvalEvery steps: the
// validation loss and, per layer, the routing and collapse diagnostics of engine/Experiments/TrainDiagnostics.cs
// (sink mass, normalised entropy, max prob of the routing weights; effective rank, residual ratio, mean pairwise cosine
// of the mixed representation; for attention the coefficient of variation of the key norms). The whole series is one
// metrics.jsonl record, so a sweep resumes, shards and merges point by point. Training is deterministic on Managed, so
// a point computed twice (in a shard, or unsharded) gives the same record.
using System.Text.Json.Nodes;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Runs;
using RouteKit.Engine.Training;

namespace RouteKit.Engine.Experiments;

/// <summary>One content-based router: a mixer and, for attention, its score and key normalisation.</summary>
internal sealed record Router(string Name, MixerKind Mixer, Score Score = Score.Dot, bool NormalizeKeys = false)
{
    /// <summary>The five routers of the signature experiment.</summary>
    public static IReadOnlyList<Router> All { get; } =
    [
        new("attention-dot", MixerKind.Attention),
        new("attention-distance", MixerKind.Attention, Score.Distance),
        new("attention-normkeys", MixerKind.Attention, Score.Dot, NormalizeKeys: true),
        new("mamba", MixerKind.Mamba),
        new("recurrent", MixerKind.Recurrent),
    ];

    /// <summary>The router named <paramref name="name"/>.</summary>
    public static Router Named(string name) => All.First(r => r.Name == name);

    /// <summary>What the brake of this router is.</summary>
    public string BrakeName => Mixer switch
    {
        MixerKind.Attention => "ALiBi slope factor",
        MixerKind.Mamba => "decay scale m (A = -m exp(A_log))",
        _ => "RG-LRU constant c",
    };

    /// <summary>The brake of the signature runs: ALiBi's own slopes, Mamba as published, Griffin's c = 8.</summary>
    public float DefaultBrake => Mixer == MixerKind.Recurrent ? 8f : 1f;

    /// <summary>Keys with norms that can stratify: raw-key attention.</summary>
    public bool HasKeyNorms => Mixer == MixerKind.Attention && !NormalizeKeys;

    /// <summary>The model of one point.</summary>
    public ModelConfig Model(RouterSizes s, float brake, bool contentFree, int seed) => new()
    {
        Mixer = Mixer, Score = Score, NormalizeKeys = NormalizeKeys, ContentFree = contentFree,
        Brake = Mixer == MixerKind.Mamba ? 0f : brake, DecayScale = Mixer == MixerKind.Mamba ? brake : 1f,
        Layers = s.Layers, Width = s.Width, Context = s.Context, Heads = s.Heads, Seed = seed,
    };

    /// <summary>The brake grid of the brake sweep: at least 8 geometric values (attention also 0, no brake) except in smoke.</summary>
    public float[] BrakeGrid(RunProfile profile) => (Mixer, profile) switch
    {
        (MixerKind.Attention, RunProfile.Smoke) => [0f, 1f, 8f],
        (MixerKind.Mamba, RunProfile.Smoke) => [0.25f, 1f, 4f],
        (_, RunProfile.Smoke) => [2f, 8f, 32f],
        (MixerKind.Attention, RunProfile.Full) => [0f, .. Geometric(1f / 16, 2, 12)],
        (MixerKind.Attention, _) => [0f, .. Geometric(0.25f, 2, 8)],
        (MixerKind.Mamba, RunProfile.Full) => Geometric(1f / 16, 2, 12),
        (MixerKind.Mamba, _) => Geometric(1f / 8, 2, 8),
        (_, RunProfile.Full) => Geometric(0.25f, 2, 12),
        _ => Geometric(0.5f, 2, 8),
    };

    private static float[] Geometric(float first, float ratio, int count) =>
        Enumerable.Range(0, count).Select(i => first * MathF.Pow(ratio, i)).ToArray();
}

/// <summary>Model and training sizes of a profile.</summary>
internal sealed record RouterSizes(int Layers, int Width, int Context, int Heads, int Batch, int Steps, int EvalEvery, int Warmup, int Seeds)
{
    public static RouterSizes For(RunProfile profile) => profile switch
    {
        RunProfile.Smoke => new(Layers: 1, Width: 16, Context: 16, Heads: 2, Batch: 4, Steps: 20, EvalEvery: 10, Warmup: 2, Seeds: 1),
        RunProfile.Small => new(Layers: 2, Width: 32, Context: 64, Heads: 4, Batch: 8, Steps: 1500, EvalEvery: 50, Warmup: 50, Seeds: 2),
        _ => new(Layers: 4, Width: 128, Context: 128, Heads: 4, Batch: 16, Steps: 2000, EvalEvery: 50, Warmup: 100, Seeds: 3),
    };

    public TrainOptions Train(int seed) => new() { Steps = Steps, Batch = Batch, WarmupSteps = Warmup, DataSeed = seed };
}

/// <summary>The onset of concentration, defined once (summaries and tests use this).</summary>
internal static class Onset
{
    /// <summary>A layer has concentrated once its normalised entropy is below this fraction of its value at step 0.</summary>
    public const double Fraction = 0.9;

    /// <summary>The definition, as the summaries print it.</summary>
    public const string Definition =
        "the onset of concentration of a layer is the first evaluation step from which the layer's mean normalised entropy " +
        "of its routing weights stays below 0.9 times its value at step 0 at every later evaluation; a router's onset in a " +
        "run is the earliest onset of its layers; a run whose layers never get there has no onset (censored at its last step).";

    /// <summary>
    /// The onset step of one layer's entropy series (steps[0] must be 0), or null when it never concentrates. A value
    /// that is not finite counts as not below.
    /// </summary>
    public static int? Find(IReadOnlyList<int> steps, IReadOnlyList<double> entropy)
    {
        if (steps.Count != entropy.Count) throw new ArgumentException($"{steps.Count} steps but {entropy.Count} entropies.");
        if (steps.Count == 0 || steps[0] != 0) throw new ArgumentException("the series must start at step 0.");
        var threshold = Fraction * entropy[0];
        if (!double.IsFinite(threshold)) return null;
        int? onset = null;
        for (var i = steps.Count - 1; i >= 1; i--)
        {
            if (!(entropy[i] < threshold)) break;
            onset = steps[i];
        }
        return onset;
    }

    /// <summary>The earliest layer onset, or null when no layer concentrates.</summary>
    public static int? Earliest(IEnumerable<int?> layers) => layers.Where(o => o.HasValue).Min();
}

/// <summary>One point of a router sweep: which router, brake, routing and seed.</summary>
internal sealed record RouterPoint(string Experiment, Router Router, float Brake, bool ContentFree, int Seed)
{
    public string Key => $"{Experiment}/{Router.Name}/{(ContentFree ? "content-free" : "content")}/brake={Brake.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}/seed={Seed}";

    public string Label => $"{Router.Name}{(ContentFree ? " content-free" : "")} brake {Brake:G3} seed {Seed}";
}

/// <summary>Trains and measures points (see the file header).</summary>
internal static class RouterTraining
{
    /// <summary>The diagnostics series every point records per layer (key_norm_cv only for attention).</summary>
    public static readonly string[] Measures =
        ["normalized_entropy", "sink_mass", "max_prob", "effective_rank", "residual_ratio", "mean_cosine", "key_norm_cv"];

    private static readonly Lazy<FortuneText> Text = new(FortuneText.LoadSample);

    /// <summary>Trains point <paramref name="p"/> on <paramref name="device"/> and returns its record (without key).</summary>
    public static JsonObject Compute(Device device, RouterSizes sizes, RouterPoint p)
    {
        var text = Text.Value;
        var config = p.Router.Model(sizes, p.Brake, p.ContentFree, p.Seed);
        if (config.Validate() is { } bad) throw new UsageException(bad);
        using var trainer = new Trainer(device, config, sizes.Train(p.Seed), text.Train, text.Validation);
        var steps = new List<int>();
        var loss = new List<double>();
        var layers = Enumerable.Range(0, sizes.Layers).Select(_ => Measures.ToDictionary(m => m, _ => new List<double>())).ToList();
        void Evaluate()
        {
            steps.Add(trainer.Step);
            loss.Add(trainer.Evaluate());
            foreach (var d in Diagnostics.Measure(trainer.Model, trainer.Step))
            {
                var l = (int)d["layer"]!;
                foreach (var m in Measures)
                    layers[l][m].Add(d[m] is JsonValue v && v.TryGetValue(out double x) ? x : double.NaN);
            }
        }
        Evaluate();
        while (trainer.Step < sizes.Steps)
        {
            trainer.TrainStep();
            if (trainer.Step % sizes.EvalEvery == 0 || trainer.Step == sizes.Steps) Evaluate();
        }
        var layerArray = new JsonArray();
        var onsets = new List<int?>();
        foreach (var layer in layers)
        {
            var o = new JsonObject();
            foreach (var m in Measures)
                if (layer[m].Any(double.IsFinite)) o[m] = Series(layer[m]);
            layerArray.Add(o);
            onsets.Add(Onset.Find(steps, layer["normalized_entropy"]));
        }
        var onset = Onset.Earliest(onsets);
        return new JsonObject
        {
            ["router"] = p.Router.Name,
            ["content_free"] = p.ContentFree,
            ["brake"] = (double)p.Brake,
            ["seed"] = p.Seed,
            ["steps"] = new JsonArray(steps.Select(s => (JsonNode)s).ToArray()),
            ["val_loss"] = Series(loss),
            ["layers"] = layerArray,
            ["onset_layers"] = new JsonArray(onsets.Select(o => o is { } v ? (JsonNode)v : null).ToArray()),
            ["onset"] = onset is { } s0 ? s0 : null,
        };
    }

    private static JsonArray Series(IEnumerable<double> xs) => new(xs.Select(Sweep.Num).ToArray());
}

/// <summary>A point's record read back: series per layer and the onset, recomputed from the series.</summary>
internal sealed record RouterRecord(string Key, string Router, bool ContentFree, double Brake, int Seed, int[] Steps, double[] ValLoss,
    List<Dictionary<string, double[]>> Layers)
{
    public static RouterRecord Read(JsonObject r) => new(
        (string)r["key"]!, (string)r["router"]!, (bool)r["content_free"]!, (double)r["brake"]!, (int)r["seed"]!,
        r["steps"]!.AsArray().Select(s => (int)s!).ToArray(),
        r["val_loss"]!.AsArray().Select(Sweep.ReadNum).ToArray(),
        r["layers"]!.AsArray().Select(l => l!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.AsArray().Select(Sweep.ReadNum).ToArray())).ToList());

    /// <summary>The per-layer onsets by <see cref="Onset.Find"/>.</summary>
    public IEnumerable<int?> LayerOnsets => Layers.Select(l => Experiments.Onset.Find(Steps, l["normalized_entropy"]));

    /// <summary>The run's onset: the earliest layer's.</summary>
    public int? Onset => Experiments.Onset.Earliest(LayerOnsets);

    /// <summary>A measure averaged over layers at the first and the last evaluation (NaN where a layer lacks it).</summary>
    public (double First, double Last) Ends(string measure)
    {
        var have = Layers.Where(l => l.ContainsKey(measure)).Select(l => l[measure]).ToList();
        if (have.Count == 0) return (double.NaN, double.NaN);
        return (have.Average(s => s[0]), have.Average(s => s[^1]));
    }

    /// <summary>A measure averaged over layers at every evaluation.</summary>
    public double[] Mean(string measure)
    {
        var have = Layers.Where(l => l.ContainsKey(measure)).Select(l => l[measure]).ToList();
        return Enumerable.Range(0, Steps.Length).Select(i => have.Count == 0 ? double.NaN : have.Average(s => s[i])).ToArray();
    }
}
