using NUnit.Framework;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>`routekit pretrained`: equality with ONNX Runtime, the measures, the heat map and the verdicts (smoke profile:
/// 8 real sentences through all-MiniLM-L6-v2 on the Managed backend), and its bad usage.</summary>
public sealed class PretrainedExperimentTests
{
    [Test]
    public void SmokeRunEqualsOnnxRuntimeAndStatesEachClaim()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("pretrained", "--model", "minilm", "--backend", "managed", "--profile", "smoke");
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain("pretrained minilm on managed: 8 sentences").And.Contain(": pass"));
        var run = tmp.SingleRun("pretrained");
        var summary = File.ReadAllText(Path.Combine(run, "summary.md"));
        Assert.That(summary, Does.Contain("| minilm | managed | mean | 8 |").And.Contain("| pass |"));
        foreach (var claim in new[] { "P1 sinks appear", "P2 key norms are stratified", "P3 Dot is blind", "P4 token states collapse" })
            Assert.That(summary, Does.Contain($"| {claim}"), claim);
        Assert.That(summary, Does.Contain("![attention mass on [CLS] and [SEP] per layer and head](sinks-minilm.png)"));
        Assert.That(new FileInfo(Path.Combine(run, "sinks-minilm.png")).Length, Is.GreaterThan(10_000));
        // The fused diagnostics of the op agree with the float64 probabilities of the same rows.
        var gap = System.Text.RegularExpressions.Regex.Match(summary, @"fused diagnostics and float64 over every row: ([0-9.E+-]+)\.");
        Assert.That(gap.Success, summary);
        Assert.That(double.Parse(gap.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.LessThan(1e-4));
        Assert.That(File.ReadAllLines(Path.Combine(run, "metrics.jsonl")), Has.Length.EqualTo(2), "equality on managed, measures");

        // Resuming the finished run computes nothing and writes the same verdicts.
        var (again, text2) = tmp.Run("pretrained", "--model", "minilm", "--backend", "managed", "--profile", "smoke", "--resume");
        Assert.That(again, Is.Zero, text2);
        Assert.That(text2, Does.Contain("skipped 2 completed point(s), 0 to go"));
    }

    [TestCase("bert-large")]
    [TestCase("")]
    public void UnknownModelIsRefused(string model)
    {
        using var tmp = new TempResults();
        tmp.AssertBadUsage("pretrained", "--model", model, "--backend", "managed", "--profile", "smoke");
    }

    [Test]
    public void ModelNamesParse()
    {
        Assert.That(PretrainedExperiment.ParseModels("all"), Has.Count.EqualTo(2));
        Assert.That(PretrainedExperiment.ParseModels(" Arctic-XS "), Is.EqualTo(new[] { RouteKit.Engine.Pretrained.PretrainedModelId.ArcticXs }));
    }
}
