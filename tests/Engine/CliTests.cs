using NUnit.Framework;
using RouteKit.Engine;

namespace RouteKit.Tests;

/// <summary>The routekit command line: exit codes and what it prints.</summary>
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

    [TestCase("bogus")]
    [TestCase("identity", "--backend", "tpu")]
    [TestCase("identity", "--no-such-option")]
    public void BadUsageExitsWithTwo(params string[] args)
    {
        var (code, text) = Run(args);
        Assert.That(code, Is.EqualTo(2));
        Assert.That(text, Does.StartWith("routekit: "));
    }

    [Test]
    public void IdentityOnTheSimulatorPrintsAPassingTable()
    {
        var (code, text) = Run("identity", "--backend", "ilgpu-cpu", "--small");
        Assert.That(text, Does.Contain("(a) normalised keys").And.Contain("(b) Distance = Dot").And.Contain("(c) Distance"));
        Assert.That(text, Does.Contain("20 of 20 checks passed"));
        Assert.That(code, Is.Zero);
    }
}
