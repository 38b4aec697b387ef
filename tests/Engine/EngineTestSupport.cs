using RouteKit.Engine;

namespace RouteKit.Tests.Engine;

/// <summary>A fresh results root per test, removed afterwards, and an in-process CLI call that captures the output.</summary>
internal sealed class TempResults : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "routekit-tests-" + Guid.NewGuid().ToString("N"));

    public (int Code, string Text) Run(params string[] args)
    {
        var output = new StringWriter();
        var code = Cli.Run([.. args, "--out", Root], output);
        return (code, output.ToString());
    }

    /// <summary>Bad usage: one line naming the problem, exit 2, and no run folder (nothing started).</summary>
    public void AssertBadUsage(params string[] args)
    {
        var (code, text) = Run(args);
        NUnit.Framework.Assert.That(code, NUnit.Framework.Is.EqualTo(2), text);
        NUnit.Framework.Assert.That(text, NUnit.Framework.Does.StartWith("routekit: "));
        NUnit.Framework.Assert.That(text.TrimEnd().Split('\n'), NUnit.Framework.Has.Length.EqualTo(1), text);
        NUnit.Framework.Assert.That(Directory.Exists(Root), NUnit.Framework.Is.False, "a run folder was created before the usage error");
    }

    /// <summary>The only run folder of <paramref name="experiment"/> (fails if there are several or none).</summary>
    public string SingleRun(string experiment)
    {
        var runs = Directory.GetDirectories(Path.Combine(Root, experiment));
        NUnit.Framework.Assert.That(runs, NUnit.Framework.Has.Length.EqualTo(1), $"run folders of {experiment}");
        return runs[0];
    }

    public void Dispose()
    {
        if (Directory.Exists(Root)) Directory.Delete(Root, recursive: true);
    }
}

/// <summary>`routekit` as a separate process (the engine DLL next to the tests), for tests that kill it.</summary>
internal static class EngineProcess
{
    /// <summary>Starts `dotnet RouteKit.Engine.dll args --out outRoot`, its output drained and discarded.</summary>
    public static System.Diagnostics.Process Start(string[] args, string outRoot)
    {
        var engine = Path.Combine(NUnit.Framework.TestContext.CurrentContext.TestDirectory, "RouteKit.Engine.dll");
        NUnit.Framework.Assert.That(File.Exists(engine), engine);
        var start = new System.Diagnostics.ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(engine);
        foreach (var a in args) start.ArgumentList.Add(a);
        start.ArgumentList.Add("--out");
        start.ArgumentList.Add(outRoot);
        var child = System.Diagnostics.Process.Start(start)!;
        child.OutputDataReceived += (_, _) => { };
        child.ErrorDataReceived += (_, _) => { };
        child.BeginOutputReadLine();
        child.BeginErrorReadLine();
        return child;
    }

    /// <summary>
    /// Starts `routekit args`, waits until the run of <paramref name="experiment"/> holds at least
    /// <paramref name="records"/> whole records, then kills it with SIGKILL (no handler runs); returns the whole records
    /// it left. Fails if the run ended before the kill.
    /// </summary>
    public static List<string> KillAfterRecords(string[] args, string outRoot, string experiment, int records)
    {
        using (var child = Start(args, outRoot))
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            while (MetricsLines(outRoot, experiment).Count < records && !child.HasExited && clock.Elapsed < TimeSpan.FromSeconds(120))
                Thread.Sleep(5);
            NUnit.Framework.Assert.That(child.HasExited, NUnit.Framework.Is.False, "the sweep ended before the test could kill it");
            child.Kill(entireProcessTree: true);
            child.WaitForExit();
        }
        return MetricsLines(outRoot, experiment);
    }

    /// <summary>Whole lines of the one run's metrics.jsonl; a torn last line (a kill mid-write) is not a completed point.</summary>
    public static List<string> MetricsLines(string outRoot, string experiment)
    {
        var dir = Path.Combine(outRoot, experiment);
        if (!Directory.Exists(dir)) return [];
        var file = Directory.GetDirectories(dir).Select(d => Path.Combine(d, "metrics.jsonl")).FirstOrDefault(File.Exists);
        if (file is null) return [];
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var text = new StreamReader(stream).ReadToEnd();
        var end = text.LastIndexOf('\n');
        return end < 0 ? [] : text[..end].Split('\n').ToList();
    }
}
