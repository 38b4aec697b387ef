using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>NegExp (y = -exp(x), dx = dy y) on each backend against the float64 reference, its range, and its refusals.</summary>
public abstract class NegExpBackendTests : BackendFixture
{
    /// <summary>Element counts this backend runs.</summary>
    protected abstract int[] Lengths { get; }

    [Test]
    public void ForwardAndBackwardMatchReference()
    {
        foreach (var n in Lengths)
        {
            var x = TrainingCheck.Normal(n, n, 3f);
            float[] specials = [0f, -0f, 1e-30f, -1e-30f, 5f, -5f, 9f, -9f];
            specials.AsSpan(0, Math.Min(n, specials.Length)).CopyTo(x);
            var dy = TrainingCheck.Normal(n, n + 1);
            using var tx = Device.FromArray(x, n);
            using var tdy = Device.FromArray(dy, n);
            using var y = NegExp.Forward(tx);
            var y32 = ActivationReference.NegExpForward(x);
            TrainingCheck.Assert2x($"NegExp y [{n}]", y.ToArray(), ActivationReference.NegExpForward(TrainingCheck.D(x)), y32);
            using var dx = NegExp.Backward(tdy, y);
            var yd = y.ToArray();
            TrainingCheck.Assert2x($"NegExp dx [{n}]", dx.ToArray(),
                ActivationReference.NegExpBackward(TrainingCheck.D(dy), TrainingCheck.D(yd)), ActivationReference.NegExpBackward(dy, yd));
        }
    }

    /// <summary>Across float's range: relative accuracy to the last ulps, -infinity past ln(float.MaxValue), -0 far below.</summary>
    [Test]
    public void ExtremesFollowFloatRange()
    {
        float[] x = [-110f, -103f, -87f, -50f, -20f, 20f, 50f, 80f, 88.7f, 88.72f, 89f, 100f, 1e30f, -1e30f];
        using var tx = Device.FromArray(x, x.Length);
        using var y = NegExp.Forward(tx);
        var got = y.ToArray();
        ErrorRule.AssertRelative("NegExp extremes", got, ActivationReference.NegExpForward(TrainingCheck.D(x)), 4e-7, 1e-44);
        Assert.That(got[^4..^1], Is.All.EqualTo(float.NegativeInfinity), "past ln(float.MaxValue)");
        Assert.That(got[^1], Is.EqualTo(0f));
        Assert.That(got.All(v => v <= 0f), "never positive");
        using var dy = Device.FromArray(Enumerable.Repeat(1f, x.Length).ToArray(), x.Length);
        PermuteBackendTests.Refused(() => NegExp.Backward(dy, y), "y", "-Infinity", "flat index 10");
    }

    [Test]
    public void PreallocatedOutputsAreFilled()
    {
        using var x = Device.FromArray([-1f, 0f, 2f], 1, 3);
        using var dy = Device.FromArray([1f, 2f, 3f], 1, 3);
        using var y = Device.Zeros(1, 3);
        using var dx = Device.FromArray([9f, 9f, 9f], 1, 3);
        Assert.That(NegExp.Forward(x, y), Is.SameAs(y));
        Assert.That(y.ToArray(), Is.EqualTo(new[] { -Math.Exp(-1), -1.0, -Math.Exp(2) }).Within(1e-6));
        Assert.That(NegExp.Backward(dy, y, dx), Is.SameAs(dx));
        var yv = y.ToArray();
        Assert.That(dx.ToArray(), Is.EqualTo(new[] { yv[0], 2 * yv[1], 3 * yv[2] }), "overwritten with dy y");
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        using var x = Device.FromArray([1f, -2f, 3f, 0f], 2, 2);
        using var y = Device.FromArray(PermuteBackendTests.Sevens(4), 2, 2);
        using var dx = Device.FromArray(PermuteBackendTests.Sevens(4), 2, 2);
        using var bad = Device.FromArray([1f, float.NaN, 3f, 0f], 2, 2);
        using var dy = Device.FromArray([1f, 1f, 1f, 1f], 2, 2);
        using var dyBad = Device.FromArray([1f, 1f, float.PositiveInfinity, 1f], 2, 2);
        using var flat = Device.Zeros(4);
        PermuteBackendTests.Refused(() => NegExp.Forward(bad, y), "x", "NaN", "flat index 1");
        PermuteBackendTests.Refused(() => NegExp.Forward(x, flat), "y", "[4]", "[2, 2]");
        PermuteBackendTests.Refused(() => NegExp.Forward(x, x), "y", "also an input");
        PermuteBackendTests.Refused(() => NegExp.Backward(dyBad, x, dx), "dy", "Infinity", "flat index 2");
        PermuteBackendTests.Refused(() => NegExp.Backward(dy, bad, dx), "y", "NaN", "flat index 1");
        PermuteBackendTests.Refused(() => NegExp.Backward(flat, x, dx), "dy", "[4]", "[2, 2]");
        PermuteBackendTests.Refused(() => NegExp.Backward(dy, x, dy), "dx", "also an input");
        Assert.That(y.ToArray().Concat(dx.ToArray()), Is.All.EqualTo(7f), "a refused call leaves outputs untouched");
    }
}

/// <summary>NegExp on the Managed backend.</summary>
public sealed class ManagedNegExpTests : NegExpBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 100_003];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuNegExpTests : NegExpBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaNegExpTests : NegExpBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 100_003];
}
