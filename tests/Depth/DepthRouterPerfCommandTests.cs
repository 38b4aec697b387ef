using NUnit.Framework;
using RouteKit.Perf.Common;

namespace RouteKit.Tests;

/// <summary>`routekit-perf depth` is registered and stops at the load gate on a busy machine, before any timing.</summary>
[TestFixture]
public sealed class DepthRouterPerfCommandTests
{
    [Test]
    public void DepthCommandIsRefusedOnABusyMachine()
    {
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 1, 1);
        using var error = new StringWriter();
        var code = RouteKit.Perf.Program.Run(["depth", "--quick"], () => busy, error);
        Assert.That(code, Is.EqualTo(LoadGate.RefusedExitCode), error.ToString());
        Assert.That(error.ToString(), Does.Contain("--allow-busy"));
    }
}
