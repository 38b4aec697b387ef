using System.Text.Json.Nodes;
using NUnit.Framework;
using RouteKit.Engine;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>The routekit command line: exit codes, what it prints, what a run writes.</summary>
public sealed class CliTests
{
    private static (int Code, string Text) Run(params string[] args)
    {
        var output = new StringWriter();
        var code = Cli.Run(args, output);
        return (code, output.ToString());
    }

    [Test]
    public void DevicesListsEveryBackend()
    {
        var (code, text) = Run("devices");
        Assert.That(code, Is.Zero);
        Assert.That(text, Does.Contain("managed:").And.Contain("ilgpu-cpu:").And.Contain("cuda:").And.Contain("opencl:"));
    }

    /// <summary>Bad usage: one line naming the problem, exit 2, and no run folder (nothing started).</summary>
    [TestCase("bogus")]
    [TestCase("identity", "--backend", "tpu")]
    [TestCase("identity", "--no-such-option")]
    [TestCase("identity", "--seed", "-1")]
    [TestCase("identity", "--seed", "abc")]
    [TestCase("blindness", "--profile", "huge")]
    [TestCase("blindness", "--resume", "20990101-000000-abcdef")]
    [TestCase("reproduce", "--resume", "20990101-000000-abcdef")]
    [TestCase("reproduce", "--backend", "ilgpu-cpu")]
    public void BadUsageExitsWithTwoAndOneLine(params string[] args)
    {
        using var tmp = new TempResults();
        tmp.AssertBadUsage(args);
    }

    [Test]
    public void OutThatIsAFileIsBadUsage()
    {
        var file = Path.GetTempFileName();
        try
        {
            var (code, text) = Run("identity", "--out", file);
            Assert.That(code, Is.EqualTo(2));
            Assert.That(text.Trim(), Does.StartWith("routekit: --out").And.Contain("is a file"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Test]
    public void HelpShowsEveryDefault()
    {
        var (code, text) = Run("identity", "--help");
        Assert.That(code, Is.Zero);
        Assert.That(text, Does.Contain("--backend").And.Contain("[default: all]"));
        Assert.That(text, Does.Contain("--out").And.Contain("[default: results]"));
        Assert.That(text, Does.Contain("--seed").And.Contain("[default: 1]"));
        Assert.That(text, Does.Contain("--profile").And.Contain("[default: small]"));
        Assert.That(text, Does.Contain("--resume"));
    }

    /// <summary>
    /// The ordinary run of `identity` covers Managed and the IlgpuCpu simulator (both always available), passes, and writes
    /// config.json (options, commit, devices), one metrics record per (backend, problem) and summary.md.
    /// </summary>
    [Test]
    public void IdentityOnEveryCpuBackendPassesAndWritesItsRunFolder()
    {
        using var tmp = new TempResults();
        var (code, text) = tmp.Run("identity", "--profile", "smoke");
        Assert.That(text, Does.Contain("(a) normalised keys").And.Contain("(b) Distance = Dot").And.Contain("(c) Distance"));
        Assert.That(text, Does.Match(@"(\d+) of \1 checks passed"));
        Assert.That(code, Is.Zero, text);

        var run = tmp.SingleRun("identity");
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "config.json")))!;
        Assert.That((string?)config["run_id"], Is.EqualTo(Path.GetFileName(run)));
        Assert.That((string?)config["git_commit"], Does.Match("^([0-9a-f]{40}(\\+dirty)?|unknown)$"));
        Assert.That(config["options"]!.ToJsonString(), Does.Contain("\"profile\":\"smoke\"").And.Contain("\"seed\":1"));
        var backends = config["devices"]!.AsArray().Select(d => (string)d!["backend"]!).ToList();
        Assert.That(backends, Does.Contain("managed").And.Contain("ilgpu-cpu"));
        Assert.That(config["devices"]!.AsArray().All(d => ((string?)d!["name"])?.Length > 0));

        var records = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")).Select(l => JsonNode.Parse(l)!).ToList();
        var problems = IdentityCheckGridSize();
        Assert.That(records, Has.Count.EqualTo(backends.Count * problems));
        Assert.That(records.Select(r => (string)r["key"]!).Distinct().Count(), Is.EqualTo(records.Count));
        Assert.That(records.All(r => (int)r["failed"]! == 0 && r["rows"]!.AsArray().Count == 10));
        Assert.That(File.ReadAllText(Path.Combine(run, "summary.md")), Does.Contain("| managed |").And.Contain("| ilgpu-cpu |"));
    }

    private static int IdentityCheckGridSize() => IdentityCheck.Grid(small: true).Count;
}
