using NUnit.Framework;
using RouteKit.Perf;

namespace RouteKit.Tests;

/// <summary>The scan benchmark runs end to end in quick mode: it validates, then prints its table.</summary>
[TestFixture]
public sealed class ScanBenchmarkTests
{
    [Test]
    public void QuickRunValidatesAndPrintsTheTable()
    {
        using var output = new StringWriter();
        var code = ScanBenchmark.Run(output, quick: true);
        var text = output.ToString();
        Assert.That(code, Is.EqualTo(0), text);
        Assert.That(text, Does.Contain(": ok"));
        Assert.That(text, Does.Contain("|  2048 |"));
    }

    [Test]
    public void DeviceQuickRunOnTheSimulatorValidatesAndPrintsTheTable()
    {
        using var output = new StringWriter();
        var code = ScanBenchmark.RunDevice(output, Backend.IlgpuCpu, quick: true);
        var text = output.ToString();
        Assert.That(code, Is.EqualTo(0), text);
        Assert.That(text, Does.Contain("every gradient vs float64 reference: ok"));
        Assert.That(text, Does.Contain("|   64 |"));
    }
}
