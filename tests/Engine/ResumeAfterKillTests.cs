using System.Diagnostics;
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
        int before;
        using (var child = EngineProcess.Start(Sweep, tmp.Root))
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                before = Lines(tmp.Root).Count;
                if (before >= 1 || child.HasExited || clock.Elapsed > TimeSpan.FromSeconds(60)) break;
                Thread.Sleep(10);
            }
            Assert.That(child.HasExited, Is.False, "the sweep ended before the test could kill it");
            child.Kill(entireProcessTree: true); // SIGKILL on Linux: no handler runs.
            child.WaitForExit();
        }
        before = Lines(tmp.Root).Count;
        Assert.That(before, Is.InRange(1, Points - 1), "the kill must land mid-sweep");

        var (code, text) = tmp.Run([.. Sweep, "--resume"]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain($"skipped {before} completed point(s), {Points - before} to go"));
        var keys = Lines(tmp.Root).Select(l => (string)JsonNode.Parse(l)!["key"]!).ToList();
        Assert.That(keys, Has.Count.EqualTo(Points).And.Unique);
        Assert.That(Directory.GetDirectories(Path.Combine(tmp.Root, "blindness")), Has.Length.EqualTo(1));
    }

    // Whole lines of the one run's metrics.jsonl; a torn last line (a kill mid-write) is not a completed point.
    private static List<string> Lines(string root)
    {
        var dir = Path.Combine(root, "blindness");
        if (!Directory.Exists(dir)) return [];
        var file = Directory.GetDirectories(dir).Select(d => Path.Combine(d, "metrics.jsonl")).FirstOrDefault(File.Exists);
        if (file is null) return [];
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var text = new StreamReader(stream).ReadToEnd();
        var end = text.LastIndexOf('\n');
        return end < 0 ? [] : text[..end].Split('\n').ToList();
    }
}
