using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The reference's own gradients against central finite differences in float64 (DESIGN.md section 7), for every
/// input of the selective scan and the linear recurrence, on a loss <c>sum(out * w)</c> with seeded weights w.
/// </summary>
[TestFixture]
public sealed class ScanReferenceTests
{
    private const double Step = 1e-6;

    private static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(new ScanCase(2, 4, 9, 3, G: 2, D: true, Z: true, DeltaBias: true, Softplus: true, InitialState: true))
            .SetName("Reference FD all options grouped");
        yield return new TestCaseData(new ScanCase(1, 3, 7, 2)).SetName("Reference FD no options");
        yield return new TestCaseData(new ScanCase(1, 2, 5, 4, Z: true, MinDecay: 1e-3, MaxDecay: 5)).SetName("Reference FD wide decays");
    }

    private static double Loss(SelectiveScanParams p, SelectiveScanReferenceInputs<double> x, double[] w)
    {
        var o = ScanReference.Forward(p, x).Output;
        var sum = 0.0;
        for (var i = 0; i < o.Length; i++) sum += o[i] * w[i];
        return sum;
    }

    private static void CheckArray(string name, double[] values, double[] gradient, Func<double> loss)
    {
        Assert.That(gradient, Has.Length.EqualTo(values.Length), $"{name}: gradient length");
        for (var i = 0; i < values.Length; i++)
        {
            var saved = values[i];
            values[i] = saved + Step;
            var up = loss();
            values[i] = saved - Step;
            var down = loss();
            values[i] = saved;
            var numeric = (up - down) / (2 * Step);
            Assert.That(gradient[i], Is.EqualTo(numeric).Within(1e-6 * Math.Max(1, Math.Abs(numeric))),
                $"{name}[{i}]: analytic {gradient[i]}, central difference {numeric}");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void SelectiveScanGradientsMatchFiniteDifferences(ScanCase c)
    {
        var (x32, w32) = c.Data();
        var x = ScanCase.Widen(x32);
        var w = TestData.ToDouble(w32);
        var p = c.Params;
        var g = ScanReference.Backward(p, x, w);
        double Loss() => ScanReferenceTests.Loss(p, x, w);
        CheckArray("dU", x.U, g.DU, Loss);
        CheckArray("dDelta", x.Delta, g.DDelta, Loss);
        CheckArray("dA", x.A, g.DA, Loss);
        CheckArray("dB", x.B, g.DB, Loss);
        CheckArray("dC", x.C, g.DC, Loss);
        if (x.D is not null) CheckArray("dD", x.D, g.DD, Loss);
        if (x.Z is not null) CheckArray("dZ", x.Z, g.DZ, Loss);
        if (x.DeltaBias is not null) CheckArray("dDeltaBias", x.DeltaBias, g.DDeltaBias, Loss);
        if (x.InitialState is not null) CheckArray("dInitialState", x.InitialState, g.DInitialState, Loss);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void RecurrenceGradientsMatchFiniteDifferences(bool initial)
    {
        const int batch = 2, channels = 3, steps = 11;
        var n = batch * channels * steps;
        var a = TestData.ToDouble(TestData.Normal(n, 21, 0.7f));
        var x = TestData.ToDouble(TestData.Normal(n, 22));
        var h0 = initial ? TestData.ToDouble(TestData.Normal(batch * channels, 23)) : null;
        var w = TestData.ToDouble(TestData.Normal(n, 24));
        var (dA, dX, dH0) = ScanReference.RecurrenceBackward(batch, channels, steps, a, x, h0, w);
        double Loss()
        {
            var h = ScanReference.RecurrenceForward(batch, channels, steps, a, x, h0);
            var sum = 0.0;
            for (var i = 0; i < h.Length; i++) sum += h[i] * w[i];
            return sum;
        }
        CheckArray("dA", a, dA, Loss);
        CheckArray("dX", x, dX, Loss);
        if (h0 is not null) CheckArray("dH0", h0, dH0, Loss);
        else Assert.That(dH0, Is.Empty);
    }

    /// <summary>The reference in float64 stays finite with A dt from -1e-4 to -50.</summary>
    [Test]
    public void ExtremeDecaysAreFinite()
    {
        var c = new ScanCase(1, 2, 300, 8, Z: true, D: true, MinDecay: 1e-4, MaxDecay: 50);
        var (x32, w32) = c.Data();
        var x = ScanCase.Widen(x32);
        var f = ScanReference.Forward(c.Params, x);
        var g = ScanReference.Backward(c.Params, x, TestData.ToDouble(w32));
        Assert.That(f.Output.All(double.IsFinite) && f.LastState.All(double.IsFinite));
        Assert.That(g.DA.All(double.IsFinite) && g.DDelta.All(double.IsFinite) && g.DU.All(double.IsFinite));
    }
}
