using System.Diagnostics;
using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// Proves the GPU bundle before a GPU is lent (DESIGN.md section 8): perf/gpu/bundle.sh publishes self-contained into a
/// temporary folder (and fails unless the tar.xz is under 40 MB, 40,000,000 bytes: 37,035,300 measured 2026-12-02), then perf/gpu/run.sh unpacks that tar.xz and runs the
/// bundled `routekit devices` and `routekit-perf all --smoke` on Managed and on the IlgpuCpu simulator, each of which
/// validates every point against the float64 Reference before timing it and exits non-zero on a mismatch.
/// Measured 2026-11-28 on the 2-core CI machine: the publish about 70 s, each smoke run well under a minute.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PerfBundleTests
{
    private string dir = null!;

    [OneTimeSetUp]
    public void Bundle()
    {
        dir = Directory.CreateTempSubdirectory("routekit-bundle-").FullName;
        var (code, text) = Sh("perf/gpu/bundle.sh", TimeSpan.FromMinutes(6), ("BUNDLE_DIR", dir));
        Assert.That(code, Is.Zero, text);
        Assert.That(new FileInfo(Path.Combine(dir, "app.tar.xz")).Length, Is.LessThan(40_000_000), text);
    }

    [OneTimeTearDown]
    public void Clean() => Directory.Delete(dir, recursive: true);

    [TestCase("managed")]
    [TestCase("ilgpu-cpu")]
    public void BundledAppValidatesAndTimesTheSmokeGrid(string backend)
    {
        var output = Path.Combine(dir, "out-" + backend);
        var (code, text) = Sh("perf/gpu/run.sh", TimeSpan.FromMinutes(6),
            ("BUNDLE", Path.Combine(dir, "app.tar.xz")), ("OUT", output), ("BACKEND", backend), ("ALLOW_BUSY", "1")); // CI machines are busy
        var report = Path.Combine(output, $"all-{backend.Replace("-", "")}.md");
        var log = File.Exists(Path.Combine(output, $"all-{backend}.log")) ? File.ReadAllText(Path.Combine(output, $"all-{backend}.log")) : "";
        Assert.That(code, Is.Zero, text + log);
        Assert.That(File.ReadAllText(Path.Combine(output, "devices.log")), Does.Contain("managed:").And.Contain("ilgpu-cpu:"));
        var markdown = File.ReadAllText(report);
        Assert.That(markdown, Does.Contain("every point validated"));
        Assert.That(markdown, Does.Contain("- load average at start (1, 5, 15 min): "), "the load gate's line in the header");
        Assert.That(markdown, Does.Contain("Distance+Norm causal"));
        Assert.That(File.ReadAllLines(Path.ChangeExtension(report, ".csv")), Has.Length.EqualTo(3), "header and two attention rows");
    }

    [Test]
    public void BundledCliRejectsBadUsageWithTwo()
    {
        var app = Path.Combine(dir, "unpacked");
        Directory.CreateDirectory(app);
        Assert.That(Run("tar", ["xJf", Path.Combine(dir, "app.tar.xz"), "-C", app], TimeSpan.FromMinutes(1)).Code, Is.Zero);
        var perf = Path.Combine(app, "app", "routekit-perf");
        var (code, text) = Run(perf, ["attention", "--backend", "tpu"], TimeSpan.FromMinutes(1));
        Assert.That(code, Is.EqualTo(2), text);
        (code, text) = Run(perf, ["list"], TimeSpan.FromMinutes(1));
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain("TiledKernel").And.Contain("QueryKernel+KeyKernel").And.Contain("SelectiveScanForward"));
    }

    private static (int Code, string Text) Sh(string script, TimeSpan limit, params (string Name, string Value)[] environment) =>
        Run("bash", [Path.Combine(RepositoryRoot(), script)], limit, environment);

    private static (int Code, string Text) Run(string file, string[] args, TimeSpan limit, params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepositoryRoot() };
        foreach (var a in args) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment) start.Environment[name] = value;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{file} {string.Join(' ', args)} ran past {limit}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }

    private static string RepositoryRoot()
    {
        var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "Engine.sln"))) d = d.Parent;
        return d?.FullName ?? throw new DirectoryNotFoundException("Engine.sln not found above the test directory.");
    }
}
