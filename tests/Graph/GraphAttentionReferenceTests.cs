using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The graph reference itself: its gradients against central finite differences in float64, and the definitions of
/// the edge cases (isolated node, degree 1, self mass) written out by hand.
/// </summary>
public sealed class GraphAttentionReferenceTests
{
    [TestCase(Score.Dot, false, false)]
    [TestCase(Score.Dot, true, true)]
    [TestCase(Score.Distance, false, true)]
    [TestCase(Score.Distance, true, false)]
    public void GradientsMatchFiniteDifferences(Score score, bool normalize, bool brake)
    {
        var c = Graphs.AwkwardCase(2, 5, score, normalize, brake);
        var p = c.Params;
        var (q, k, v, dOut) = c.Inputs(3);
        var (qd, kd, vd, dd) = (TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v), TestData.ToDouble(dOut));
        double Loss()
        {
            var o = GraphAttentionReference.Forward(p, c.RowPtr, c.ColIdx, qd, kd, vd).Output;
            var sum = 0.0;
            for (var x = 0; x < o.Length; x++) sum += dd[x] * o[x];
            return sum;
        }
        var g = GraphAttentionReference.Backward(p, c.RowPtr, c.ColIdx, dd, qd, kd, vd);
        FiniteDifference.AssertClose("dQ", g.DQ, FiniteDifference.Numeric(qd, Loss));
        FiniteDifference.AssertClose("dK", g.DK, FiniteDifference.Numeric(kd, Loss));
        FiniteDifference.AssertClose("dV", g.DV, FiniteDifference.Numeric(vd, Loss));
    }

    [Test]
    public void EdgeCasesFollowTheirDefinitions()
    {
        var c = Graphs.AwkwardCase(1, 4, brake: true);
        var (q, k, v, _) = c.Inputs();
        var f = GraphAttentionReference.Forward(c.Params, c.RowPtr, c.ColIdx, TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v));
        // Node 0 has no neighbours: O = 0, Lse = -inf, every diagnostic 0.
        Assert.That(f.Output.Take(4), Is.All.EqualTo(0.0));
        Assert.That(double.IsNegativeInfinity(f.Lse[0]));
        Assert.That(new[] { f.NormalizedEntropy[0], f.MaxProb[0], f.SelfMass[0] }, Is.All.EqualTo(0.0));
        // Node 2 (only itself) and node 3 (only node 5): degree 1, all mass on one neighbour, normalised entropy 0.
        Assert.That(f.NormalizedEntropy[2], Is.EqualTo(0.0));
        Assert.That(f.MaxProb[3], Is.EqualTo(1.0).Within(1e-12));
        Assert.That(f.SelfMass[2], Is.EqualTo(1.0).Within(1e-12));
        Assert.That(f.SelfMass[3], Is.EqualTo(0.0));
        Assert.That(f.Output.Skip(3 * 4).Take(4), Is.EqualTo(v.Skip(5 * 4).Take(4).Select(x => (double)x)).AsCollection.Within(1e-12));
        // Node 1 sees every node: its normalised entropy is in (0, 1].
        Assert.That(f.NormalizedEntropy[1], Is.GreaterThan(0.0).And.LessThanOrEqualTo(1.0 + 1e-12));
    }
}
