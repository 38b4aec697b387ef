using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// GraphAttention refuses bad input before any kernel runs: invalid CSR arrays and duplicate edges at graph creation,
/// bad shapes, a graph of another device, non-finite inputs and forged statistics at the call, with outputs untouched.
/// </summary>
public sealed class GraphAttentionValidationTests
{
    private Device device = null!;

    [OneTimeSetUp]
    public void CreateDevice() => device = Device.Create(Backend.Managed);

    [OneTimeTearDown]
    public void DisposeDevice() => device?.Dispose();

    [TestCase(new[] { 1, 2, 3 }, new[] { 0, 1, 1 }, "rowPtr[0] = 1")]
    [TestCase(new[] { 0, 2, 1, 3 }, new[] { 0, 1, 2 }, "not monotone")]
    [TestCase(new[] { 0, 1, 2 }, new[] { 0, 1, 1 }, "wanted E = colIdx.Length = 3")]
    [TestCase(new[] { 0, 1, 2 }, new[] { 0, 2 }, "colIdx[1] = 2 (row 1) is outside [0, Nn = 2)")]
    [TestCase(new[] { 0, 1, 2 }, new[] { -1, 0 }, "colIdx[0] = -1")]
    [TestCase(new[] { 0, 3, 3 }, new[] { 1, 0, 1 }, "colIdx[2] = 1 repeats an edge of row 0")]
    public void InvalidCsrIsRefusedAtCreation(int[] rowPtr, int[] colIdx, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => CsrGraph.Create(device, rowPtr, colIdx));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void TheSameNeighbourInTwoRowsIsNotADuplicate()
    {
        using var g = CsrGraph.Create(device, [0, 2, 4], [0, 1, 1, 0]);
        Assert.That((g.Nodes, g.Edges, g.MaxDegree), Is.EqualTo((2, 4, 2)));
    }

    /// <summary>The awkward graph (Nn = 9) with H = 2, D = 8 inputs, disposed together.</summary>
    private sealed class Problem : IDisposable
    {
        public Problem(Device device)
        {
            var c = Graphs.AwkwardCase(2, 8);
            var (q, k, v, _) = c.Inputs();
            (G, Q, K, V) = (CsrGraph.Create(device, c.RowPtr, c.ColIdx), device.FromArray(q, 2, 9, 8), device.FromArray(k, 2, 9, 8),
                device.FromArray(v, 2, 9, 8));
        }

        public CsrGraph G { get; }
        public Tensor Q { get; }
        public Tensor K { get; }
        public Tensor V { get; }

        public void Dispose()
        {
            G.Dispose();
            Q.Dispose();
            K.Dispose();
            V.Dispose();
        }
    }

    private static void AssertUntouched(GraphAttentionOutput outputs)
    {
        Assert.That(outputs.Output.ToArray(), Is.All.EqualTo(7f), "Output was written");
        Assert.That(outputs.Lse.ToArray(), Is.All.EqualTo(7f), "Lse was written");
        Assert.That(outputs.Stats.ToArray(), Is.All.EqualTo(7f), "Stats was written");
    }

    private GraphAttentionOutput Sentinels(int h, int nodes, int d)
    {
        var o = GraphAttentionOutput.Allocate(device, h, nodes, d);
        o.Output.CopyFrom(Enumerable.Repeat(7f, h * nodes * d).ToArray());
        o.Lse.CopyFrom(Enumerable.Repeat(7f, h * nodes).ToArray());
        o.Stats.CopyFrom(Enumerable.Repeat(7f, h * nodes * 2).ToArray());
        return o;
    }

    [Test]
    public void BadShapesAreRefusedWithOutputsUntouched()
    {
        using var problem = new Problem(device);
        var (g, q, k, v) = (problem.G, problem.Q, problem.K, problem.V);
        using var outputs = Sentinels(2, 9, 8);
        using var wrongNodes = device.Zeros(2, 8, 8);
        using var rank4 = device.Zeros(1, 2, 9, 8);
        using var wrongD = device.Zeros(2, 9, 4);
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, wrongNodes, wrongNodes, wrongNodes, null, outputs))!.Message,
            Does.Contain("Nn = 9"));
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, rank4, rank4, rank4, null, outputs))!.Message,
            Does.Contain("rank 3"));
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, q, wrongD, v, null, outputs))!.ParamName, Is.EqualTo("k"));
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, q, k, v,
            new GraphAttentionOptions { BrakeSlopes = [1f] }, outputs))!.Message, Does.Contain("BrakeSlopes"));
        using var wrongOut = GraphAttentionOutput.Allocate(device, 2, 9, 4);
        Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, q, k, v, null, wrongOut));
        AssertUntouched(outputs);
    }

    [Test]
    public void NonFiniteInputsAndOtherDevicesAreRefused()
    {
        using var problem = new Problem(device);
        var (g, q, k, v) = (problem.G, problem.Q, problem.K, problem.V);
        using var outputs = Sentinels(2, 9, 8);
        var bad = v.ToArray();
        bad[5] = float.NaN;
        using var vNaN = device.FromArray(bad, 2, 9, 8);
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(g, q, k, vNaN, null, outputs))!.ParamName, Is.EqualTo("v"));
        AssertUntouched(outputs);
        using var other = Device.Create(Backend.Managed);
        var c = Graphs.AwkwardCase(2, 8);
        using var foreign = CsrGraph.Create(other, c.RowPtr, c.ColIdx);
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Forward(foreign, q, k, v, null, outputs))!.ParamName, Is.EqualTo("graph"));
        AssertUntouched(outputs);
    }

    [Test]
    public void ForgedStatisticsAreRefusedBeforeTheBackward()
    {
        using var problem = new Problem(device);
        var (g, q, k, v) = (problem.G, problem.Q, problem.K, problem.V);
        using var fwd = GraphAttention.Forward(g, q, k, v);
        using var dOut = device.FromArray(q.ToArray(), 2, 9, 8);
        var stats = fwd.Stats.ToArray();
        stats[0] = 0f; // node 0 is isolated: its statistics must be (-inf, 0)
        fwd.Stats.CopyFrom(stats);
        using var grads = new GraphAttentionGradients(device.Zeros(2, 9, 8), device.Zeros(2, 9, 8), device.Zeros(2, 9, 8));
        grads.DQ.CopyFrom(Enumerable.Repeat(7f, 2 * 9 * 8).ToArray());
        Assert.That(Assert.Throws<ArgumentException>(() => GraphAttention.Backward(g, dOut, q, k, v, fwd, null, grads))!.Message,
            Does.Contain("node 0"));
        Assert.That(grads.DQ.ToArray(), Is.All.EqualTo(7f));
    }
}
