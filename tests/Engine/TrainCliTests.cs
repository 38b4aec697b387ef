using System.Text.Json.Nodes;
using NUnit.Framework;

namespace RouteKit.Tests.Engine;

/// <summary>`routekit train`: bad configurations exit 2 with one line and create nothing; a run writes its records and files.</summary>
public sealed class TrainCliTests
{
    [TestCase("--width", "30", "--heads", "4", "multiple of the head count")]
    [TestCase("--steps", "0", "--steps 0")]
    [TestCase("--mixer", "transformer", "transformer")]
    [TestCase("--layers", "0", "--layers 0")]
    [TestCase("--mixer", "recurrent", "--brake", "0", "must be > 0")]
    [TestCase("--context", "100000", "--context 100000")]
    [TestCase("--lr", "2", "--lr 2")]
    [TestCase("--eval-every", "0", "--eval-every 0")]
    public void BadConfigurationsExit2WithOneLine(params string[] argsAndMessage)
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run(["train", .. argsAndMessage[..^1]]);
        Assert.That(code, Is.EqualTo(2), text);
        Assert.That(text.Trim().Split('\n'), Has.Length.EqualTo(1), text);
        Assert.That(text, Does.StartWith("routekit: ").And.Contain(argsAndMessage[^1]));
        Assert.That(Directory.Exists(Path.Combine(tmp.Root, "train")), Is.False, "nothing is created");
    }

    [Test]
    public void ARunWritesMetricsPlotsCheckpointAndSummary()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("train", "--mixer", "recurrent", "--layers", "1", "--width", "16", "--context", "16", "--batch", "4",
            "--steps", "40", "--eval-every", "20", "--checkpoint-every", "20", "--backend", "managed");
        Assert.That(code, Is.AnyOf(0, 1), text);
        var run = tmp.SingleRun("train");
        foreach (var f in new[] { "config.json", "metrics.jsonl", "summary.md", "checkpoint.bin", "loss.png", "loss.svg", "diagnostics.png", "diagnostics.svg" })
            Assert.That(File.Exists(Path.Combine(run, f)), f);
        var records = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.That(records.Count(r => (string?)r["kind"] == "train"), Is.EqualTo(40));
        Assert.That(records.Where(r => (string?)r["kind"] == "val").Select(r => (int)r["step"]!), Is.EqualTo(new[] { 20, 40 }));
        var diag = records.Where(r => (string?)r["kind"] == "diagnostics").ToList();
        Assert.That(diag, Has.Count.EqualTo(2));
        foreach (var d in diag)
            foreach (var field in new[] { "sink_mass", "normalized_entropy", "max_prob", "effective_rank", "residual_ratio", "mean_cosine" })
                Assert.That(double.IsFinite((double)d[field]!), $"{field} = {d[field]}");
        Assert.That(File.ReadAllText(Path.Combine(run, "summary.md")), Does.Contain("unigram entropy"));
        Assert.That(text, Does.Contain("step     40/40"));

        // Resuming the finished run (as `reproduce --resume` does) runs no step and reports the recorded validation loss
        // (it reported NaN and crashed reproduce's record before, 2026-12-02).
        var recorded = records.Last(r => (string?)r["kind"] == "val");
        var (again, againText) = tmp.Run("train", "--mixer", "recurrent", "--layers", "1", "--width", "16", "--context", "16", "--batch", "4",
            "--steps", "40", "--eval-every", "20", "--checkpoint-every", "20", "--backend", "managed", "--resume");
        Assert.That(again, Is.EqualTo(code), againText);
        Assert.That(againText, Does.Contain($"validation loss {((double)recorded["loss"]!).ToString("F4", System.Globalization.CultureInfo.InvariantCulture)} nats per byte").And.Not.Contain("NaN"));
    }
}
