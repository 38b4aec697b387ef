using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// The float64 references' gradients against central finite differences of their own forwards (DESIGN.md section 7):
/// for L = sum(dy * y), dL/dθ ~ (L(θ + h) - L(θ - h)) / 2h, error O(h^2) + O(eps64 / h), about 1e-9 at h = 1e-5.
/// </summary>
[TestFixture]
public sealed class TrainingReferenceTests
{

    private static double Dot(double[] a, double[] b)
    {
        var s = 0.0;
        for (var i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }



    [TestCase(1, 1)]
    [TestCase(3, 7)]
    [TestCase(5, 33)]
    public void LayerNormGradientsMatchFiniteDifferences(int rows, int channels)
    {
        var x = TrainingCheck.D(TrainingCheck.Normal(rows * channels, 1, 1f, 2f));
        var w = TrainingCheck.D(TrainingCheck.Normal(channels, 2, 0.5f, 1f));
        var b = TrainingCheck.D(TrainingCheck.Normal(channels, 3));
        var dy = TrainingCheck.D(TrainingCheck.Normal(rows * channels, 4));
        const double eps = 1e-5;
        double Loss() => Dot(dy, LayerNormReference.Forward(x, w, b, rows, channels, eps).Y);
        var f = LayerNormReference.Forward(x, w, b, rows, channels, eps);
        var (dx, dw, db) = LayerNormReference.Backward(dy, x, w, f.Mean, f.Rstd, rows, channels);
        FiniteDifference.AssertClose("dx", dx, FiniteDifference.Numeric(x, Loss));
        FiniteDifference.AssertClose("dweight", dw, FiniteDifference.Numeric(w, Loss));
        FiniteDifference.AssertClose("dbias", db, FiniteDifference.Numeric(b, Loss));
    }

    [TestCase(1, 1)]
    [TestCase(3, 7)]
    [TestCase(5, 33)]
    public void RmsNormGradientsMatchFiniteDifferences(int rows, int channels)
    {
        var x = TrainingCheck.D(TrainingCheck.Normal(rows * channels, 5, 1f, 0.5f));
        var w = TrainingCheck.D(TrainingCheck.Normal(channels, 6, 0.5f, 1f));
        var dy = TrainingCheck.D(TrainingCheck.Normal(rows * channels, 7));
        const double eps = 1e-5;
        double Loss() => Dot(dy, RmsNormReference.Forward(x, w, rows, channels, eps).Y);
        var f = RmsNormReference.Forward(x, w, rows, channels, eps);
        var (dx, dw) = RmsNormReference.Backward(dy, x, w, f.Rstd, rows, channels);
        FiniteDifference.AssertClose("dx", dx, FiniteDifference.Numeric(x, Loss));
        FiniteDifference.AssertClose("dweight", dw, FiniteDifference.Numeric(w, Loss));
    }

    /// <summary>Elementwise derivatives at points across every regime; ReLU away from its kink (0 is checked below).</summary>
    [Test]
    public void ActivationDerivativesMatchFiniteDifferences()
    {
        double[] x = [-30, -8, -5, -3, -1.5, -0.7, -0.1, -1e-3, 1e-3, 0.1, 0.7, 1.5, 3, 5, 8, 30];
        var ones = Enumerable.Repeat(1.0, x.Length).ToArray();
        foreach (var (name, forward, backward) in new (string, Func<double[], double[]>, Func<double[], double[], double[]>)[]
        {
            ("Gelu.Tanh", v => ActivationReference.GeluForward(v, GeluForm.Tanh), (g, v) => ActivationReference.GeluBackward(g, v, GeluForm.Tanh)),
            ("Gelu.Erf", v => ActivationReference.GeluForward(v, GeluForm.Erf), (g, v) => ActivationReference.GeluBackward(g, v, GeluForm.Erf)),
            ("Silu", ActivationReference.SiluForward, ActivationReference.SiluBackward),
            ("Relu", ActivationReference.ReluForward, ActivationReference.ReluBackward),
        })
        {
            var analytic = backward(ones, x);
            var numeric = x.Select(v => (forward([v + FiniteDifference.H])[0] - forward([v - FiniteDifference.H])[0]) / (2 * FiniteDifference.H)).ToArray();
            FiniteDifference.AssertClose(name, analytic, numeric);
        }
    }

    /// <summary>The two GELU forms are two approximations of x Phi(x): within 1e-3 of each other, equal at 0 and in the tails.</summary>
    [Test]
    public void GeluFormsAgreeAndReluKinkIsZero()
    {
        double[] x = [-10, -3, -1, 0, 1, 3, 10];
        var tanh = ActivationReference.GeluForward(x, GeluForm.Tanh);
        var erf = ActivationReference.GeluForward(x, GeluForm.Erf);
        for (var i = 0; i < x.Length; i++) Assert.That(tanh[i], Is.EqualTo(erf[i]).Within(1e-3), $"x = {x[i]}");
        Assert.That(erf[4], Is.EqualTo(0.8413447460685429).Within(1e-15), "gelu(1) = Phi(1)");
        Assert.That(ActivationReference.ReluBackward([3.0], [0.0])[0], Is.Zero);
    }
}
