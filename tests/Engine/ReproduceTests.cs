using System.Text.RegularExpressions;
using NUnit.Framework;
using RouteKit.Engine.Experiments;
using SkiaSharp;

namespace RouteKit.Tests.Engine;

/// <summary>`routekit reproduce` and the blindness experiment: the report, its links and plots, the claims' verdicts.</summary>
public sealed partial class ReproduceTests
{
    [Test]
    public void ReportLinksEveryTableAndPlotAndStatesEachClaim()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("reproduce", "--backend", "managed", "--profile", "smoke");
        Assert.That(code, Is.Zero, text);
        var report = Path.Combine(tmp.SingleRun("reproduce"), "report.md");
        var md = File.ReadAllText(report);

        var links = Link().Matches(md).Select(m => m.Groups[1].Value).Distinct().ToList();
        var files = links.Select(l => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(report)!, l))).ToList();
        Assert.That(files, Has.All.Matches<string>(File.Exists), string.Join(", ", links));
        Assert.That(links.Count(l => l.EndsWith("summary.md", StringComparison.Ordinal)), Is.EqualTo(11), "identity, blindness, three training runs, signature, brake, graph, depth, ood, pretrained");
        Assert.That(links.Count(l => l.EndsWith("metrics.jsonl", StringComparison.Ordinal)), Is.EqualTo(8));
        Assert.That(links.Count(l => l.EndsWith(".svg", StringComparison.Ordinal)), Is.EqualTo(1));

        var pngs = files.Where(f => f.EndsWith(".png", StringComparison.Ordinal)).Distinct().ToList();
        Assert.That(pngs, Is.Not.Empty);
        foreach (var png in pngs)
        {
            using var bitmap = SKBitmap.Decode(png);
            Assert.That(bitmap, Is.Not.Null, png);
            Assert.That(bitmap.Width * bitmap.Height, Is.GreaterThan(100_000));
            Assert.That(LumaVariance(bitmap), Is.GreaterThan(100.0), $"{png} looks blank");
        }
        foreach (var svg in files.Where(f => f.EndsWith(".svg", StringComparison.Ordinal)))
            Assert.That(File.ReadAllText(svg), Does.Contain("<svg").And.Contain("</svg>"));

        Assert.That(md, Does.Contain("### 1. The reframing identity holds numerically\n\n**Shown.**"));
        Assert.That(md, Does.Contain("TV grows with sigma").And.Contain("**Shown** for every one of the 2 (backend, D) curves"));
        Assert.That(md, Does.Contain("### 3. With normalised keys, Dot and Distance coincide\n\n**Shown.**"));
        Assert.That(md, Does.Contain("### 4. Small routers learn English text").And.Contain("**Shown** for all 3 mixers"));
        Assert.That(links.Count(l => l.EndsWith("loss.png", StringComparison.Ordinal)), Is.EqualTo(3));
        Assert.That(md, Does.Contain("### 5. Paper A: routers concentrate and collapse").And.Contain("### 6. Paper A: the positional brake"));
        Assert.That(md, Does.Contain("| 1 concentration | attention-dot |").And.Contain("| 3 brake moves onset | recurrent |"));
        Assert.That(md, Does.Contain("### 7. Paper A over nodes: graph attention").And.Contain("| G2 over-smoothing with depth | dot |"));
        Assert.That(md, Does.Contain("### 8. Paper A over depth: a depth router").And.Contain("| D3 large brake = plain model | dot |"));
        Assert.That(md, Does.Contain("### 9. Paper B: NAN").And.Contain($"**{OodExperiment.ClaimNanVsL1}**: supports on"));
        Assert.That(md, Does.Contain("### 10. Pretrained transformers through RouteKit").And.Contain("RouteKit's encoder equals ONNX Runtime on every model and device")
            .And.Contain("| P1 sinks appear in pretrained transformers | minilm |").And.Contain("| P4 token states collapse over depth | arctic-xs |"));
        Assert.That(links.Count(l => l.EndsWith("sinks-minilm.png", StringComparison.Ordinal) || l.EndsWith("sinks-arctic-xs.png", StringComparison.Ordinal)), Is.EqualTo(2));
        // The pretrained run's own summary: equality on Managed for both models, the four claims, and the op's fused
        // diagnostics against the float64 probabilities of the same rows.
        var pretrained = File.ReadAllText(Path.Combine(tmp.SingleRun(PretrainedExperiment.Name), "summary.md"));
        Assert.That(pretrained, Does.Contain("| minilm | managed | mean | 8 |").And.Contain("| arctic-xs | managed | cls | 8 |").And.Not.Contain("**FAIL**"));
        foreach (var claim in new[] { "P1 sinks appear", "P2 key norms are stratified", "P3 Dot is blind", "P4 token states collapse" })
            Assert.That(pretrained, Does.Contain($"| {claim}"), claim);
        var gaps = Regex.Matches(pretrained, @"fused diagnostics and float64 over every row: ([0-9.E+-]+)\.");
        Assert.That(gaps, Has.Count.EqualTo(2), pretrained);
        foreach (Match gap in gaps)
            Assert.That(double.Parse(gap.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Is.LessThan(1e-4));

        // `routekit readme` puts the run's section between the markers of a README and its plots under docs/results.
        var readmeDir = Path.Combine(tmp.Root, "repo");
        Directory.CreateDirectory(readmeDir);
        var readme = Path.Combine(readmeDir, "README.md");
        File.WriteAllText(readme, $"# Title\n\nbefore\n{ReadmeSection.Begin}\nold text\n{ReadmeSection.End}\nafter\n");
        var output = new StringWriter();
        Assert.That(RouteKit.Engine.Cli.Run(["readme", tmp.SingleRun("reproduce"), "--file", readme], output), Is.Zero, output.ToString());
        var updated = File.ReadAllText(readme);
        Assert.That(updated, Does.StartWith("# Title\n\nbefore\n" + ReadmeSection.Begin).And.EndWith(ReadmeSection.End + "\nafter\n"));
        Assert.That(updated, Does.Not.Contain("old text").And.Contain("## What the seed papers claim and what RouteKit measured"));
        Assert.That(updated, Does.Contain("| A1 concentration |").And.Contain("| A3 brake moves onset |").And.Contain("| G3 brake moves onset |").And.Contain("| D2 brake moves onset |").And.Contain($"| B: {OodExperiment.ClaimLabelFree} |")
            .And.Contain("| P1 sinks appear in pretrained transformers (pretrained encoders on real text) |").And.Contain("against ONNX Runtime on the same .onnx"));
        var images = Link().Matches(updated).Select(m => m.Groups[1].Value).Where(l => l.EndsWith(".png", StringComparison.Ordinal)).ToList();
        Assert.That(images, Has.Count.GreaterThanOrEqualTo(10));
        Assert.That(images.Select(i => Path.Combine(readmeDir, i)), Has.All.Matches<string>(File.Exists));
        output = new StringWriter();
        Assert.That(RouteKit.Engine.Cli.Run(["readme", tmp.Root, "--file", readme], output), Is.EqualTo(2), "not a reproduce run folder");
    }

    /// <summary>The README's measured-claims block is the generator's output (markers, provenance line) and its plots exist.</summary>
    [Test]
    public void ReadmeClaimsSectionIsGeneratedAndItsPlotsAreCommitted()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        Assert.That(dir, Is.Not.Null);
        var text = File.ReadAllText(Path.Combine(dir!.FullName, "README.md"));
        int begin = text.IndexOf(ReadmeSection.Begin, StringComparison.Ordinal), end = text.IndexOf(ReadmeSection.End, StringComparison.Ordinal);
        Assert.That(begin, Is.GreaterThanOrEqualTo(0).And.LessThan(end), "README has the generated block's markers");
        var block = text[begin..end];
        Assert.That(block, Does.Contain("## What the seed papers claim and what RouteKit measured").And.Contain("Generated from reproduce run `"));
        Assert.That(block, Does.Contain("| A3 brake moves onset |").And.Contain($"| B: {OodExperiment.ClaimNanVsL1} |"));
        var images = Link().Matches(block).Select(m => m.Groups[1].Value).Where(l => l.EndsWith(".png", StringComparison.Ordinal)).ToList();
        Assert.That(images, Is.Not.Empty);
        Assert.That(images.Select(i => Path.Combine(dir.FullName, i)), Has.All.Matches<string>(File.Exists));
    }

    /// <summary>The growth verdict can fail: a curve that falls, starts above 0 or stays small is not "grows".</summary>
    [Test]
    public void GrowthVerdictRejectsCurvesThatDoNotGrow()
    {
        static Blindness.Point P(double sigma, double tv, double norm = 0) => new("managed", 16, sigma, tv, tv, norm, norm);
        Assert.That(Blindness.Curves([P(0, 0), P(0.5, 0.3), P(1, 0.6)]).Single().ShowsGrowth, Is.True);
        Assert.That(Blindness.Curves([P(0, 0), P(0.5, 0.6), P(1, 0.3)]).Single().ShowsGrowth, Is.False);
        Assert.That(Blindness.Curves([P(0, 1e-3), P(0.5, 0.3), P(1, 0.6)]).Single().ShowsGrowth, Is.False);
        Assert.That(Blindness.Curves([P(0, 0), P(0.5, 0.01), P(1, 0.02)]).Single().ShowsGrowth, Is.False);
        Assert.That(Blindness.Curves([P(0, 0), P(1, 0.6, norm: 1e-3)]).Single().ShowsNormalisedCoincide, Is.False);
        Assert.That(new Blindness.Point("managed", 16, 1, 0.5, 0.5 + 2e-4, 0, 0).Passed, Is.False);
    }

    private static double LumaVariance(SKBitmap bitmap)
    {
        double sum = 0, sq = 0;
        var n = 0;
        for (var y = 0; y < bitmap.Height; y += 2)
            for (var x = 0; x < bitmap.Width; x += 2)
            {
                var c = bitmap.GetPixel(x, y);
                var luma = 0.299 * c.Red + 0.587 * c.Green + 0.114 * c.Blue;
                sum += luma;
                sq += luma * luma;
                n++;
            }
        var mean = sum / n;
        return sq / n - mean * mean;
    }

    [GeneratedRegex(@"\]\(([^)]+)\)")]
    private static partial Regex Link();
}
