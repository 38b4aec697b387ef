using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The attention suite every backend runs (ILGPU's pattern: one abstract fixture, one subclass per backend). Each
/// case is checked against the float64 reference with the 2x rule, forward (O, Lse, diagnostics) and backward.
/// </summary>
public abstract class AttentionBackendTests : BackendFixture
{

    /// <summary>Naive float32 runs on ulp-perturbed inputs behind a failed check in the randomised mode.</summary>
    private const int PerturbedNaiveRuns = 4;

    /// <summary>
    /// Runs forward and backward on the backend and asserts the 2x rule on every output; with
    /// <paramref name="scaledFloor"/> (the randomised suites) each output's 1e-6 floor is carried to its scale
    /// (<see cref="ErrorRule.ScaledFloor"/>), and an output that fails against the plain naive float32 run is checked
    /// again against the worst of that run and <see cref="PerturbedNaiveRuns"/> runs on inputs moved by an ulp
    /// (<see cref="ErrorRule.WorstNaive"/>), computed only then, since the float32 reference costs O(N M D) each.
    /// </summary>
    protected void CheckAgainstReference(AttentionCase c, bool backward = true, int seed = 1, bool scaledFloor = false)
    {
        var (q, k, v, dOut) = c.Inputs(seed);
        var (f64, f32, g64, g32) = c.References(seed);
        List<(Reference.AttentionReferenceOutput<float> F, Reference.AttentionReferenceGradients<float> G)>? perturbed = null;

        List<(Reference.AttentionReferenceOutput<float> F, Reference.AttentionReferenceGradients<float> G)> Perturbed() =>
            perturbed ??= Enumerable.Range(1, PerturbedNaiveRuns).Select(r =>
            {
                var s = seed * 7919 + r;
                float[] pq = TestData.PerturbUlp(q, s), pk = TestData.PerturbUlp(k, s + 1), pv = TestData.PerturbUlp(v, s + 2);
                return (Reference.AttentionReference.Forward(c.Params, pq, pk, pv),
                    Reference.AttentionReference.Backward(c.Params, TestData.PerturbUlp(dOut, s + 3), pq, pk, pv));
            }).ToList();

        void Assert2x(string what, float[] actual, double[] reference, float[] naive,
            Func<Reference.AttentionReferenceOutput<float>, Reference.AttentionReferenceGradients<float>, float[]> pick)
        {
            var verdict = ErrorRule.Check2xResampled(what, actual, reference, naive,
                scaledFloor ? ErrorRule.ScaledFloor(reference) : 1e-6, scaledFloor ? () => Perturbed().Select(x => pick(x.F, x.G)) : null);
            if (!verdict.Passed) Assert.Fail(verdict.Message);
        }

        var options = c.Options;
        using var tq = Device.FromArray(q, c.B, c.H, c.N, c.D);
        using var tk = Device.FromArray(k, c.B, c.Hkv, c.M, c.D);
        using var tv = Device.FromArray(v, c.B, c.Hkv, c.M, c.D);
        using var fwd = Attention.Forward(tq, tk, tv, options);
        Assert2x($"{c} O", fwd.Output.ToArray(), f64.Output, f32.Output, (f, _) => f.Output);
        Assert2x($"{c} Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse, (f, _) => f.Lse);
        if (c.Diagnostics)
        {
            // Entropy is a difference of two O(|z|) terms, so its float32 error scales with the logits' magnitude.
            Assert2x($"{c} Entropy", fwd.Diagnostics!.Entropy.ToArray(), f64.Entropy, f32.Entropy, (f, _) => f.Entropy);
            Assert2x($"{c} SinkMass", fwd.Diagnostics.SinkMass.ToArray(), f64.SinkMass, f32.SinkMass, (f, _) => f.SinkMass);
            Assert2x($"{c} MaxProb", fwd.Diagnostics.MaxProb.ToArray(), f64.MaxProb, f32.MaxProb, (f, _) => f.MaxProb);
        }
        if (!backward) return;
        using var tdo = Device.FromArray(dOut, c.B, c.H, c.N, c.D);
        using var grads = Attention.Backward(tdo, tq, tk, tv, fwd, options);
        Assert2x($"{c} dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ, (_, g) => g.DQ);
        Assert2x($"{c} dK", grads.DK.ToArray(), g64.DK, g32.DK, (_, g) => g.DK);
        Assert2x($"{c} dV", grads.DV.ToArray(), g64.DV, g32.DV, (_, g) => g.DV);
    }

    /// <summary>Runs the backward <paramref name="repeats"/> times and asserts bitwise-equal gradients.</summary>
    protected void CheckDeterministic(AttentionCase c, int repeats)
    {
        var (q, k, v, dOut) = c.Inputs();
        var options = c.Options;
        using var tq = Device.FromArray(q, c.B, c.H, c.N, c.D);
        using var tk = Device.FromArray(k, c.B, c.Hkv, c.M, c.D);
        using var tv = Device.FromArray(v, c.B, c.Hkv, c.M, c.D);
        using var tdo = Device.FromArray(dOut, c.B, c.H, c.N, c.D);
        using var fwd = Attention.Forward(tq, tk, tv, options);
        using var grads = Attention.Backward(tdo, tq, tk, tv, fwd, options);
        var (dq0, dk0, dv0) = (grads.DQ.ToArray(), grads.DK.ToArray(), grads.DV.ToArray());
        for (var r = 1; r < repeats; r++)
        {
            Attention.Backward(tdo, tq, tk, tv, fwd, options, grads);
            Assert.That(grads.DQ.ToArray(), Is.EqualTo(dq0).AsCollection, $"dQ differs on repeat {r}");
            Assert.That(grads.DK.ToArray(), Is.EqualTo(dk0).AsCollection, $"dK differs on repeat {r}");
            Assert.That(grads.DV.ToArray(), Is.EqualTo(dv0).AsCollection, $"dV differs on repeat {r}");
        }
    }
}
