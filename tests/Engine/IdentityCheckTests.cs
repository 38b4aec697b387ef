using NUnit.Framework;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>The reframing identity (DESIGN.md section 4) holds on every CPU backend, through the public op.</summary>
public sealed class IdentityCheckTests
{
    [TestCase(Backend.Managed, false)]
    [TestCase(Backend.IlgpuCpu, true)]
    public void EveryIdentityHolds(Backend backend, bool small)
    {
        using var device = Device.Create(backend);
        var rows = IdentityCheck.Run(device, IdentityCheck.Grid(small));
        Assert.That(rows, Has.Count.EqualTo(IdentityCheck.Grid(small).Count * 10));
        var failures = rows.Where(r => !r.Passed).Select(r => $"{r.Check} {r.Problem} {r.Quantity}: {r.Error:E2} > {r.Threshold:E2}");
        Assert.That(failures, Is.Empty);
    }

    /// <summary>The checks can fail: keys of unequal norms make Dot and Distance differ, far above the threshold.</summary>
    [Test]
    public void KeyNormsMatterWithoutNormalisation()
    {
        using var device = Device.Create(Backend.Managed);
        var rng = new Random(3);
        var q = Enumerable.Range(0, 2 * 16 * 8).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var k = Enumerable.Range(0, 2 * 16 * 8).Select(i => (float)((rng.NextDouble() - 0.5) * (1 + i / 8 % 5))).ToArray();
        using var tq = device.FromArray(q, 1, 2, 16, 8);
        using var tk = device.FromArray(k, 1, 2, 16, 8);
        using var dot = Attention.Forward(tq, tk, tk, new AttentionOptions { Score = Score.Dot });
        using var dist = Attention.Forward(tq, tk, tk, new AttentionOptions { Score = Score.Distance });
        var diff = dot.Output.ToArray().Zip(dist.Output.ToArray(), (a, b) => Math.Abs(a - b)).Max();
        Assert.That(diff, Is.GreaterThan(100 * IdentityCheck.SameInFloat32));
    }
}
