using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The depth-router checks the backend suites share: the 2x rule against the float64 reference, determinism.</summary>
public abstract class DepthRouterFixture : BackendFixture
{
    /// <summary>
    /// Forward (output, log-sum-exp from the saved statistics, diagnostics) and backward against the references. With
    /// <paramref name="reduction"/> the ILGPU launcher runs with that row reduction (the OpenCL path on the simulator).
    /// </summary>
    private protected void CheckAgainstReference(DepthCase c, int seed = 1, SegmentReduction? reduction = null)
    {
        var (q, k, v, dOut) = c.Inputs(seed);
        var (f64, f32, g64, g32) = c.References(seed);
        var p = c.Params;
        var options = c.Options;
        using var tq = Device.FromArray(q, p.QueryShape);
        using var tk = Device.FromArray(k, p.KeyShape);
        using var tv = Device.FromArray(v, p.KeyShape);
        using var tdo = Device.FromArray(dOut, p.QueryShape);
        using var fwd = DepthRouterOutput.Allocate(Device, c.Lq, c.T, c.H, c.D, c.Diagnostics);
        if (reduction is { } r) DepthRouterIlgpu.Forward(Device, p, tq, tk, tv, fwd.Output, fwd.Stats, fwd.Diagnostics, r);
        else DepthRouter.Forward(tq, tk, tv, options, fwd);
        ErrorRule.Assert2x($"{c} O", fwd.Output.ToArray(), f64.Output, f32.Output);
        var stats = fwd.Stats.ToArray();
        var lse = new float[stats.Length / 2];
        for (var i = 0; i < lse.Length; i++) lse[i] = (float)((double)stats[2 * i] + stats[2 * i + 1]);
        ErrorRule.Assert2x($"{c} Lse", lse, f64.Lse, f32.Lse, ErrorRule.ScaledFloor(f64.Lse));
        if (c.Diagnostics)
        {
            ErrorRule.Assert2x($"{c} NormalizedEntropy", fwd.Diagnostics!.NormalizedEntropy.ToArray(), f64.NormalizedEntropy, f32.NormalizedEntropy);
            ErrorRule.Assert2x($"{c} MaxProb", fwd.Diagnostics.MaxProb.ToArray(), f64.MaxProb, f32.MaxProb);
            ErrorRule.Assert2x($"{c} EmbeddingMass", fwd.Diagnostics.EmbeddingMass.ToArray(), f64.EmbeddingMass, f32.EmbeddingMass);
        }
        using var grads = new DepthRouterGradients(Device.Zeros(p.QueryShape), Device.Zeros(p.KeyShape), Device.Zeros(p.KeyShape));
        if (reduction is { } r2)
            DepthRouterIlgpu.Backward(Device, p, tdo, tq, tk, tv, fwd.Output, fwd.Stats, grads.DQ, grads.DK, grads.DV, r2);
        else DepthRouter.Backward(tdo, tq, tk, tv, fwd, options, grads);
        ErrorRule.Assert2x($"{c} dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ);
        ErrorRule.Assert2x($"{c} dK", grads.DK.ToArray(), g64.DK, g32.DK);
        ErrorRule.Assert2x($"{c} dV", grads.DV.ToArray(), g64.DV, g32.DV);
    }

    /// <summary>Runs the backward <paramref name="repeats"/> times and asserts bitwise-equal gradients.</summary>
    protected void CheckDeterministic(DepthCase c, int repeats)
    {
        var (q, k, v, dOut) = c.Inputs();
        var p = c.Params;
        using var tq = Device.FromArray(q, p.QueryShape);
        using var tk = Device.FromArray(k, p.KeyShape);
        using var tv = Device.FromArray(v, p.KeyShape);
        using var tdo = Device.FromArray(dOut, p.QueryShape);
        using var fwd = DepthRouter.Forward(tq, tk, tv, c.Options);
        using var grads = DepthRouter.Backward(tdo, tq, tk, tv, fwd, c.Options);
        var (dq0, dk0, dv0) = (grads.DQ.ToArray(), grads.DK.ToArray(), grads.DV.ToArray());
        for (var r = 1; r < repeats; r++)
        {
            DepthRouter.Backward(tdo, tq, tk, tv, fwd, c.Options, grads);
            Assert.That(grads.DQ.ToArray(), Is.EqualTo(dq0).AsCollection, $"dQ differs on repeat {r}");
            Assert.That(grads.DK.ToArray(), Is.EqualTo(dk0).AsCollection, $"dK differs on repeat {r}");
            Assert.That(grads.DV.ToArray(), Is.EqualTo(dv0).AsCollection, $"dV differs on repeat {r}");
        }
    }

}

/// <summary>
/// The depth-router suite every backend runs (one abstract fixture, one subclass per backend): bitwise-repeatable
/// backwards, the per-block call on a slice of a key stack, and bad input refused before any kernel with the outputs
/// untouched.
/// </summary>
public abstract class DepthRouterBackendTests : DepthRouterFixture
{
    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new DepthCase(3, 4, 3, 2, 16, Score.Distance, NormalizeKeys: true, Brake: 0.5f, PerHead: true), 3);

    /// <summary>The single-layer call a model makes per block: q [1, T, H, D] over a Slice of its key stack, no copy.</summary>
    [Test]
    public void SingleLayerCallOnAStackSliceMatchesTheFullCall()
    {
        var full = new DepthCase(6, 6, 5, 2, 16, Score.Distance, Brake: 0.3f);
        var (q, k, v, _) = full.Inputs();
        var p = full.Params;
        using var tq = Device.FromArray(q, p.QueryShape);
        using var stackK = Device.FromArray(k, p.KeyShape);
        using var stackV = Device.FromArray(v, p.KeyShape);
        using var all = DepthRouter.Forward(tq, stackK, stackV, full.Options);
        var expected = all.Output.ToArray();
        var layer = p.Columns * p.D;
        for (var l = 0; l < full.L; l++)
        {
            using var ql = tq.Slice(l * layer, 1, full.T, full.H, full.D);
            using var kl = stackK.Slice(0, l + 1, full.T, full.H, full.D);
            using var vl = stackV.Slice(0, l + 1, full.T, full.H, full.D);
            using var one = DepthRouter.Forward(ql, kl, vl, full.Options);
            var got = one.Output.ToArray();
            for (var e = 0; e < layer; e++)
                Assert.That(got[e], Is.EqualTo(expected[l * layer + e]).Within(1e-5f), $"layer {l} element {e}");
        }
    }

    private static IEnumerable<TestCaseData> BadInputs()
    {
        TestCaseData Case(string name, string param, int[] q, int[] k, DepthRouterOptions? o = null) =>
            new TestCaseData(q, k, o, param).SetName($"{{c}}.RefusesBadInput({name})");
        yield return Case("L over 64", "k", [1, 2, 1, 8], [65, 2, 1, 8]);
        yield return Case("Lq over L", "q", [3, 2, 1, 8], [2, 2, 1, 8]);
        yield return Case("token mismatch", "k", [1, 2, 1, 8], [2, 3, 1, 8]);
        yield return Case("rank 3 q", "q", [2, 1, 8], [2, 2, 1, 8]);
        yield return Case("negative brake", "options", [1, 2, 1, 8], [2, 2, 1, 8], new DepthRouterOptions { Brake = -0.1f });
        yield return Case("negative per-head brake", "options", [1, 2, 2, 8], [2, 2, 2, 8], new DepthRouterOptions { BrakeSlopes = [0.1f, -1f] });
        yield return Case("NaN brake", "options", [1, 2, 1, 8], [2, 2, 1, 8], new DepthRouterOptions { Brake = float.NaN });
        yield return Case("wrong brake count", "options", [1, 2, 2, 8], [2, 2, 2, 8], new DepthRouterOptions { BrakeSlopes = [0.1f] });
    }

    /// <summary>Shape and option errors name the argument, and the preallocated outputs keep their contents.</summary>
    [TestCaseSource(nameof(BadInputs))]
    public void RefusesBadInput(int[] qShape, int[] kShape, DepthRouterOptions? options, string param)
    {
        using var q = Device.FromArray(TestData.Normal(qShape.Aggregate(1, (a, b) => a * b), 1), qShape);
        using var k = Device.FromArray(TestData.Normal(kShape.Aggregate(1, (a, b) => a * b), 2), kShape);
        using var v = Device.FromArray(TestData.Normal(kShape.Aggregate(1, (a, b) => a * b), 3), kShape);
        using var outputs = SentinelOutputs(qShape.Length == 4 ? qShape : [1, 2, 1, 8]);
        var e = Assert.Throws<ArgumentException>(() => DepthRouter.Forward(q, k, v, options, outputs));
        Assert.That(e!.ParamName, Is.EqualTo(param), e.Message);
        AssertUntouched(outputs);
    }

    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void NonFiniteInputIsRefusedWithOutputsUntouched(float bad)
    {
        int[] shape = [2, 3, 2, 8];
        var data = TestData.Normal(2 * 3 * 2 * 8, 1);
        data[21] = bad;
        using var q = Device.FromArray(TestData.Normal(data.Length, 4), shape);
        using var k = Device.FromArray(data, shape);
        using var v = Device.FromArray(TestData.Normal(data.Length, 5), shape);
        using var outputs = SentinelOutputs(shape);
        var e = Assert.Throws<ArgumentException>(() => DepthRouter.Forward(q, k, v, new DepthRouterOptions { Diagnostics = true }, outputs));
        Assert.That(e!.ParamName, Is.EqualTo("k"));
        Assert.That(e.Message, Does.Contain("flat index 21"));
        AssertUntouched(outputs);

        using var fwd = DepthRouter.Forward(q, v, v);
        using var grads = new DepthRouterGradients(Device.FromArray(Filled(data.Length), shape), Device.FromArray(Filled(data.Length), shape),
            Device.FromArray(Filled(data.Length), shape));
        e = Assert.Throws<ArgumentException>(() => DepthRouter.Backward(q, q, k, v, fwd, null, grads));
        Assert.That(e!.ParamName, Is.EqualTo("k"));
        foreach (var g in new[] { grads.DQ, grads.DK, grads.DV })
            Assert.That(g.ToArray(), Is.All.EqualTo(Sentinel));
    }

    [Test]
    public void BackwardRefusesStatsTheForwardCannotHaveWritten()
    {
        int[] shape = [2, 3, 2, 8];
        using var q = Device.FromArray(TestData.Normal(96, 1), shape);
        using var k = Device.FromArray(TestData.Normal(96, 2), shape);
        using var fwd = DepthRouter.Forward(q, k, k);
        var stats = fwd.Stats.ToArray();
        stats[2 * 7 + 1] = float.NaN;
        fwd.Stats.CopyFrom(stats);
        using var grads = new DepthRouterGradients(Device.FromArray(Filled(96), shape), Device.FromArray(Filled(96), shape),
            Device.FromArray(Filled(96), shape));
        var e = Assert.Throws<ArgumentException>(() => DepthRouter.Backward(q, q, k, k, fwd, null, grads));
        Assert.That(e!.ParamName, Is.EqualTo("forward"));
        Assert.That(e.Message, Does.Contain("(layer 1, t 0, h 1)"));
        Assert.That(grads.DQ.ToArray(), Is.All.EqualTo(Sentinel));
    }

    /// <summary>Inside a training step the input and saved-statistics checks are deferred to the step's Finish.</summary>
    [Test]
    public void ChecksInsideATrainingStepAreDeferredToFinish()
    {
        int[] shape = [2, 3, 2, 8];
        var data = TestData.Normal(96, 1);
        using var q = Device.FromArray(data, shape);
        using var k = Device.FromArray(TestData.Normal(96, 2), shape);
        using var fwd = DepthRouter.Forward(q, k, k);
        using (var clean = Device.BeginStep())
        {
            DepthRouter.Forward(q, k, k, null, fwd);
            using var grads = DepthRouter.Backward(q, q, k, k, fwd);
            Assert.That(clean.TryFinish(out var failure), Is.True, failure);
        }
        data[40] = float.NaN;
        using var bad = Device.FromArray(data, shape);
        using var step = Device.BeginStep();
        Assert.DoesNotThrow(() => DepthRouter.Forward(bad, k, k, null, fwd));
        var ex = Assert.Throws<ArgumentException>(() => step.Finish())!;
        Assert.That(ex.Message, Does.Contain("flat index 40"));
    }

    private const float Sentinel = 12345f;

    private static float[] Filled(int n) => Enumerable.Repeat(Sentinel, n).ToArray();

    private DepthRouterOutput SentinelOutputs(int[] qShape)
    {
        int lq = qShape[0], t = qShape[1], h = qShape[2], d = qShape[3];
        return new DepthRouterOutput(Device.FromArray(Filled(lq * t * h * d), qShape), Device.FromArray(Filled(lq * t * h * 2), lq, t, h, 2),
            new DepthRouterDiagnostics(Device.FromArray(Filled(lq * t * h), lq, t, h), Device.FromArray(Filled(lq * t * h), lq, t, h),
                Device.FromArray(Filled(lq * t * h), lq, t, h)));
    }

    private static void AssertUntouched(DepthRouterOutput o)
    {
        foreach (var t in new[] { o.Output, o.Stats, o.Diagnostics!.NormalizedEntropy, o.Diagnostics.MaxProb, o.Diagnostics.EmbeddingMass })
            Assert.That(t.ToArray(), Is.All.EqualTo(Sentinel));
    }
}
