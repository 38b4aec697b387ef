using NUnit.Framework;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;

namespace RouteKit.Tests.Models;

/// <summary>
/// The graph-attention network (issue 13's graph experiment): its loss against the float64 reference, every parameter's
/// gradient against central finite differences of the reference loss, on a small irregular graph with an isolated-ish
/// hub, unlabelled nodes, and each score variant with and without the brake.
/// </summary>
public sealed class GraphNetworkTests
{
    // 9 nodes: a hub (0) linked to everyone, a chain, a self-loop-only node (8), a node without self-loop (5).
    private static readonly int[][] Adjacency =
    [
        [0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2], [0, 1, 2, 3], [0, 2, 3, 4], [0, 3, 4], [0, 4, 6], [0, 5, 6, 7], [0, 6, 7], [8],
    ];

    private static CsrArrays Graph()
    {
        var rowPtr = new int[Adjacency.Length + 1];
        for (var i = 0; i < Adjacency.Length; i++) rowPtr[i + 1] = rowPtr[i] + Adjacency[i].Length;
        return new CsrArrays(rowPtr, [.. Adjacency.SelectMany(a => a)]);
    }

    [TestCase(Score.Dot, false, 0f)]
    [TestCase(Score.Distance, false, 1.5f)]
    [TestCase(Score.Dot, true, 0.7f)]
    public void GradientsMatchFiniteDifferencesOfTheReference(Score score, bool normalizeKeys, float brake)
    {
        var csr = Graph();
        var n = csr.Nodes;
        var config = new GraphNetworkConfig { Features = 5, Classes = 3, Width = 8, Heads = 2, Layers = 2, Score = score, NormalizeKeys = normalizeKeys, Brake = brake, Seed = 5 };
        using var device = Device.Create(Backend.Managed);
        using var graph = CsrGraph.Create(device, csr.RowPtr, csr.ColIdx);
        using var model = new GraphNetwork(device, graph, config);
        var rng = new Random(11);
        var features = Enumerable.Range(0, n * config.Features).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        int[] targets = [0, 1, -100, 2, 0, -100, 1, 2, 0];
        model.Features.CopyFrom(features);
        model.Targets.CopyFrom(targets.Select(t => (float)t).ToArray());
        // Move the parameters off their initial values (unit LayerNorm weights, zero biases) so every path carries gradient.
        var ps = model.Parameters;
        var theta = ps.Values.ToArray().Select((x, i) => (double)(x + 0.1f * MathF.Sin(1.7f * i + 0.3f))).ToArray();
        ps.Values.CopyFrom(theta.Select(x => (float)x).ToArray());
        theta = ps.Values.ToArray().Select(x => (double)x).ToArray();
        model.Forward();
        model.Backward();
        var loss = model.Loss.ToArray()[0];
        var grads = ps.Gradients.ToArray();
        var x64 = features.Select(f => (double)f).ToArray();
        double F(double[] p) => GraphNetworkReference.Loss(config, csr.RowPtr, csr.ColIdx, ps.Infos, p, x64, targets);
        var reference = F(theta);
        Assert.That(Math.Abs(loss - reference), Is.LessThanOrEqualTo(1e-5 * Math.Abs(reference) + 1e-6), $"loss {loss} vs reference {reference}");

        foreach (var info in ps.Infos)
        {
            var g = grads.AsSpan(info.Offset, info.Length).ToArray();
            var maxG = 0.0;
            for (var i = 0; i < info.Length; i++) maxG = Math.Max(maxG, Math.Abs(g[i]));
            var picks = Enumerable.Range(0, info.Length).OrderByDescending(i => Math.Abs(g[i])).Take(3)
                .Concat(Enumerable.Range(0, 3).Select(j => (j * 7919 + info.Offset) % info.Length)).Distinct();
            foreach (var i in picks)
            {
                var work = (double[])theta.Clone();
                var k = info.Offset + i;
                const double h = 1e-5;
                work[k] = theta[k] + h;
                var plus = F(work);
                work[k] = theta[k] - h;
                var fd = (plus - F(work)) / (2 * h);
                Assert.That(g[i], Is.EqualTo(fd).Within(2e-3 * maxG + 2e-6), $"{info.Name}[{i}]: engine {g[i]}, finite difference {fd}");
            }
        }
    }

    [Test]
    public void BadConfigurationsAreRefused()
    {
        Assert.That(new GraphNetworkConfig { Width = 10, Heads = 4 }.Validate(), Does.Contain("multiple"));
        Assert.That(new GraphNetworkConfig { Brake = -1 }.Validate(), Does.Contain("--brake"));
        Assert.That(new GraphNetworkConfig { Layers = 0 }.Validate(), Does.Contain("--layers"));
        using var device = Device.Create(Backend.Managed);
        var csr = Graph();
        using var graph = CsrGraph.Create(device, csr.RowPtr, csr.ColIdx);
        Assert.That(() => new GraphNetwork(device, graph, new GraphNetworkConfig { Width = 10, Heads = 4 }), Throws.ArgumentException);
    }
}
