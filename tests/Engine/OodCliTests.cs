using System.Globalization;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>`routekit ood` from the command line: bad usage, and a smoke run whose summary verdicts are checked against metrics.jsonl.</summary>
public sealed class OodCliTests
{
    [TestCase("ood", "--profile", "huge")]
    [TestCase("ood", "--backend", "tpu")]
    [TestCase("ood", "--seed", "-3")]
    [TestCase("ood", "--backend", "ilgpu-cpu", "--profile", "small")]
    [TestCase("ood", "--backend", "ilgpu-cpu", "--profile", "smoke")]
    [TestCase("ood", "--resume", "20990101-000000-abcdef")]
    public void BadUsageExitsWithTwoAndOneLine(params string[] args)
    {
        using var tmp = new TempResults();
        tmp.AssertBadUsage(args);
    }

    /// <summary>
    /// The smoke profile end to end on Managed: exit 0, every file of the run folder, the summary's verdict table
    /// recomputed here from metrics.jsonl (chosen layers, AUROCs, difference, the margin rule), then --resume: the
    /// models are loaded instead of trained, no record is added and the verdicts are the same.
    /// </summary>
    [Test]
    public void SmokeRunWritesTheRunFolderAndItsVerdictsFollowTheMetrics()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("ood", "--profile", "smoke", "--backend", "managed");
        Assert.That(code, Is.Zero, text);
        var run = tmp.SingleRun(OodExperiment.Name);
        string[] files = ["config.json", "metrics.jsonl", "summary.md", "classifier.params", "autoencoder.params", "hist_l1.png", "hist_nan.png",
            .. OodExperiment.OodSets.Select(s => $"roc_{s}.png")];
        foreach (var f in files) Assert.That(new FileInfo(Path.Combine(run, f)), Has.Property("Length").GreaterThan(0), f);

        var records = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
        var summary = File.ReadAllText(Path.Combine(run, "summary.md"));
        var verdicts = CheckVerdicts(records, summary);
        Assert.That(verdicts, Is.EqualTo(4 * OodExperiment.OodSets.Length), "verdict rows");
        var accuracy = (double)records.Single(r => (string?)r["key"] == "train/classifier")["test_accuracy"]!;
        Assert.That(summary, Does.Contain($"test accuracy {accuracy.ToString("F4", CultureInfo.InvariantCulture)}"));

        var (again, resumed) = tmp.Run("ood", "--profile", "smoke", "--backend", "managed", "--resume");
        Assert.That(again, Is.Zero, resumed);
        Assert.That(resumed, Does.Contain("classifier loaded from").And.Contain("autoencoder loaded from"));
        Assert.That(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")), Has.Length.EqualTo(records.Count), "a resume adds no record");
        var summaryAgain = File.ReadAllText(Path.Combine(run, "summary.md"));
        Assert.That(Verdicts(summaryAgain), Is.EqualTo(Verdicts(summary)), "the resumed run reaches the same verdicts");
    }

    private static List<string> Verdicts(string summary) => summary[summary.IndexOf("## Verdicts", StringComparison.Ordinal)..]
        .Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| claim", StringComparison.Ordinal)).ToList();

    // Every verdict row of the summary against metrics.jsonl; returns the number of rows checked.
    private static int CheckVerdicts(List<JsonObject> records, string summary)
    {
        string Layer(string model) => (string)records.Single(r => (string?)r["key"] == $"select/{model}")["layer"]!;
        double Auroc(string model, string layer, string score, string set) =>
            (double)records.Single(r => (string?)r["key"] == $"auroc/{model}/{layer}/{score}/{set}")["auroc"]!;
        string F(double x) => x.ToString("F4", CultureInfo.InvariantCulture);
        var layer = Layer(OodExperiment.Classifier);
        var aeLayer = Layer(OodExperiment.Autoencoder);
        var rows = 0;
        foreach (var line in Verdicts(summary))
        {
            var cells = line.Trim('|', ' ').Split(" | ");
            var (claim, set) = (cells[0], cells[1]);
            var nan = Auroc(OodExperiment.Classifier, layer, "nan", set);
            var (auroc, baseline) = claim switch
            {
                OodExperiment.ClaimNanVsL1 => (nan, Auroc(OodExperiment.Classifier, layer, "l1", set)),
                OodExperiment.ClaimNanMsp => (Auroc(OodExperiment.Classifier, layer, "nan_x_msp", set), Math.Max(nan, Auroc(OodExperiment.Classifier, "output", "msp", set))),
                OodExperiment.ClaimNanEnergy => (Auroc(OodExperiment.Classifier, layer, "nan_x_exp_energy", set), Math.Max(nan, Auroc(OodExperiment.Classifier, "output", "energy", set))),
                OodExperiment.ClaimLabelFree => (Auroc(OodExperiment.Autoencoder, aeLayer, "nan", set), 0.5),
                _ => throw new AssertionException($"unknown claim in the summary: {line}"),
            };
            Assert.That((cells[2], cells[3]), Is.EqualTo((F(auroc), F(baseline))), line);
            var difference = auroc - baseline;
            Assert.That(double.Parse(cells[4], CultureInfo.InvariantCulture), Is.EqualTo(difference).Within(5e-5), line);
            var expected = difference > 0.02 ? "supports" : difference < -0.02 ? "**contradicts**" : "undecided";
            Assert.That(cells[5], Is.EqualTo(expected), line);
            var belowChance = claim != OodExperiment.ClaimLabelFree && auroc < 0.5 && baseline < 0.5;
            Assert.That(cells.Length > 6 ? cells[6] : "", Is.EqualTo(belowChance ? OodExperiment.BelowChanceNote : ""), line);
            rows++;
        }
        return rows;
    }
}
