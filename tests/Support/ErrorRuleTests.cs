using NUnit.Framework;
using NUnit.Framework.Internal;

namespace RouteKit.Tests.Support;

/// <summary>The 2x rule itself: it must fail garbage, including when the naive float32 reference overflows.</summary>
public sealed class ErrorRuleTests
{
    private static readonly double[] Reference = [1.0, -2.0, 3.0, 4.0];

    [Test]
    public void PassesWithinTwiceTheNaiveError()
    {
        float[] naive = [1.0f + 1e-3f, -2f, 3f, 4f];
        float[] actual = [1.0f + 1.9e-3f, -2f, 3f, 4f];
        var verdict = ErrorRule.Check2x("x", actual, Reference, naive);
        Assert.That(verdict.Passed, Is.True, verdict.Message);
    }

    [Test]
    public void FailsBeyondTwiceTheNaiveError()
    {
        float[] naive = [1.0f + 1e-3f, -2f, 3f, 4f];
        float[] actual = [1.0f, -2f, 3f, 4f + 3e-3f];
        var verdict = ErrorRule.Check2x("x", actual, Reference, naive);
        Assert.That(verdict.Passed, Is.False);
        Assert.That(verdict.Message, Does.Contain("worst at [3]"));
    }

    [TestCase(float.PositiveInfinity)]
    [TestCase(float.NegativeInfinity)]
    [TestCase(float.NaN)]
    public void FailsGarbageWhenTheNaiveReferenceIsNotFinite(float bad)
    {
        // Without the guard the naive error is infinite, the bound is infinite and garbage passes.
        float[] naive = [1f, -2f, bad, 4f];
        float[] garbage = [1234f, float.NaN, -7f, 0f];
        var verdict = ErrorRule.Check2x("x", garbage, Reference, naive);
        Assert.That(verdict.Passed, Is.False, "garbage passed because the naive reference was not finite");
        Assert.That(verdict.Message, Does.Contain("naive float32 reference is unusable").And.Contain("[2]"));
        // The guard does not depend on the backend being wrong: a perfect answer with an unusable naive reference
        // still fails, because the check it would pass is meaningless.
        float[] perfect = Array.ConvertAll(Reference, v => (float)v);
        Assert.That(ErrorRule.Check2x("x", perfect, Reference, naive).Passed, Is.False);
    }

    [Test]
    public void ExpectedOverflowRequiresTheInfinityAndStillGuardsTheRest()
    {
        double[] reference = [1.0, 5.7e38, -1.0];    // 5.7e38 > float.MaxValue: float32's answer is +inf
        float[] naive = [1f + 1e-6f, float.PositiveInfinity, -1f];
        float[] good = [1f, float.PositiveInfinity, -1f];
        Assert.That(ErrorRule.Check2x("x", good, reference, naive, expectOverflow: true).Passed, Is.True);
        Assert.That(ErrorRule.Check2x("x", good, reference, naive).Passed, Is.False, "overflow must be declared");
        float[] nanInstead = [1f, float.NaN, -1f];
        Assert.That(ErrorRule.Check2x("x", nanInstead, reference, naive, expectOverflow: true).Passed, Is.False);
        float[] naiveOverflowsEarly = [float.PositiveInfinity, float.PositiveInfinity, -1f];
        Assert.That(ErrorRule.Check2x("x", good, reference, naiveOverflowsEarly, expectOverflow: true).Passed, Is.False,
            "a naive overflow where float64 fits float32 is still unusable");
    }

    [Test]
    public void NonFiniteReferencesMustBeMatchedExactly()
    {
        double[] reference = [double.NegativeInfinity, 0.5];
        float[] naive = [float.NegativeInfinity, 0.5f];
        Assert.That(ErrorRule.Check2x("lse", [float.NegativeInfinity, 0.5f], reference, naive).Passed, Is.True);
        Assert.That(ErrorRule.Check2x("lse", [-1e30f, 0.5f], reference, naive).Passed, Is.False);
    }

    [Test]
    public void RelativeToleranceAgainstFloat64()
    {
        double[] reference = [5.656854249492381e30, 0.0, double.NegativeInfinity, 4e38];
        float[] close = [5.656855e30f, 0f, float.NegativeInfinity, float.PositiveInfinity];
        Assert.That(ErrorRule.CheckRelative("l2", close, reference, 1e-6).Passed, Is.True);
        float[] far = [5.7e30f, 0f, float.NegativeInfinity, float.PositiveInfinity];
        Assert.That(ErrorRule.CheckRelative("l2", far, reference, 1e-6).Passed, Is.False);
        float[] nan = [float.NaN, 0f, float.NegativeInfinity, float.PositiveInfinity];
        Assert.That(ErrorRule.CheckRelative("l2", nan, reference, 1e-6).Passed, Is.False);
        float[] inf = [float.PositiveInfinity, 0f, float.NegativeInfinity, float.PositiveInfinity];
        Assert.That(ErrorRule.CheckRelative("l2", inf, reference, 1e-6).Passed, Is.False);
    }

    [Test]
    public void AssertTwoTimesThrowsOnAnUnusableNaiveReference()
    {
        // The wrapper must turn the verdict into a failed assertion; run it in an isolated context so the expected
        // failure is not recorded on this test's own result.
        AssertionException? thrown = null;
        using (new TestExecutionContext.IsolatedContext())
        {
            try
            {
                ErrorRule.Assert2x("x", [1234f, 0f, 0f, 0f], Reference, [1f, -2f, float.PositiveInfinity, 4f]);
            }
            catch (AssertionException e)
            {
                thrown = e;
            }
        }
        Assert.That(thrown, Is.Not.Null, "Assert2x passed garbage");
        Assert.That(thrown!.Message, Does.Contain("unusable"));
    }

    [Test]
    public void ResamplingTakesTheWorstNaiveRunAndOnlyWhenNeeded()
    {
        float[] lucky = [1f, -2f, 3f, 4f];                // the plain naive run happens to be exact
        float[] actual = [1f + 2e-4f, -2f, 3f, 4f];       // off by rounding noise
        float[] unlucky = [1f, -2f, 3f - 3e-4f, 4f];      // a perturbed naive run shows that noise is float32's
        var calls = 0;
        IEnumerable<float[]> Resample() { calls++; return [lucky, unlucky]; }

        Assert.That(ErrorRule.Check2x("x", actual, Reference, lucky, 1e-6).Passed, Is.False, "against the lucky run alone");
        var verdict = ErrorRule.Check2xResampled("x", actual, Reference, lucky, 1e-6, Resample);
        Assert.That(verdict.Passed, Is.True, verdict.Message);
        Assert.That(calls, Is.EqualTo(1));
        Assert.That(ErrorRule.Check2xResampled("x", Array.ConvertAll(Reference, r => (float)r), Reference, lucky, 1e-6, Resample).Passed,
            Is.True);
        Assert.That(calls, Is.EqualTo(1), "a check that passes against the first run must not resample");
    }

    [Test]
    public void ResamplingStillFailsADefect()
    {
        float[] naive = [1f, -2f, 3f, 4f + 1e-6f];
        float[] perturbed = [1f, -2f, 3f + 2e-6f, 4f];
        float[] defect = [1f, -2f + 1e-3f, 3f, 4f];
        var verdict = ErrorRule.Check2xResampled("x", defect, Reference, naive, 1e-6, () => [perturbed]);
        Assert.That(verdict.Passed, Is.False);
        Assert.That(verdict.Message, Does.Contain("worst of 2 naive float32 runs").And.Contain("worst at [1]"));
    }

    [Test]
    public void WorstNaiveCountsANonFiniteRunAsWorst()
    {
        float[] fine = [1f, -2f, 3f, 4f];
        float[] overflowed = [1f, float.PositiveInfinity, 3f, 4f];
        Assert.That(ErrorRule.WorstNaive(Reference, fine, overflowed), Is.SameAs(overflowed));
        Assert.That(ErrorRule.Check2xResampled("x", fine, Reference, [1f, -2f, 3f, 4f + 1e-3f], 1e-6, () => [overflowed]).Passed,
            Is.True, "a first run that passes never reaches the overflowed one");
    }
}
