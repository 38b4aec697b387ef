using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The float64 reference's own checks: its gradients against central finite differences, and its definitions.</summary>
[TestFixture]
public sealed class DepthRouterReferenceTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        DepthCase[] cases =
        [
            new(3, 3, 2, 2, 5),
            new(2, 4, 2, 1, 6, Score.Distance, Brake: 0.4f),
            new(3, 4, 1, 2, 4, Score.Distance, NormalizeKeys: true, Brake: 0.3f, PerHead: true),
            new(1, 1, 2, 1, 3, NormalizeKeys: true),
        ];
        foreach (var c in cases) yield return new TestCaseData(c).SetName($"DepthRouterReference gradients {c}");
    }

    /// <summary>L = sum dO . O; dL/dq, dL/dk (through the normalisation), dL/dv against central differences.</summary>
    [TestCaseSource(nameof(Cases))]
    public void GradientsMatchFiniteDifferences(DepthCase c)
    {
        var p = c.Params;
        var (qf, kf, vf, df) = c.Inputs(3);
        var (q, k, v, dOut) = (TestData.ToDouble(qf), TestData.ToDouble(kf), TestData.ToDouble(vf), TestData.ToDouble(df));
        double Loss()
        {
            var o = DepthRouterReference.Forward(p, q, k, v).Output;
            var sum = 0.0;
            for (var i = 0; i < o.Length; i++) sum += dOut[i] * o[i];
            return sum;
        }
        var g = DepthRouterReference.Backward(p, dOut, q, k, v);
        FiniteDifference.AssertClose("dQ", g.DQ, FiniteDifference.Numeric(q, Loss));
        FiniteDifference.AssertClose("dK", g.DK, FiniteDifference.Numeric(k, Loss));
        FiniteDifference.AssertClose("dV", g.DV, FiniteDifference.Numeric(v, Loss));
    }

    /// <summary>
    /// Empty tensors cannot be made (Tensor refuses a zero dimension), so the shape check is tested where it stands:
    /// a zero dimension anywhere is refused naming the tensor.
    /// </summary>
    [TestCase(new[] { 0, 2, 1, 8 }, new[] { 2, 2, 1, 8 }, "q")]
    [TestCase(new[] { 1, 2, 1, 8 }, new[] { 0, 2, 1, 8 }, "k")]
    [TestCase(new[] { 1, 0, 1, 8 }, new[] { 2, 0, 1, 8 }, "q")]
    [TestCase(new[] { 1, 2, 1, 0 }, new[] { 2, 2, 1, 0 }, "q")]
    public void EmptyShapesAreRefused(int[] qShape, int[] kShape, string param)
    {
        var e = Assert.Throws<ArgumentException>(() => DepthRouterParams.Resolve(qShape, kShape, kShape, null));
        Assert.That(e!.ParamName, Is.EqualTo(param), e.Message);
    }

    /// <summary>Layer 0 reads only itself; a uniform mix has normalised entropy 1 and embedding mass 1/(l + 1).</summary>
    [Test]
    public void DiagnosticsAtTheirLimits()
    {
        var p = new DepthCase(4, 4, 1, 1, 4).Params;
        var q = new double[4 * 4]; // zero queries: every score 0, so P is uniform over the l + 1 layers
        var k = TestData.ToDouble(TestData.Normal(16, 1));
        var f = DepthRouterReference.Forward(p, q, k, k);
        for (var l = 0; l < 4; l++)
        {
            Assert.That(f.NormalizedEntropy[l], Is.EqualTo(l == 0 ? 0 : 1).Within(1e-12), $"entropy l {l}");
            Assert.That(f.EmbeddingMass[l], Is.EqualTo(1.0 / (l + 1)).Within(1e-12), $"embedding mass l {l}");
            Assert.That(f.MaxProb[l], Is.EqualTo(1.0 / (l + 1)).Within(1e-12), $"max prob l {l}");
        }
    }
}
