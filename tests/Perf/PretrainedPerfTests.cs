using NUnit.Framework;
using RouteKit.Perf.Common;
using RouteKit.Perf.Pretrained;

namespace RouteKit.Tests;

/// <summary>
/// `routekit-perf pretrained` end to end on a tiny size (4 sentences, batch 1 and 2, one timed pass, no peak probes): the
/// command line parses, both encoders validate against each other, and the report has its table. No timing is asserted.
/// </summary>
[TestFixture]
[NonParallelizable] // redirects Console.Out, where routekit-perf writes its report
public sealed class PretrainedPerfTests
{
    [Test]
    public void TinyRunValidatesAndPrintsTheTable()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var console = Console.Out;
        int code;
        try
        {
            Console.SetOut(output);
            // --allow-busy: test machines are often busy, and this test proves the command path, not speed.
            code = RouteKit.Perf.Program.Run(["pretrained", "--sentences", "4", "--batch", "1,2", "--reps", "1", "--no-peaks", "--allow-busy"],
                () => LoadAverages.Read(), error);
        }
        finally
        {
            Console.SetOut(console);
        }
        var text = output.ToString();
        Assert.That(code, Is.Zero, text + error);
        Assert.That(text, Does.Contain("validation minilm (Mean pooling) batch 1: 4 sentences, max |RouteKit - ORT|").And.Contain("batch 2: 4 sentences"));
        Assert.That(text, Does.Contain("): passed").And.Not.Contain("FAILED"));
        Assert.That(text, Does.Contain($"IntraOpNumThreads = {PretrainedBenchmark.ManagedThreads}"));
        Assert.That(text, Does.Contain(PretrainedBenchmark.TableHeader.Replace("\n", Environment.NewLine, StringComparison.Ordinal)));
        var rows = text.Split('\n').Where(l => l.StartsWith("| minilm | 6 x 384 |", StringComparison.Ordinal)).ToList();
        Assert.That(rows, Has.Count.EqualTo(2));
        Assert.That(rows[0], Does.StartWith("| minilm | 6 x 384 | 1 | 4 |"));
        Assert.That(rows[1], Does.StartWith("| minilm | 6 x 384 | 2 | 2 |"));
    }

    [Test]
    public void BadOptionsAreUsageErrors()
    {
        using var error = new StringWriter();
        Assert.That(RouteKit.Perf.Program.Run(["pretrained", "--model", "bert-large", "--allow-busy"], () => null, error), Is.EqualTo(2));
        Assert.That(error.ToString(), Does.Contain("unknown model 'bert-large'"));
        Assert.That(RouteKit.Perf.Program.Run(["pretrained", "--batch", "0", "--allow-busy"], () => null, error), Is.EqualTo(2));
    }

    [Test]
    public void ABusyMachineIsRefusedBeforeAnythingLoads()
    {
        using var error = new StringWriter();
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 1, 1);
        Assert.That(RouteKit.Perf.Program.Run(["pretrained", "--sentences", "4"], () => busy, error), Is.EqualTo(LoadGate.RefusedExitCode));
        Assert.That(error.ToString(), Does.Contain("--allow-busy"));
    }

    [Test]
    public void CompareFindsTheWorstEntryAndSentence()
    {
        float[][] expected = [[1, 0], [0, 1]], actual = [[1, 0], [0.001f, 1]];
        var (maxAbs, minCos) = PretrainedBenchmark.Compare(expected, actual);
        Assert.That(maxAbs, Is.EqualTo(0.001).Within(1e-9));
        Assert.That(minCos, Is.EqualTo(1 / Math.Sqrt(1 + 1e-6)).Within(1e-9));
        Assert.That(PretrainedBenchmark.Compare([[float.NaN]], [[0]]).MaxAbs, Is.NaN);
    }
}
