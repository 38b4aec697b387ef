using System.Text.Json.Nodes;
using NUnit.Framework;

namespace RouteKit.Tests.Engine;

/// <summary>A sweep killed with SIGKILL mid-run and resumed loses and repeats no completed point.</summary>
public sealed class ResumeAfterKillTests
{
    // The simulator's smoke blindness sweep: 8 points of about a second each, slow enough to kill in the middle.
    private const int Points = 8;
    private static readonly string[] Sweep = ["blindness", "--backend", "ilgpu-cpu", "--profile", "smoke"];

    [Test]
    public void KilledSweepResumesWithEveryPointExactlyOnce()
    {
        using var tmp = new TempResults();
        var before = EngineProcess.KillAfterRecords(Sweep, tmp.Root, "blindness", 1).Count;
        Assert.That(before, Is.InRange(1, Points - 1), "the kill must land mid-sweep");

        var (code, text) = tmp.Run([.. Sweep, "--resume"]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain($"skipped {before} completed point(s), {Points - before} to go"));
        var keys = EngineProcess.MetricsLines(tmp.Root, "blindness").Select(l => (string)JsonNode.Parse(l)!["key"]!).ToList();
        Assert.That(keys, Has.Count.EqualTo(Points).And.Unique);
        Assert.That(Directory.GetDirectories(Path.Combine(tmp.Root, "blindness")), Has.Length.EqualTo(1));
    }
}
