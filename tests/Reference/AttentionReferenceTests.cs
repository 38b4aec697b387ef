using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The reference checked against itself: gradients by central finite differences in float64, and the maths identities.</summary>
public sealed class AttentionReferenceTests
{
    private static readonly AttentionCase[] GradientCases =
    [
        new(1, 1, 1, 3, 4, 5),
        new(1, 2, 1, 4, 6, 3, Score.Distance),
        new(1, 2, 2, 5, 5, 4, Score.Dot, NormalizeKeys: true),
        new(1, 4, 2, 4, 7, 3, Score.Distance, NormalizeKeys: true, Causal: true, Window: 2, Brake: true),
        new(2, 2, 1, 6, 3, 2, Score.Distance, Causal: true, Brake: true), // N > M: the first rows see no key at all
    ];

    /// <summary>L = sum(dO * O); its analytic gradients must match central differences (step 1e-6, float64).</summary>
    [TestCaseSource(nameof(GradientCases))]
    public void BackwardMatchesFiniteDifferences(AttentionCase c)
    {
        var p = c.Params;
        var (qf, kf, vf, dof) = c.Inputs(seed: 7);
        var (q, k, v, dOut) = (TestData.ToDouble(qf), TestData.ToDouble(kf), TestData.ToDouble(vf), TestData.ToDouble(dof));
        var g = AttentionReference.Backward(p, dOut, q, k, v);
        double Loss()
        {
            var o = AttentionReference.Forward(p, q, k, v).Output;
            var sum = 0.0;
            for (var i = 0; i < o.Length; i++) sum += o[i] * dOut[i];
            return sum;
        }
        void Check(string name, double[] x, double[] grad)
        {
            const double step = 1e-6;
            for (var i = 0; i < x.Length; i++)
            {
                var keep = x[i];
                x[i] = keep + step;
                var up = Loss();
                x[i] = keep - step;
                var down = Loss();
                x[i] = keep;
                var fd = (up - down) / (2 * step);
                Assert.That(grad[i], Is.EqualTo(fd).Within(1e-7 + 1e-6 * Math.Abs(fd)), $"{c}: d{name}[{i}]");
            }
        }
        Check("q", q, g.DQ);
        Check("k", k, g.DK);
        Check("v", v, g.DV);
    }

    /// <summary>Distance scores are Dot scores plus the key bias -(s/2)|k'_j|^2, entry by entry.</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void DistanceScoresAreDotPlusKeyBias(bool normalize)
    {
        var dot = new AttentionCase(1, 2, 1, 9, 11, 7, Score.Dot, normalize, Causal: true, Brake: true);
        var dist = dot with { Score = Score.Distance };
        var (qf, kf, _, _) = dot.Inputs();
        var (q, k) = (TestData.ToDouble(qf), TestData.ToDouble(kf));
        var (keys, _) = AttentionReference.ScoredKeys(dot.Params, k);
        for (var h = 0; h < 2; h++)
        {
            var zd = AttentionReference.Scores(dot.Params, q, keys, 0, h);
            var ze = AttentionReference.Scores(dist.Params, q, keys, 0, h);
            for (var i = 0; i < dot.N; i++)
            for (var j = 0; j < dot.M; j++)
            {
                if (double.IsNegativeInfinity(zd[i, j]))
                {
                    Assert.That(ze[i, j], Is.EqualTo(double.NegativeInfinity));
                    continue;
                }
                var sq = 0.0;
                for (var d = 0; d < dot.D; d++) sq += keys[j * dot.D + d] * keys[j * dot.D + d];
                Assert.That(ze[i, j] - zd[i, j], Is.EqualTo(-0.5 * dot.Params.Scale * sq).Within(1e-12 * (1 + sq)));
            }
        }
    }

    /// <summary>The reframing identity: Distance attention equals literal Boltzmann weights over |q - k|^2, to 1e-12 in float64.</summary>
    [TestCase(false, false)]
    [TestCase(true, false)]
    [TestCase(false, true)]
    [TestCase(true, true)]
    public void DistanceEqualsBoltzmannWeights(bool normalize, bool masked)
    {
        var c = new AttentionCase(2, 4, 2, 13, 19, 24, Score.Distance, normalize, Causal: masked, Window: masked ? 5 : null, Brake: masked);
        var (qf, kf, vf, _) = c.Inputs();
        var (q, k, v) = (TestData.ToDouble(qf), TestData.ToDouble(kf), TestData.ToDouble(vf));
        var o = AttentionReference.Forward(c.Params, q, k, v).Output;
        var boltzmann = AttentionReference.Boltzmann(c.Params, q, k, v);
        var max = 0.0;
        for (var i = 0; i < o.Length; i++) max = Math.Max(max, Math.Abs(o[i] - boltzmann[i]));
        Assert.That(max, Is.LessThanOrEqualTo(1e-12));
    }

    /// <summary>With normalised keys the key bias is the same constant for every key, so Dot and Distance give the same P.</summary>
    [Test]
    public void NormalisedKeysMakeDotAndDistanceAgree()
    {
        var dot = new AttentionCase(1, 2, 2, 17, 23, 16, Score.Dot, NormalizeKeys: true, Causal: true, Brake: true);
        var (qf, kf, vf, _) = dot.Inputs();
        var (q, k, v) = (TestData.ToDouble(qf), TestData.ToDouble(kf), TestData.ToDouble(vf));
        var a = AttentionReference.Forward(dot.Params, q, k, v).Output;
        var b = AttentionReference.Forward((dot with { Score = Score.Distance }).Params, q, k, v).Output;
        for (var i = 0; i < a.Length; i++) Assert.That(b[i], Is.EqualTo(a[i]).Within(1e-12));
    }

    /// <summary>A row with every key masked: O = 0, Lse = -inf, diagnostics 0; its neighbours are unaffected.</summary>
    [Test]
    public void FullyMaskedRowsAreDefined()
    {
        var c = new AttentionCase(1, 1, 1, 5, 2, 3, Causal: true); // i' = i - 3: rows 0..2 see no key
        var (qf, kf, vf, _) = c.Inputs();
        var r = AttentionReference.Forward(c.Params, TestData.ToDouble(qf), TestData.ToDouble(kf), TestData.ToDouble(vf));
        for (var i = 0; i < 3; i++)
        {
            Assert.That(r.Lse[i], Is.EqualTo(double.NegativeInfinity));
            Assert.That(r.Output.AsSpan(i * 3, 3).ToArray(), Is.All.EqualTo(0.0));
            Assert.That((r.Entropy[i], r.SinkMass[i], r.MaxProb[i]), Is.EqualTo((0.0, 0.0, 0.0)));
        }
        Assert.That(double.IsFinite(r.Lse[3]) && double.IsFinite(r.Lse[4]), Is.True);
        Assert.That(r.MaxProb[3], Is.EqualTo(1.0).Within(1e-15), "row 3 sees exactly one key");
    }
}
