using NUnit.Framework;
using RouteKit.Engine.Models;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Engine;

/// <summary>
/// The models of `routekit ood` at a tiny size, on Managed and on the ILGPU CPU simulator (the GPU kernels) (widths 5-7-6-3 and 5-4-5, batch 4): ReluMlp's float32 forward against a
/// float64 reference written here, its backward (through CrossEntropy and through SquaredError) against central finite
/// differences of that reference, and SquaredError's gradient and loss against their formulas. Tolerance of a gradient
/// entry: |g - fd| &lt;= 1e-3 max|g| + 1e-6 (float32 rounding; the reference's own error is ~1e-10).
/// </summary>
public abstract class OodModelTests : BackendFixture
{
    private const int Batch = 4;

    // Loss of the float64 reference MLP: ReLU after every layer but the last; CrossEntropy (mean over rows) against the
    // labels, or the mean squared error against target.
    private static double ReferenceLoss(int[] widths, double[] p, float[] x, int[]? labels, float[]? target, double[]? outputs = null)
    {
        var a = Array.ConvertAll(x, v => (double)v);
        var offset = 0;
        for (var l = 0; l + 1 < widths.Length; l++)
        {
            int fanIn = widths[l], fanOut = widths[l + 1];
            var z = new double[Batch * fanOut];
            for (var r = 0; r < Batch; r++)
                for (var o = 0; o < fanOut; o++)
                {
                    var s = p[offset + fanOut * fanIn + o];
                    for (var i = 0; i < fanIn; i++) s += a[r * fanIn + i] * p[offset + o * fanIn + i];
                    z[r * fanOut + o] = l + 2 < widths.Length ? Math.Max(s, 0) : s;
                }
            offset += fanOut * fanIn + fanOut;
            a = z;
        }
        if (outputs is not null) a.CopyTo(outputs, 0);
        var classes = widths[^1];
        var loss = 0.0;
        for (var r = 0; r < Batch; r++)
        {
            var row = a.AsSpan(r * classes, classes).ToArray();
            if (labels is not null)
            {
                var m = row.Max();
                loss += m + Math.Log(row.Sum(v => Math.Exp(v - m))) - row[labels[r]];
            }
            else
                for (var k = 0; k < classes; k++) loss += (row[k] - target![r * classes + k]) * (row[k] - target[r * classes + k]);
        }
        return labels is not null ? loss / Batch : loss / (Batch * classes);
    }

    private (ReluMlp Model, double[] P, float[] X) Build(int[] widths, int seed)
    {
        var model = new ReluMlp(Device, widths, Batch, seed);
        var rng = new SplitMix64((ulong)seed);
        // Biases away from 0 and weights perturbed, so every path carries a gradient.
        var p = model.SaveParameters().Select(v => v + 0.1 * rng.NextNormal()).ToArray();
        model.LoadParameters(Array.ConvertAll(p, v => (float)v));
        p = Array.ConvertAll(model.SaveParameters(), v => (double)v);
        var x = Enumerable.Range(0, Batch * widths[0]).Select(_ => (float)rng.NextNormal()).ToArray();
        model.Input.CopyFrom(x);
        return (model, p, x);
    }

    private static void AssertGradient(double[] analytic, double[] numeric)
    {
        var scale = analytic.Max(Math.Abs);
        Assert.That(scale, Is.GreaterThan(1e-3), "the gradient is not trivially zero");
        for (var i = 0; i < analytic.Length; i++)
            Assert.That(analytic[i], Is.EqualTo(numeric[i]).Within(1e-3 * scale + 1e-6), $"parameter {i}");
    }

    [Test]
    public void ClassifierForwardAndBackwardMatchTheFloat64Reference()
    {
        int[] widths = [5, 7, 6, 3];
        var (model, p, _) = Build(widths, 21);
        using var _model = model;
        var x = model.Input.ToArray();
        int[] labels = [0, 2, 1, 2];
        using var targets = Device.FromArray(Array.ConvertAll(labels, v => (float)v), Batch);
        model.Forward();
        using var ce = CrossEntropy.Forward(model.Output, targets);
        model.Backward(ce.DLogits);
        var reference = new double[Batch * 3];
        var loss = ReferenceLoss(widths, p, x, labels, null, reference);
        var logits = model.Output.ToArray();
        for (var i = 0; i < logits.Length; i++) Assert.That(logits[i], Is.EqualTo(reference[i]).Within(1e-5 * (1 + Math.Abs(reference[i]))), $"logit {i}");
        Assert.That(ce.Mean.ToArray()[0], Is.EqualTo(loss).Within(1e-5 * loss));
        var numeric = FiniteDifference.Numeric(p, () => ReferenceLoss(widths, p, x, labels, null));
        AssertGradient(Array.ConvertAll(model.Parameters.Gradients.ToArray(), v => (double)v), numeric);
    }

    [Test]
    public void AutoencoderGradientThroughSquaredErrorMatchesTheReference()
    {
        int[] widths = [5, 4, 5];
        var (model, p, x) = Build(widths, 33);
        using var _model = model;
        using var loss = new SquaredError(model.Output);
        loss.SetTarget(x);
        model.Forward();
        var y = model.Output.ToArray();
        var dy = loss.Backward().ToArray();
        for (var i = 0; i < y.Length; i++)
            Assert.That(dy[i], Is.EqualTo(2.0 * (y[i] - x[i]) / y.Length).Within(1e-6 * Math.Abs(2.0 * (y[i] - x[i]) / y.Length) + 1e-9), $"dL/dy {i}");
        var mse = y.Select((v, i) => (double)(v - x[i]) * (v - x[i])).Average();
        Assert.That(loss.Loss(), Is.EqualTo(mse).Within(1e-5 * mse), "the loss read from the gradient's row norms");
        Assert.That(loss.Loss(), Is.EqualTo(ReferenceLoss(widths, p, x, null, x)).Within(1e-5 * mse), "the float64 reference loss");
        model.Backward(loss.Gradient);
        var numeric = FiniteDifference.Numeric(p, () => ReferenceLoss(widths, p, x, null, x));
        AssertGradient(Array.ConvertAll(model.Parameters.Gradients.ToArray(), v => (double)v), numeric);
    }

    [Test]
    public void BadArgumentsAreRefused()
    {
        Assert.Throws<ArgumentException>(() => new ReluMlp(Device, [5], Batch, 1));
        Assert.Throws<ArgumentException>(() => new ReluMlp(Device, [5, 0, 3], Batch, 1));
        Assert.Throws<ArgumentException>(() => new ReluMlp(Device, [5, 3], 0, 1));
        using var model = new ReluMlp(Device, [5, 3], Batch, 1);
        Assert.Throws<ArgumentException>(() => model.LoadParameters(new float[model.Parameters.Count - 1]));
        using var loss = new SquaredError(model.Output);
        Assert.Throws<ArgumentException>(() => loss.SetTarget(new float[7]));
        using var flat = Device.Zeros(6);
        Assert.Throws<ArgumentException>(() => new SquaredError(flat));
    }
}

/// <summary>The OOD models on the Managed backend.</summary>
public sealed class OodModelManagedTests : OodModelTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
}

/// <summary>The OOD models on the ILGPU CPU simulator, which runs the GPU kernels.</summary>
public sealed class OodModelIlgpuCpuTests : OodModelTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
}
