using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The GraphAttention suite every backend runs: each case against the float64 reference with the 2x rule, forward
/// (O, Lse, the three diagnostics) and backward (dQ, dK, dV), and the backward's bitwise repeatability.
/// </summary>
public abstract class GraphAttentionBackendTests : BackendFixture
{
    /// <summary>Runs forward and backward on the backend and asserts the 2x rule on every output.</summary>
    protected void CheckAgainstReference(GraphCase c, int edgeChunk = CsrGraph.DefaultEdgeChunk, int seed = 1, bool scaledFloor = false)
    {
        var (q, k, v, dOut) = c.Inputs(seed);
        var (f64, f32, g64, g32) = c.References(seed);

        void Assert2x(string what, float[] actual, double[] reference, float[] naive) =>
            ErrorRule.Assert2x($"{c} {what}", actual, reference, naive, scaledFloor ? ErrorRule.ScaledFloor(reference) : 1e-6);

        var options = c.Options;
        using var graph = CsrGraph.Create(Device, c.RowPtr, c.ColIdx, edgeChunk);
        using var tq = Device.FromArray(q, c.H, c.Nodes, c.D);
        using var tk = Device.FromArray(k, c.H, c.Nodes, c.D);
        using var tv = Device.FromArray(v, c.H, c.Nodes, c.D);
        using var fwd = GraphAttention.Forward(graph, tq, tk, tv, options);
        Assert2x("O", fwd.Output.ToArray(), f64.Output, f32.Output);
        Assert2x("Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse);
        if (c.Diagnostics)
        {
            Assert2x("NormalizedEntropy", fwd.Diagnostics!.NormalizedEntropy.ToArray(), f64.NormalizedEntropy, f32.NormalizedEntropy);
            Assert2x("MaxProb", fwd.Diagnostics.MaxProb.ToArray(), f64.MaxProb, f32.MaxProb);
            Assert2x("SelfMass", fwd.Diagnostics.SelfMass.ToArray(), f64.SelfMass, f32.SelfMass);
        }
        using var tdo = Device.FromArray(dOut, c.H, c.Nodes, c.D);
        using var grads = GraphAttention.Backward(graph, tdo, tq, tk, tv, fwd, options);
        Assert2x("dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ);
        Assert2x("dK", grads.DK.ToArray(), g64.DK, g32.DK);
        Assert2x("dV", grads.DV.ToArray(), g64.DV, g32.DV);
    }

    /// <summary>Runs the backward <paramref name="repeats"/> times and asserts bitwise-equal gradients (and forwards).</summary>
    protected void CheckDeterministic(GraphCase c, int repeats, int edgeChunk = CsrGraph.DefaultEdgeChunk)
    {
        var (q, k, v, dOut) = c.Inputs();
        var options = c.Options;
        using var graph = CsrGraph.Create(Device, c.RowPtr, c.ColIdx, edgeChunk);
        using var tq = Device.FromArray(q, c.H, c.Nodes, c.D);
        using var tk = Device.FromArray(k, c.H, c.Nodes, c.D);
        using var tv = Device.FromArray(v, c.H, c.Nodes, c.D);
        using var tdo = Device.FromArray(dOut, c.H, c.Nodes, c.D);
        using var fwd = GraphAttention.Forward(graph, tq, tk, tv, options);
        var o0 = fwd.Output.ToArray();
        using var grads = GraphAttention.Backward(graph, tdo, tq, tk, tv, fwd, options);
        var (dq0, dk0, dv0) = (grads.DQ.ToArray(), grads.DK.ToArray(), grads.DV.ToArray());
        for (var r = 1; r < repeats; r++)
        {
            GraphAttention.Forward(graph, tq, tk, tv, options, fwd);
            Assert.That(fwd.Output.ToArray(), Is.EqualTo(o0).AsCollection, $"O differs on repeat {r}");
            GraphAttention.Backward(graph, tdo, tq, tk, tv, fwd, options, grads);
            Assert.That(grads.DQ.ToArray(), Is.EqualTo(dq0).AsCollection, $"dQ differs on repeat {r}");
            Assert.That(grads.DK.ToArray(), Is.EqualTo(dk0).AsCollection, $"dK differs on repeat {r}");
            Assert.That(grads.DV.ToArray(), Is.EqualTo(dv0).AsCollection, $"dV differs on repeat {r}");
        }
    }
}
