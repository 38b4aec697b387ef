using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The selective-scan and linear-recurrence suite every backend runs (one abstract fixture, one subclass per
/// backend). Each case is checked against the float64 reference with the 2x rule, forward and every gradient.
/// </summary>
public abstract class ScanBackendTests : BackendFixture
{

    /// <summary>The case's inputs as tensors on the device under test (dispose with <see cref="DisposeInputs"/>).</summary>
    protected SelectiveScanInputs Upload(ScanCase c, SelectiveScanReferenceInputs<float> x) => new()
    {
        U = Device.FromArray(x.U, c.B, c.Dc, c.L),
        Delta = Device.FromArray(x.Delta, c.B, c.Dc, c.L),
        A = Device.FromArray(x.A, c.Dc, c.Nst),
        B = Device.FromArray(x.B, c.ProjectionShape),
        C = Device.FromArray(x.C, c.ProjectionShape),
        D = x.D is null ? null : Device.FromArray(x.D, c.Dc),
        Z = x.Z is null ? null : Device.FromArray(x.Z, c.B, c.Dc, c.L),
        DeltaBias = x.DeltaBias is null ? null : Device.FromArray(x.DeltaBias, c.Dc),
        InitialState = x.InitialState is null ? null : Device.FromArray(x.InitialState, c.B, c.Dc, c.Nst),
    };

    /// <summary>Disposes every tensor of <paramref name="inputs"/>.</summary>
    protected static void DisposeInputs(SelectiveScanInputs inputs)
    {
        foreach (var (t, _) in inputs.Present()) t.Dispose();
    }

    /// <summary>Naive float32 runs on ulp-perturbed inputs behind a failed check in the randomised mode.</summary>
    private const int PerturbedNaiveRuns = 4;

    /// <summary>
    /// Runs forward and backward on the backend and asserts the 2x rule on every output and gradient; with
    /// <paramref name="scaledFloor"/> each output's 1e-6 floor is carried to its scale (<see cref="ErrorRule.ScaledFloor"/>).
    /// </summary>
    protected void CheckSelectiveScan(ScanCase c, bool deterministic = true, bool requireFinite = false, int seed = 1,
        bool scaledFloor = false)
    {
        var (x, dOut) = c.Data(seed);
        var p = c.Params;
        List<(SelectiveScanReferenceOutput<float> F, SelectiveScanReferenceGradients<float> G)>? perturbed = null;

        List<(SelectiveScanReferenceOutput<float> F, SelectiveScanReferenceGradients<float> G)> Perturbed() =>
            perturbed ??= Enumerable.Range(1, PerturbedNaiveRuns).Select(r =>
            {
                var s = seed * 7919 + r;
                var px = x with
                {
                    U = TestData.PerturbUlp(x.U, s), Delta = TestData.PerturbUlp(x.Delta, s + 1), A = TestData.PerturbUlp(x.A, s + 2),
                    B = TestData.PerturbUlp(x.B, s + 3), C = TestData.PerturbUlp(x.C, s + 4), D = TestData.PerturbUlpOrNull(x.D, s + 5),
                    Z = TestData.PerturbUlpOrNull(x.Z, s + 6), DeltaBias = TestData.PerturbUlpOrNull(x.DeltaBias, s + 7),
                    InitialState = TestData.PerturbUlpOrNull(x.InitialState, s + 8),
                };
                return (ScanReference.Forward(p, px), ScanReference.Backward(p, px, TestData.PerturbUlp(dOut, s + 9)));
            }).ToList();

        // As the attention suite (AttentionBackendTests.CheckAgainstReference): in the randomised mode an output that
        // fails against the plain naive float32 run is checked again against the worst of it and a few runs on inputs
        // moved by an ulp (ErrorRule.WorstNaive), computed only then.
        void Check(string what, float[] actual, double[] reference, float[] naive,
            Func<SelectiveScanReferenceOutput<float>, SelectiveScanReferenceGradients<float>, float[]> pick, double? floor = null)
        {
            var verdict = ErrorRule.Check2xResampled(what, actual, reference, naive,
                floor ?? (scaledFloor ? ErrorRule.ScaledFloor(reference) : 1e-6), scaledFloor ? () => Perturbed().Select(v => pick(v.F, v.G)) : null);
            if (!verdict.Passed) Assert.Fail(verdict.Message);
        }

        var x64 = ScanCase.Widen(x);
        var f64 = ScanReference.Forward(p, x64);
        var f32 = ScanReference.Forward(p, x);
        var inputs = Upload(c, x);
        try
        {
            var options = c.Options(deterministic);
            using var fwd = SelectiveScan.Forward(inputs, options);
            Check($"{c} out", fwd.Output.ToArray(), f64.Output, f32.Output, (f, _) => f.Output);
            Check($"{c} lastState", fwd.LastState.ToArray(), f64.LastState, f32.LastState, (f, _) => f.LastState);

            var g64 = ScanReference.Backward(p, x64, TestData.ToDouble(dOut));
            var g32 = ScanReference.Backward(p, x, dOut);
            using var tdo = Device.FromArray(dOut, c.B, c.Dc, c.L);
            using var grads = SelectiveScan.Backward(tdo, inputs, fwd, options);
            if (requireFinite)
                foreach (var (t, name) in grads.All.Append((fwd.Output, "out")).Append((fwd.LastState, "lastState")))
                    if (t is not null) Assert.That(t.ToArray().All(float.IsFinite), $"{c}: {name} has a non-finite entry");
            Check($"{c} dU", grads.DU.ToArray(), g64.DU, g32.DU, (_, g) => g.DU);
            Check($"{c} dDelta", grads.DDelta.ToArray(), g64.DDelta, g32.DDelta, (_, g) => g.DDelta);
            Check($"{c} dA", grads.DA.ToArray(), g64.DA, g32.DA, (_, g) => g.DA);
            Check($"{c} dB", grads.DB.ToArray(), g64.DB, g32.DB, (_, g) => g.DB);
            Check($"{c} dC", grads.DC.ToArray(), g64.DC, g32.DC, (_, g) => g.DC);
            Assert.That(grads.DD is null, Is.EqualTo(!c.D), "dD present exactly when D is");
            Assert.That(grads.DZ is null, Is.EqualTo(!c.Z), "dz present exactly when z is");
            Assert.That(grads.DDeltaBias is null, Is.EqualTo(!c.DeltaBias), "dDeltaBias present exactly when deltaBias is");
            Assert.That(grads.DInitialState is null, Is.EqualTo(!c.InitialState), "dInitialState present exactly when h0 is");
            if (c.D)
            {
                // dD_d = sum over b, l of g u with g = dOut silu(z): a reduction like dDeltaBias (below), floored by its summands' scale.
                var x64In = x64;
                var terms = new double[x64In.U.Length];
                for (var i = 0; i < terms.Length; i++)
                {
                    double g = dOut[i];
                    if (x64In.Z is { } zz) g *= zz[i] / (1 + Math.Exp(-zz[i]));
                    terms[i] = g * x64In.U[i];
                }
                var floor = scaledFloor ? 1e-6 * Math.Max(1, SummandScale(terms, c.B, c.Dc, c.L)) : 1e-6;
                Check($"{c} dD", grads.DD!.ToArray(), g64.DD!, g32.DD!, (_, g) => g.DD!, floor);
            }
            if (c.Z) Check($"{c} dZ", grads.DZ!.ToArray(), g64.DZ!, g32.DZ!, (_, g) => g.DZ!);
            if (c.DeltaBias)
            {
                // dDeltaBias_d = sum over b, l of dDelta: a reduction whose float32 error is ~eps sum |dDelta|, not eps
                // |dDeltaBias|. With extreme decays the terms cancel (sum |dDelta| 20-1000 for results of 2-20), and
                // the naive float32 sum, in one order, can land closer by luck (2026-12-02: backend 2.6e-6, naive 4.6e-8
                // at eps sum|dDelta| = 1.2e-6). The scaled floor therefore takes the summands' scale.
                var floor = scaledFloor ? 1e-6 * Math.Max(1, SummandScale(g64.DDelta, c.B, c.Dc, c.L)) : 1e-6;
                Check($"{c} dDeltaBias", grads.DDeltaBias!.ToArray(), g64.DDeltaBias!, g32.DDeltaBias!, (_, g) => g.DDeltaBias!, floor);
            }
            if (c.InitialState) Check($"{c} dH0", grads.DInitialState!.ToArray(), g64.DInitialState!, g32.DInitialState!, (_, g) => g.DInitialState!);
        }
        finally
        {
            DisposeInputs(inputs);
        }
    }

    // max over channels d of sum over b, l of |x[b, d, l]| for x [B, Dc, L].
    private static double SummandScale(double[] x, int batch, int channels, int steps)
    {
        var max = 0.0;
        for (var d = 0; d < channels; d++)
        {
            var sum = 0.0;
            for (var b = 0; b < batch; b++)
                for (var l = 0; l < steps; l++) sum += Math.Abs(x[((long)b * channels + d) * steps + l]);
            max = Math.Max(max, sum);
        }
        return max;
    }

    /// <summary>Extreme decays: every output and gradient finite, and the 2x rule still holds.</summary>
    protected void CheckExtremeDecays(ScanCase c) => CheckSelectiveScan(c, deterministic: true, requireFinite: true);

    /// <summary>Runs the backward <paramref name="repeats"/> times and asserts bitwise-equal gradients.</summary>
    protected void CheckDeterministic(ScanCase c, int repeats)
    {
        var (x, dOut) = c.Data();
        var inputs = Upload(c, x);
        try
        {
            var options = c.Options(deterministic: true);
            using var fwd = SelectiveScan.Forward(inputs, options);
            using var tdo = Device.FromArray(dOut, c.B, c.Dc, c.L);
            using var grads = SelectiveScan.Backward(tdo, inputs, fwd, options);
            var first = grads.All.Where(g => g.Tensor is not null).Select(g => (g.Name, Values: g.Tensor!.ToArray())).ToArray();
            for (var r = 1; r < repeats; r++)
            {
                SelectiveScan.Backward(tdo, inputs, fwd, options, grads);
                foreach (var (name, values) in first)
                {
                    var again = grads.All.Single(g => g.Name == name).Tensor!.ToArray();
                    Assert.That(again, Is.EqualTo(values).AsCollection, $"{name} differs on repeat {r}");
                }
            }
        }
        finally
        {
            DisposeInputs(inputs);
        }
    }

    /// <summary>The linear recurrence, forward and backward, against the float64 reference (2x rule).</summary>
    protected void CheckRecurrence(int batch, int channels, int steps, bool initial, float decayLow = 0.5f, float decayHigh = 1f)
    {
        var n = batch * channels * steps;
        var rng = new Random(steps + channels);
        var a = new float[n];
        for (var i = 0; i < n; i++) a[i] = decayLow + (decayHigh - decayLow) * (float)rng.NextDouble();
        var x = TestData.Normal(n, 11);
        var h0 = initial ? TestData.Normal(batch * channels, 12) : null;
        var dH = TestData.Normal(n, 13);
        CheckRecurrence($"recurrence [{batch}, {channels}, {steps}]{(initial ? " h0" : "")}", batch, channels, steps, a, x, h0, dH);
    }

    /// <summary>
    /// The linear recurrence on given a, x <c>[B, C, T]</c>, h0 <c>[B, C]</c> and dH, forward and backward (2x rule;
    /// with <paramref name="scaledFloor"/> each output's 1e-6 floor is carried to its scale, <see cref="ErrorRule.ScaledFloor"/>).
    /// </summary>
    protected void CheckRecurrence(string what, int batch, int channels, int steps, float[] a, float[] x, float[]? h0, float[] dH,
        bool scaledFloor = false)
    {
        void Assert2x(string name, float[] actual, double[] reference, float[] naive) =>
            ErrorRule.Assert2x(name, actual, reference, naive, scaledFloor ? ErrorRule.ScaledFloor(reference) : 1e-6);

        var initial = h0 is not null;
        var h64 = ScanReference.RecurrenceForward(batch, channels, steps, TestData.ToDouble(a), TestData.ToDouble(x),
            h0 is null ? null : TestData.ToDouble(h0));
        var h32 = ScanReference.RecurrenceForward(batch, channels, steps, a, x, h0);
        var g64 = ScanReference.RecurrenceBackward(batch, channels, steps, TestData.ToDouble(a), TestData.ToDouble(x),
            h0 is null ? null : TestData.ToDouble(h0), TestData.ToDouble(dH));
        var g32 = ScanReference.RecurrenceBackward(batch, channels, steps, a, x, h0, dH);

        using var ta = Device.FromArray(a, batch, channels, steps);
        using var tx = Device.FromArray(x, batch, channels, steps);
        using var th0 = h0 is null ? null : Device.FromArray(h0, batch, channels);
        using var tdH = Device.FromArray(dH, batch, channels, steps);
        using var fwd = LinearRecurrence.Forward(ta, tx, th0);
        Assert2x($"{what} h", fwd.H.ToArray(), h64, h32);
        var last64 = new double[batch * channels];
        var last32 = new float[batch * channels];
        for (var r = 0; r < last64.Length; r++)
        {
            last64[r] = h64[(long)r * steps + steps - 1];
            last32[r] = h32[(long)r * steps + steps - 1];
        }
        Assert2x($"{what} last", fwd.Last.ToArray(), last64, last32);
        using var grads = LinearRecurrence.Backward(tdH, ta, tx, th0, fwd);
        Assert2x($"{what} dA", grads.DA.ToArray(), g64.DA, g32.DA);
        Assert2x($"{what} dX", grads.DX.ToArray(), g64.DX, g32.DX);
        Assert.That(grads.DH0 is null, Is.EqualTo(!initial), "dH0 present exactly when h0 is");
        if (initial) Assert2x($"{what} dH0", grads.DH0!.ToArray(), g64.DH0, g32.DH0);
    }

    /// <summary>
    /// The shapes of the issue's grid: every L crossed with every Nst, each with its own seeded draw of grouped or
    /// ungrouped B/C and of each optional input (so no two options always travel together); then one case with none
    /// and one with all of them at L = 97, <paramref name="fullCaseStates"/> states and <paramref name="fullCaseChannels"/>
    /// channels (dc when 0).
    /// </summary>
    protected static IEnumerable<ScanCase> Grid(int[] lengths, int[] states, int dc, int fullCaseStates = 16, int fullCaseChannels = 0)
    {
        var draw = new Random(2026);
        bool Flip() => draw.Next(2) == 1;
        foreach (var l in lengths)
        foreach (var nst in states)
            yield return new ScanCase(2, dc, l, nst, G: Flip() ? 2 : 0,
                D: Flip(), Z: Flip(), DeltaBias: Flip(), Softplus: Flip(), InitialState: Flip());
        var full = fullCaseChannels > 0 ? fullCaseChannels : dc;
        yield return new ScanCase(1, full, 97, fullCaseStates);
        yield return new ScanCase(2, full, 97, fullCaseStates, G: 2, D: true, Z: true, DeltaBias: true, Softplus: true, InitialState: true);
    }
}
