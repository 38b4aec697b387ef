using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>Gelu (both forms), Silu and Relu on each backend against the float64 reference (2x rule), and their refusals.</summary>
public abstract class ActivationBackendTests : BackendFixture
{
    /// <summary>Element counts this backend runs (one below, at and above the vector widths, and larger).</summary>
    protected abstract int[] Lengths { get; }

    /// <summary>
    /// Normal values of scale 3 with, at the front, the points where the formulas change regime: 0, -0, tiny, the tails
    /// where exp under- or overflows, and extreme magnitudes up to 1e15 (beyond, the naive tanh form's x^3 overflows;
    /// <see cref="HugeInputsGiveTheLimits"/> covers those).
    /// </summary>
    private static float[] Inputs(int n, int seed)
    {
        var x = TrainingCheck.Normal(n, seed, 3f);
        float[] specials = [0f, -0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 4f, -4f, 6f, -6f, 10f, -10f, 20f, -20f, 50f, -50f,
            100f, -100f, 1e4f, -1e4f, 1e15f, -1e15f, 0.5f, -0.5f];
        specials.AsSpan(0, Math.Min(n, specials.Length)).CopyTo(x);
        return x;
    }

    private static IEnumerable<(string Name, Func<Tensor, Tensor> Forward, Func<Tensor, Tensor, Tensor> Backward,
        Func<double[], double[]> Ref64, Func<float[], float[]> Ref32,
        Func<double[], double[], double[]> Grad64, Func<float[], float[], float[]> Grad32)> Ops()
    {
        foreach (var form in new[] { GeluForm.Tanh, GeluForm.Erf })
            yield return ($"Gelu.{form}", x => Gelu.Forward(x, form), (dy, x) => Gelu.Backward(dy, x, form),
                x => ActivationReference.GeluForward(x, form), x => ActivationReference.GeluForward(x, form),
                (dy, x) => ActivationReference.GeluBackward(dy, x, form), (dy, x) => ActivationReference.GeluBackward(dy, x, form));
        yield return ("Silu", x => Silu.Forward(x), (dy, x) => Silu.Backward(dy, x),
            ActivationReference.SiluForward, ActivationReference.SiluForward,
            ActivationReference.SiluBackward, ActivationReference.SiluBackward);
        yield return ("Relu", x => Relu.Forward(x), (dy, x) => Relu.Backward(dy, x),
            ActivationReference.ReluForward, ActivationReference.ReluForward,
            ActivationReference.ReluBackward, ActivationReference.ReluBackward);
    }

    [Test]
    public void ForwardAndBackwardMatchReference()
    {
        foreach (var n in Lengths)
        {
            var x = Inputs(n, n);
            var dy = TrainingCheck.Normal(n, n + 1);
            using var tx = Device.FromArray(x, n);
            using var tdy = Device.FromArray(dy, n);
            foreach (var op in Ops())
            {
                using var y = op.Forward(tx);
                TrainingCheck.Assert2x($"{op.Name} y [{n}]", y.ToArray(), op.Ref64(TrainingCheck.D(x)), op.Ref32(x));
                using var dx = op.Backward(tdy, tx);
                TrainingCheck.Assert2x($"{op.Name} dx [{n}]", dx.ToArray(),
                    op.Grad64(TrainingCheck.D(dy), TrainingCheck.D(x)), op.Grad32(dy, x));
            }
        }
    }

    /// <summary>Inputs up to float's largest: y is x or 0 and y' is 1 or 0 to float accuracy, never NaN.</summary>
    [Test]
    public void HugeInputsGiveTheLimits()
    {
        float[] x = [1e16f, -1e16f, 1e20f, -1e20f, 1e30f, -1e30f, float.MaxValue, -float.MaxValue, 3f, -3f];
        var dy = Enumerable.Repeat(1f, x.Length).ToArray();
        using var tx = Device.FromArray(x, x.Length);
        using var tdy = Device.FromArray(dy, x.Length);
        foreach (var op in Ops())
        {
            using var y = op.Forward(tx);
            ErrorRule.AssertRelative($"{op.Name} y", y.ToArray(), op.Ref64(TrainingCheck.D(x)), 1e-6);
            using var dx = op.Backward(tdy, tx);
            ErrorRule.AssertRelative($"{op.Name} dx", dx.ToArray(), op.Grad64(TrainingCheck.D(dy), TrainingCheck.D(x)), 1e-6, 1e-7);
        }
    }

    [Test]
    public void ReluSubgradientIsZeroAtZero()
    {
        using var x = Device.FromArray([0f, -0f, 1e-45f, -1e-45f], 4);
        using var dy = Device.FromArray([5f, 5f, 5f, 5f], 4);
        using var y = Relu.Forward(x);
        using var dx = Relu.Backward(dy, x);
        Assert.That(y.ToArray(), Is.EqualTo(new[] { 0f, 0f, 1e-45f, 0f }));
        Assert.That(y.ToArray().Select(float.IsNegative), Is.All.False, "no -0 in y");
        Assert.That(dx.ToArray(), Is.EqualTo(new[] { 0f, 0f, 5f, 0f }));
    }

    [Test]
    public void PreallocatedOutputsAreFilled()
    {
        using var x = Device.FromArray([-1f, 0.5f, 2f], 1, 3);
        using var dy = Device.FromArray([1f, 1f, 1f], 1, 3);
        using var y = Device.Zeros(1, 3);
        using var dx = Device.Zeros(1, 3);
        Assert.That(Gelu.Forward(x, GeluForm.Erf, y), Is.SameAs(y));
        Assert.That(Gelu.Backward(dy, x, GeluForm.Erf, dx), Is.SameAs(dx));
        Assert.That(Silu.Forward(x, y), Is.SameAs(y));
        Assert.That(y.ToArray()[2], Is.EqualTo(2.0 / (1 + Math.Exp(-2))).Within(1e-6));
        Assert.That(Relu.Backward(dy, x, dx), Is.SameAs(dx));
        Assert.That(dx.ToArray(), Is.EqualTo(new[] { 0f, 1f, 1f }));
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        using var x = Device.FromArray([1f, -2f, 3f, 0f], 2, 2);
        using var y = Device.FromArray([7f, 7f, 7f, 7f], 2, 2);
        using var dx = Device.FromArray([7f, 7f, 7f, 7f], 2, 2);

        var e = Assert.Throws<ArgumentException>(() => Gelu.Forward(x, (GeluForm)7, y))!;
        Assert.That(e.ParamName, Is.EqualTo("form"));
        Assert.That(e.Message, Does.Contain("7").And.Contain("Tanh (0)").And.Contain("Erf (1)"));
        e = Assert.Throws<ArgumentException>(() => Gelu.Backward(x, x, (GeluForm)(-1), dx))!;
        Assert.That(e.ParamName, Is.EqualTo("form"));

        using var bad = Device.FromArray([1f, float.NaN, 3f, 0f], 2, 2);
        using var dy = Device.FromArray([1f, 1f, 1f, 1f], 2, 2);
        using var dyBad = Device.FromArray([1f, 1f, float.PositiveInfinity, 1f], 2, 2);
        using var flat = Device.Zeros(4);
        foreach (var (name, forward, backward) in new (string, Func<Tensor, Tensor?, Tensor>, Func<Tensor, Tensor, Tensor?, Tensor>)[]
        {
            ("Gelu.Tanh", (a, o) => Gelu.Forward(a, GeluForm.Tanh, o), (g, a, o) => Gelu.Backward(g, a, GeluForm.Tanh, o)),
            ("Gelu.Erf", (a, o) => Gelu.Forward(a, GeluForm.Erf, o), (g, a, o) => Gelu.Backward(g, a, GeluForm.Erf, o)),
            ("Silu", Silu.Forward, Silu.Backward),
            ("Relu", Relu.Forward, Relu.Backward),
        })
        {
            e = Assert.Throws<ArgumentException>(() => forward(bad, y), name)!;
            Assert.That((e.ParamName, e.Message.Contains("NaN") && e.Message.Contains("flat index 1")), Is.EqualTo(("x", true)), name);
            e = Assert.Throws<ArgumentException>(() => forward(x, flat), name)!;
            Assert.That((e.ParamName, e.Message.Contains("[4]") && e.Message.Contains("[2, 2]")), Is.EqualTo(("y", true)), name);
            e = Assert.Throws<ArgumentException>(() => forward(x, x), name)!;
            Assert.That((e.ParamName, e.Message.Contains("also an input")), Is.EqualTo(("y", true)), name);
            e = Assert.Throws<ArgumentException>(() => backward(dyBad, x, dx), name)!;
            Assert.That((e.ParamName, e.Message.Contains("Infinity") && e.Message.Contains("flat index 2")), Is.EqualTo(("dy", true)), name);
            e = Assert.Throws<ArgumentException>(() => backward(dy, bad, dx), name)!;
            Assert.That(e.ParamName, Is.EqualTo("x"), name);
            e = Assert.Throws<ArgumentException>(() => backward(flat, x, dx), name)!;
            Assert.That((e.ParamName, e.Message.Contains("[4]") && e.Message.Contains("[2, 2]")), Is.EqualTo(("dy", true)), name);
            e = Assert.Throws<ArgumentException>(() => backward(dy, x, dy), name)!;
            Assert.That((e.ParamName, e.Message.Contains("also an input")), Is.EqualTo(("dx", true)), name);
        }
        Assert.That(y.ToArray().Concat(dx.ToArray()), Is.All.EqualTo(7f), "a refused call leaves outputs untouched");
    }
}

/// <summary>The activations on the Managed backend.</summary>
public sealed class ManagedActivationTests : ActivationBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 100_003];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuActivationTests : ActivationBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaActivationTests : ActivationBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 100_003];
}
