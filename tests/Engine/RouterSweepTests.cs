using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RouteKit.Engine.Experiments;
using RouteKit.Engine.Models;

namespace RouteKit.Tests.Engine;

/// <summary>Issue 12, paper A: the onset definition, shards and merge, resume after kill, bad usage.</summary>
public sealed class RouterSweepTests
{
    private static readonly int[] Steps = [0, 10, 20, 30, 40, 50, 60];

    [Test]
    public void OnsetIsTheFirstStepFromWhichEntropyStaysBelowTheFraction()
    {
        // Falls below 0.9 x 1.0 at step 30 and stays.
        Assert.That(Onset.Find(Steps, [1.0, 0.98, 0.95, 0.89, 0.7, 0.5, 0.4]), Is.EqualTo(30));
        // Dips below at step 10, comes back, then falls for good at step 40: the dip is not the onset.
        Assert.That(Onset.Find(Steps, [1.0, 0.85, 0.95, 0.92, 0.8, 0.6, 0.5]), Is.EqualTo(40));
        // Exactly at the threshold is not below it.
        Assert.That(Onset.Find(Steps, [0.5, 0.5, 0.5, 0.45, 0.45, 0.45, 0.45]), Is.Null);
        Assert.That(Onset.Find(Steps, [0.5, 0.5, 0.5, 0.4499, 0.3, 0.2, 0.1]), Is.EqualTo(30));
        // Never concentrates; concentrates only at the last evaluation; NaN breaks the run of "below".
        Assert.That(Onset.Find(Steps, [1.0, 1.0, 0.99, 0.97, 0.95, 0.93, 0.91]), Is.Null);
        Assert.That(Onset.Find(Steps, [1.0, 1.0, 0.99, 0.97, 0.95, 0.93, 0.2]), Is.EqualTo(60));
        Assert.That(Onset.Find(Steps, [1.0, 0.5, 0.5, double.NaN, 0.5, 0.5, 0.5]), Is.EqualTo(40));
        Assert.That(Onset.Find(Steps, [double.NaN, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]), Is.Null);
        Assert.That(Onset.Earliest([null, 40, 30, null]), Is.EqualTo(30));
        Assert.That(Onset.Earliest([null, null]), Is.Null);
        Assert.Throws<ArgumentException>(() => Onset.Find([10, 20], [1.0, 0.5]));
        Assert.Throws<ArgumentException>(() => Onset.Find([0, 10], [1.0]));
    }

    [Test]
    public void OnsetOfNoisyDecayingCurvesIsFoundWithinOneInterval()
    {
        // Entropy = 1 until a known onset t0, then decays; small noise on top. The found onset is the first evaluation
        // at or after the step where the clean curve crosses 0.9 (noise of +-0.01 can move it by one interval at most).
        var rng = new Random(7);
        var steps = Enumerable.Range(0, 41).Select(i => i * 25).ToArray();
        foreach (var t0 in new[] { 0, 100, 250, 500, 750 })
        {
            double Clean(int s) => s <= t0 ? 1.0 : Math.Exp(-(s - t0) / 200.0);
            var crossing = steps.First(s => Clean(s) < 0.9 - 0.02);
            var noisy = steps.Select(s => Clean(s) + (s == 0 ? 0 : 0.01 * (2 * rng.NextDouble() - 1))).ToArray();
            var found = Onset.Find(steps, noisy);
            Assert.That(found, Is.Not.Null, $"t0 {t0}");
            Assert.That(found!.Value, Is.InRange(crossing - 25, crossing), $"t0 {t0}");
        }
    }

    [Test]
    public void SpearmanIsOneForMonotoneAndHandlesTies()
    {
        Assert.That(RouterSweeps.Spearman([1, 2, 4, 8], [10, 20, 35, 70]), Is.EqualTo(1).Within(1e-12));
        Assert.That(RouterSweeps.Spearman([1, 2, 4, 8], [70, 20, 10, 5]), Is.EqualTo(-1).Within(1e-12));
        Assert.That(RouterSweeps.Spearman([1, 2, 3, 4], [5, 5, 5, 5]), Is.NaN);
        Assert.That(RouterSweeps.Spearman([1, 2, 3, 4], [1, 2, 2, 3]), Is.EqualTo(3 / Math.Sqrt(10)).Within(1e-12)); // ranks 0, 1.5, 1.5, 3
    }

    [TestCase("signature")]
    [TestCase("graph")]
    [TestCase("depth")]
    public void ShardsMergedEqualTheUnshardedRun(string experiment)
    {
        using var tmp = new TempResults();
        string[] sweep = [experiment, "--profile", "smoke", "--backend", "managed"];
        var (code, text) = tmp.Run(sweep);
        Assert.That(code, Is.Zero, text);
        var whole = tmp.SingleRun(experiment);
        var shardDirs = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var before = Directory.GetDirectories(Path.Combine(tmp.Root, experiment)).ToHashSet();
            (code, text) = tmp.Run([.. sweep, "--shard", $"{i}/3"]);
            Assert.That(code, Is.Zero, text);
            shardDirs.Add(Directory.GetDirectories(Path.Combine(tmp.Root, experiment)).Single(d => !before.Contains(d)));
            Assert.That(File.ReadAllText(Path.Combine(shardDirs[^1], "summary.md")), Does.Contain($"shard {i}/3"));
        }
        var wholeRecords = Records(whole);
        Assert.That(shardDirs.Sum(d => Records(d).Count), Is.EqualTo(wholeRecords.Count), "the shards partition the points");

        var mergeRoot = Path.Combine(tmp.Root, "merged");
        (code, text) = Raw(["merge", .. shardDirs.AsEnumerable().Reverse(), "--out", mergeRoot]);
        Assert.That(code, Is.Zero, text);
        var merged = Directory.GetDirectories(Path.Combine(mergeRoot, experiment)).Single();
        var mergedRecords = Records(merged);
        Assert.That(mergedRecords.Select(r => (string)r["key"]!), Is.EqualTo(wholeRecords.Select(r => (string)r["key"]!)), "same points, same order");
        Assert.That(mergedRecords.Select(Merge.Content), Is.EqualTo(wholeRecords.Select(Merge.Content)), "same measurements, bit for bit");
        // The merged report is the unsharded one (its verdict table, line for line).
        Assert.That(Verdicts(merged), Is.EqualTo(Verdicts(whole)));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(merged, "config.json")))!;
        Assert.That((string)config["options"]!["shard"]!, Is.EqualTo("merged"));

        // Two shards only: exit 1, and the summary names what is missing.
        var partialRoot = Path.Combine(tmp.Root, "partial");
        (code, text) = Raw(["merge", shardDirs[0], shardDirs[2], "--out", partialRoot]);
        Assert.That(code, Is.EqualTo(1), text);
        var partial = Directory.GetDirectories(Path.Combine(partialRoot, experiment)).Single();
        Assert.That(File.ReadAllText(Path.Combine(partial, "summary.md")), Does.Contain("points are missing"));

        // A shard whose record for a point differs from another's: refused, nothing written.
        var forged = Path.Combine(tmp.Root, "forged");
        CopyDirectory(shardDirs[1], forged);
        var lines = File.ReadAllLines(Path.Combine(forged, "metrics.jsonl"));
        var first = JsonNode.Parse(lines[0])!.AsObject();
        first["onset"] = 12345;
        lines[0] = first.ToJsonString();
        File.WriteAllLines(Path.Combine(forged, "metrics.jsonl"), lines);
        var refusedRoot = Path.Combine(tmp.Root, "refused");
        (code, text) = Raw(["merge", shardDirs[1], forged, "--out", refusedRoot]);
        Assert.That(code, Is.EqualTo(2), text);
        Assert.That(text, Does.Contain("differs"));
        Assert.That(Directory.Exists(refusedRoot), Is.False);
    }

    [Test]
    public void MergeRefusesFoldersOfDifferentSweeps()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("signature", "--profile", "smoke", "--backend", "managed", "--shard", "0/4");
        Assert.That(code, Is.Zero, text);
        (code, text) = tmp.Run("signature", "--profile", "smoke", "--backend", "managed", "--shard", "1/4", "--seed", "2");
        Assert.That(code, Is.Zero, text);
        var dirs = Directory.GetDirectories(Path.Combine(tmp.Root, "signature"));
        (code, text) = Raw(["merge", .. dirs, "--out", Path.Combine(tmp.Root, "m")]);
        Assert.That(code, Is.EqualTo(2), text);
        Assert.That(text, Does.StartWith("routekit: merge:").And.Contain("not a shard of the same sweep"));
        (code, text) = Raw(["merge", Path.Combine(tmp.Root, "nowhere"), "--out", Path.Combine(tmp.Root, "m")]);
        Assert.That(code, Is.EqualTo(2), text);
        Assert.That(text, Does.Contain("not a run folder"));
    }

    [TestCase("signature", "--shard", "3/3")]
    [TestCase("signature", "--shard", "1")]
    [TestCase("brake", "--shard", "a/b")]
    [TestCase("brake", "--shard", "-1/2")]
    [TestCase("brake", "--profile", "huge")]
    [TestCase("graph", "--shard", "2/2")]
    [TestCase("graph", "--backend", "tpu")]
    [TestCase("depth", "--shard", "0/0")]
    [TestCase("depth", "--profile", "tiny")]
    [TestCase("signature", "--seed", "-3")]
    [TestCase("merge")]
    public void BadOptionsExitTwo(params string[] args)
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run(args);
        Assert.That(code, Is.EqualTo(2), text);
        Assert.That(text, Does.StartWith("routekit: "));
        Assert.That(Directory.Exists(Path.Combine(tmp.Root, args[0])), Is.False, "nothing was written");
    }

    [Test]
    public void DecayScaleOutOfRangeIsRefused()
    {
        Assert.That(new ModelConfig { Mixer = MixerKind.Mamba, DecayScale = 0 }.Validate(), Does.Contain("--decay-scale"));
        Assert.That(new ModelConfig { Mixer = MixerKind.Mamba, DecayScale = float.NaN }.Validate(), Does.Contain("--decay-scale"));
        Assert.That(new ModelConfig { Mixer = MixerKind.Mamba, DecayScale = 4 }.Validate(), Is.Null);
    }

    /// <summary>The brake sweep killed with SIGKILL mid-run and resumed: every point exactly once, none recomputed.</summary>
    [Test]
    public void KilledBrakeSweepResumesWithEveryPointExactlyOnce()
    {
        string[] sweep = ["brake", "--profile", "smoke", "--backend", "managed"];
        var points = RouterSweeps.Points(RouterSweeps.BrakeName, RouteKit.Engine.Runs.RunProfile.Smoke, 1).Count;
        using var tmp = new TempResults();
        var done = EngineProcess.KillAfterRecords(sweep, tmp.Root, "brake", 2).Select(ContentOf).ToList();
        var before = done.Count;
        Assert.That(before, Is.InRange(1, points - 1), "the kill must land mid-sweep");

        var (code, text) = tmp.Run([.. sweep, "--resume"]);
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain($"skipped {before} completed point(s), {points - before} to go"));
        var after = EngineProcess.MetricsLines(tmp.Root, "brake");
        Assert.That(after.Select(l => (string)JsonNode.Parse(l)!["key"]!).ToList(), Has.Count.EqualTo(points).And.Unique);
        Assert.That(after.Take(before).Select(ContentOf), Is.EqualTo(done), "completed points are kept as they were");
    }

    // The CLI without TempResults' --out (merge takes its own).
    private static (int Code, string Text) Raw(string[] args)
    {
        var output = new StringWriter();
        var code = RouteKit.Engine.Cli.Run(args, output);
        return (code, output.ToString());
    }

    private static string ContentOf(string line) => Merge.Content(JsonNode.Parse(line)!.AsObject());

    private static List<JsonObject> Records(string run) =>
        File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    private static string Verdicts(string run)
    {
        var text = File.ReadAllText(Path.Combine(run, "summary.md"));
        return text[text.IndexOf("## Verdicts", StringComparison.Ordinal)..];
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from))
            if (Path.GetFileName(f) != ".lock") File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }
}

/// <summary>docs/sweeps: the Slurm array script and the Indexed Job's command run as written (smoke profile, 2 shards).</summary>
public sealed class SweepDocsTests
{
    private static string RepoFile(string relative)
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln"))) dir = dir.Parent;
        Assert.That(dir, Is.Not.Null, "repository root");
        return Path.Combine(dir!.FullName, relative);
    }

    private static (int Code, string Output) Shell(string script, Dictionary<string, string> env)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        foreach (var (k, v) in env) start.Environment[k] = v;
        using var p = Process.Start(start)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static string Engine => "dotnet " + Path.Combine(TestContext.CurrentContext.TestDirectory, "RouteKit.Engine.dll");

    [Test]
    public void SlurmArrayScriptShardsAndMerges()
    {
        using var tmp = new TempResults();
        var script = RepoFile("docs/sweeps/signature.sbatch");
        foreach (var i in new[] { 0, 1 })
        {
            var (code, output) = Shell($"bash '{script}'", new()
            {
                ["ROUTEKIT"] = Engine, ["PROFILE"] = "smoke", ["BACKEND"] = "managed", ["OUT"] = tmp.Root,
                ["SLURM_ARRAY_TASK_ID"] = $"{i}", ["SLURM_ARRAY_TASK_COUNT"] = "2",
            });
            Assert.That(code, Is.Zero, output);
        }
        var (mergeCode, mergeOutput) = Shell($"bash '{script}'", new() { ["ROUTEKIT"] = Engine, ["OUT"] = tmp.Root, ["MERGE"] = "1" });
        Assert.That(mergeCode, Is.Zero, mergeOutput);
        var merged = tmp.SingleRun("signature");
        var points = RouterSweeps.Points(RouterSweeps.SignatureName, RouteKit.Engine.Runs.RunProfile.Smoke, 1).Count;
        Assert.That(File.ReadAllLines(Path.Combine(merged, "metrics.jsonl")), Has.Length.EqualTo(points));
    }

    [Test]
    public void IndexedJobCommandRunsAsWritten()
    {
        using var tmp = new TempResults();
        var yaml = File.ReadAllLines(RepoFile("docs/sweeps/brake-indexed-job.yaml"));
        var command = yaml.Select(l => l.Trim()).Single(l => l.StartsWith("- routekit brake", StringComparison.Ordinal))[2..];
        Assert.That(command, Does.Contain("--shard \"$JOB_COMPLETION_INDEX/$SHARDS\""));
        foreach (var i in new[] { 0, 1 })
        {
            var (code, output) = Shell($"routekit() {{ {Engine} \"$@\"; }}; {command.Replace("/results", tmp.Root)}", new()
            {
                ["JOB_COMPLETION_INDEX"] = $"{i}", ["SHARDS"] = "2", ["PROFILE"] = "smoke", ["BACKEND"] = "managed",
            });
            Assert.That(code, Is.Zero, output);
        }
        var shards = Directory.GetDirectories(Path.Combine(tmp.Root, "shards", "brake"));
        Assert.That(shards, Has.Length.EqualTo(2));
        var points = RouterSweeps.Points(RouterSweeps.BrakeName, RouteKit.Engine.Runs.RunProfile.Smoke, 1).Count;
        Assert.That(shards.Sum(d => File.ReadAllLines(Path.Combine(d, "metrics.jsonl")).Length), Is.EqualTo(points));
    }
}
