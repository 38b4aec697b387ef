using System.Text.Json.Nodes;
using NUnit.Framework;

namespace RouteKit.Tests.Engine;

/// <summary>Run folders: resume by options or by id, torn records, distinct folders.</summary>
public sealed class RunFolderTests
{
    // The Managed smoke blindness sweep: 2 head dimensions x 4 sigmas, milliseconds per point.
    private const int Points = 8;
    private static readonly string[] Sweep = ["blindness", "--backend", "managed", "--profile", "smoke"];

    private static List<string> Keys(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => (string)JsonNode.Parse(l)!["key"]!).ToList();

    [Test]
    public void ResumeAfterATornRecordRedoesOnlyThatPoint()
    {
        using var tmp = new TempResults();
        Assert.That(tmp.Run(Sweep).Code, Is.Zero);
        var run = tmp.SingleRun("blindness");
        var metrics = Path.Combine(run, "metrics.jsonl");
        var lines = File.ReadAllLines(metrics);
        Assert.That(lines, Has.Length.EqualTo(Points));
        // What a kill in the middle of the fourth write leaves: three whole records and half of the fourth.
        File.WriteAllText(metrics, string.Join("\n", lines.Take(3)) + "\n" + lines[3][..(lines[3].Length / 2)]);

        var (code, text) = tmp.Run([.. Sweep, "--resume"]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain("skipped 3 completed point(s), 5 to go").And.Contain("cut a torn last record"));
        Assert.That(tmp.SingleRun("blindness"), Is.EqualTo(run), "resume must continue the same folder");
        var keys = Keys(run);
        Assert.That(keys, Has.Count.EqualTo(Points).And.Unique);
        Assert.That(keys.Take(3), Is.EqualTo(lines.Take(3).Select(l => (string)JsonNode.Parse(l)!["key"]!)));
    }

    [Test]
    public void ResumeByIdAndOnlyWithTheSameOptions()
    {
        using var tmp = new TempResults();
        Assert.That(tmp.Run(Sweep).Code, Is.Zero);
        var run = tmp.SingleRun("blindness");
        var id = Path.GetFileName(run);

        var (code, text) = tmp.Run([.. Sweep, "--resume", id]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain($"skipped {Points} completed point(s), 0 to go"));
        Assert.That(Keys(run), Has.Count.EqualTo(Points));

        (code, text) = tmp.Run([.. Sweep, "--seed", "2", "--resume", id]);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(text, Does.StartWith("routekit: --resume " + id).And.Contain("other options"));

        // Bare --resume with other options finds no matching run and starts a new folder.
        (code, text) = tmp.Run([.. Sweep, "--seed", "2", "--resume"]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain("no earlier blindness run with these options"));
        Assert.That(Directory.GetDirectories(Path.Combine(tmp.Root, "blindness")), Has.Length.EqualTo(2));
    }

    [Test]
    public void TwoRunsNeverShareAFolder()
    {
        using var tmp = new TempResults();
        var codes = Enumerable.Range(0, 4).AsParallel().Select(_ => tmp.Run(Sweep).Code).ToList();
        Assert.That(codes, Is.All.Zero);
        var runs = Directory.GetDirectories(Path.Combine(tmp.Root, "blindness"));
        Assert.That(runs, Has.Length.EqualTo(4));
        Assert.That(runs.Select(Keys), Has.All.Count.EqualTo(Points));
    }
}
