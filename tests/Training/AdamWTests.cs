using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>AdamW and the global-norm clip on each backend against float64 references of torch's equations (2x rule).</summary>
public abstract class AdamWTests : BackendFixture
{
    /// <summary>The parameter counts this backend runs.</summary>
    protected abstract int[] Lengths { get; }

    private static readonly AdamWOptions Options = new() { Beta1 = 0.9f, Beta2 = 0.95f, Eps = 1e-8f, WeightDecay = 0.1f };

    // Decay on [0, n/3) and [2n/3, n), none in between (or everything decayed when n is too small to split).
    private static ParameterSegment[] Segments(int n)
    {
        if (n < 3) return [new(0, n, true)];
        int a = n / 3, b = 2 * n / 3;
        return [new(0, a, true), new(a, b - a, false), new(b, n - b, true)];
    }

    private static bool[] DecayOf(int n, ParameterSegment[] segments)
    {
        var d = new bool[n];
        foreach (var s in segments) for (var i = s.Offset; i < s.Offset + s.Length; i++) d[i] = s.Decay;
        return d;
    }

    [Test]
    public void SeveralStepsMatchTorchEquations()
    {
        var schedule = new CosineSchedule(3e-3, 3e-4, 2, 6);
        foreach (var n in Lengths)
        {
            var segments = Segments(n);
            var decay = DecayOf(n, segments);
            var p0 = TestData.Normal(n, n);
            var p64 = TestData.ToDouble(p0);
            var (m64, v64) = (new double[n], new double[n]);
            var p32 = (float[])p0.Clone();
            var (m32, v32) = (new float[n], new float[n]);
            using var p = Device.FromArray(p0, n);
            using var m = Device.Zeros(n);
            using var v = Device.Zeros(n);
            using var g = Device.Zeros(n);
            using var mask = DecayMask.Create(Device, n, segments);
            for (var step = 1; step <= 6; step++)
            {
                // Gradients of changing scale and sign, with exact zeros, so the moments and bias corrections all matter.
                var grad = TestData.Normal(n, 100 * n + step, step % 2 == 0 ? 0.1f : 2f);
                for (var i = 0; i < n; i += 5) grad[i] = 0f;
                g.CopyFrom(grad);
                var lr = (float)schedule.LearningRate(step - 1);
                AdamW.Step(p, g, m, v, mask, Options, step, lr);
                AdamWReference.Step(p64, TestData.ToDouble(grad), m64, v64, decay, lr, Options.Beta1, Options.Beta2, Options.Eps,
                    Options.WeightDecay, step);
                AdamWReference.Step(p32, grad, m32, v32, decay, lr, Options.Beta1, Options.Beta2, Options.Eps, Options.WeightDecay, step);
                var what = $"N {n} step {step}";
                ErrorRule.Assert2x($"{what} parameters", p.ToArray(), p64, p32);
                ErrorRule.Assert2x($"{what} m", m.ToArray(), m64, m32);
                ErrorRule.Assert2x($"{what} v", v.ToArray(), v64, v32);
            }
        }
    }

    [Test]
    public void UndecayedParametersWithZeroGradientDoNotMove()
    {
        var n = Lengths[^1];
        var p0 = TestData.Normal(n, 2);
        using var p = Device.FromArray(p0, n);
        using var m = Device.Zeros(n);
        using var v = Device.Zeros(n);
        using var g = Device.Zeros(n);
        using var mask = DecayMask.Create(Device, n, [new(0, 1, true), new(1, n - 1, false)]);
        AdamW.Step(p, g, m, v, mask, Options, 1, 0.5f);
        var after = p.ToArray();
        Assert.That(after[0], Is.EqualTo(p0[0] * (1f - 0.5f * Options.WeightDecay)).Within(1e-7f * Math.Abs(p0[0])), "decayed");
        Assert.That(after.Skip(1), Is.EqualTo(p0.Skip(1)), "no decay, no gradient: unchanged");
    }

    [Test]
    public void BadAdamWInputIsRefusedAndBuffersAreUntouched()
    {
        var n = 7;
        var p0 = TestData.Normal(n, 3);
        using var p = Device.FromArray(p0, n);
        using var m = Device.FromArray(Enumerable.Repeat(7f, n).ToArray(), n);
        using var v = Device.FromArray(Enumerable.Repeat(7f, n).ToArray(), n);
        using var g = Device.FromArray(TestData.Normal(n, 4), n);
        using var mask = DecayMask.Create(Device, n, [new(0, n, true)]);
        void Refused(string param, Action call)
        {
            var e = Assert.Throws<ArgumentException>(() => call())!;
            Assert.That(e.ParamName, Is.EqualTo(param), e.Message);
            Assert.That(p.ToArray(), Is.EqualTo(p0), $"{param}: parameters touched");
            Assert.That(m.ToArray(), Is.All.EqualTo(7f), $"{param}: m touched");
            Assert.That(v.ToArray(), Is.All.EqualTo(7f), $"{param}: v touched");
        }
        var bad = TestData.Normal(n, 4);
        bad[6] = float.NaN;
        using (var gNan = Device.FromArray(bad, n)) Refused("gradients", () => AdamW.Step(p, gNan, m, v, mask, Options, 1, 1e-3f));
        using (var short6 = Device.Zeros(n - 1)) Refused("m", () => AdamW.Step(p, g, short6, v, mask, Options, 1, 1e-3f));
        Refused("m", () => AdamW.Step(p, g, m, m, mask, Options, 1, 1e-3f));
        Refused("parameters", () => AdamW.Step(p, p, m, v, mask, Options, 1, 1e-3f));
        Refused("step", () => AdamW.Step(p, g, m, v, mask, Options, 0, 1e-3f));
        Refused("learningRate", () => AdamW.Step(p, g, m, v, mask, Options, 1, float.NaN));
        Refused("options", () => AdamW.Step(p, g, m, v, mask, Options with { Beta1 = 1f }, 1, 1e-3f));
        Refused("options", () => AdamW.Step(p, g, m, v, mask, Options with { Eps = 0f }, 1, 1e-3f));
        using var other = Device.Create(Backend.Managed);
        using var foreign = other.Zeros(n);
        Refused("gradients", () => AdamW.Step(p, foreign, m, v, mask, Options, 1, 1e-3f));
    }

    [Test]
    public void ClipMatchesReferenceAboveAndBelowTheLimit()
    {
        foreach (var n in Lengths)
        foreach (var maxNorm in new[] { 0.5f, 1e6f })
        {
            var grad = TestData.Normal(n, 7 * n, 3f);
            var r64 = GradientClipReference.Clip(TestData.ToDouble(grad), (double)maxNorm);
            var r32 = GradientClipReference.Clip(grad, maxNorm);
            using var g = Device.FromArray(grad, n);
            using var norm = GradientClip.ClipGlobalNorm(g, maxNorm);
            var what = $"N {n} maxNorm {maxNorm}";
            ErrorRule.Assert2x($"{what} norm", norm.ToArray(), [r64.Norm], [r32.Norm], ErrorRule.ScaledFloor([r64.Norm]));
            if (maxNorm > r64.Norm) Assert.That(g.ToArray(), Is.EqualTo(grad), $"{what}: below the limit, unchanged");
            else ErrorRule.Assert2x($"{what} clipped", g.ToArray(), r64.Clipped, r32.Clipped);
        }
    }

    [TestCase(1e20f)]
    [TestCase(1e-30f)]
    public void ClipNormIsOverflowAndUnderflowSafe(float scale)
    {
        // Squares of 1e20 overflow float32 and squares of 1e-30 underflow it; the norms themselves fit.
        var n = Lengths[^1];
        var grad = TestData.Normal(n, 11, scale);
        var r64 = GradientClipReference.Clip(TestData.ToDouble(grad), 1.0);
        using var g = Device.FromArray(grad, n);
        using var norm = GradientClip.ClipGlobalNorm(g, 1f);
        ErrorRule.AssertRelative($"N {n} scale {scale} norm", norm.ToArray(), [r64.Norm], 1e-5);
        ErrorRule.AssertRelative($"N {n} scale {scale} clipped", g.ToArray(), r64.Clipped, 1e-5, 1e-44);
    }

    [Test]
    public void BadClipInputIsRefusedAndBuffersAreUntouched()
    {
        var grad = TestData.Normal(5, 1);
        grad[3] = float.PositiveInfinity;
        using var g = Device.FromArray(grad, 5);
        using var norm = Device.FromArray([7f], 1);
        Assert.That(Assert.Throws<ArgumentException>(() => GradientClip.ClipGlobalNorm(g, 1f, norm))!.ParamName, Is.EqualTo("gradients"));
        Assert.That(norm.ToArray(), Is.EqualTo(new[] { 7f }));
        using var ok = Device.FromArray([3f], 1);
        Assert.That(Assert.Throws<ArgumentException>(() => GradientClip.ClipGlobalNorm(ok, 0f, norm))!.ParamName, Is.EqualTo("maxNorm"));
        Assert.That(Assert.Throws<ArgumentException>(() => GradientClip.ClipGlobalNorm(ok, 1f, ok))!.ParamName, Is.EqualTo("norm"));
        Assert.That(ok.ToArray(), Is.EqualTo(new[] { 3f }));
        Assert.That(norm.ToArray(), Is.EqualTo(new[] { 7f }));
    }
}

/// <summary>AdamW and the clip on the Managed backend, awkward lengths across the SIMD and chunk edges.</summary>
public sealed class ManagedAdamWTests : AdamWTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 40_003];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator, small lengths.</summary>
public sealed class IlgpuCpuAdamWTests : AdamWTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int[] Lengths => [1, 33, 130];
}

/// <summary>The kernels on a real GPU (skipped where none is found).</summary>
[Category("Gpu")]
public sealed class CudaAdamWTests : AdamWTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;
    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 40_003];
}

/// <summary>The decay mask's segment rules and the cosine schedule, backend-free.</summary>
public sealed class AdamWScheduleTests
{
    [Test]
    public void DecayMaskMarksSegmentsAndRefusesGapsAndOverlaps()
    {
        using var device = Device.Create(Backend.Managed);
        using (var mask = DecayMask.Create(device, 6, [new(4, 2, true), new(0, 3, true), new(3, 1, false)]))
            Assert.That(mask.Mask.ToArray(), Is.EqualTo(new[] { 1f, 1f, 1f, 0f, 1f, 1f }));
        Assert.Throws<ArgumentException>(() => DecayMask.Create(device, 6, [new(0, 3, true), new(4, 2, true)]), "gap");
        Assert.Throws<ArgumentException>(() => DecayMask.Create(device, 6, [new(0, 4, true), new(3, 3, true)]), "overlap");
        Assert.Throws<ArgumentException>(() => DecayMask.Create(device, 6, [new(0, 7, true)]), "past the end");
        Assert.Throws<ArgumentException>(() => DecayMask.Create(device, 6, [new(0, 5, true)]), "short");
        Assert.Throws<ArgumentException>(() => DecayMask.Create(device, 6, [new(0, 0, true), new(0, 6, true)]), "empty");
    }

    [Test]
    public void CosineScheduleWarmsUpLinearlyThenDecaysToTheMinimum()
    {
        var s = new CosineSchedule(1e-3, 1e-4, 10, 110);
        Assert.That(s.LearningRate(0), Is.EqualTo(1e-4).Within(1e-15), "warm-up starts at max / warmup");
        Assert.That(s.LearningRate(4), Is.EqualTo(5e-4).Within(1e-15));
        Assert.That(s.LearningRate(9), Is.EqualTo(1e-3).Within(1e-15), "peak at the last warm-up step");
        Assert.That(s.LearningRate(10), Is.EqualTo(1e-3).Within(1e-15), "decay starts from the peak");
        Assert.That(s.LearningRate(60), Is.EqualTo(5.5e-4).Within(1e-15), "halfway: the mean of max and min");
        Assert.That(s.LearningRate(110), Is.EqualTo(1e-4).Within(1e-15));
        Assert.That(s.LearningRate(1000), Is.EqualTo(1e-4).Within(1e-15));
        for (var step = 10; step < 110; step++)
            Assert.That(s.LearningRate(step + 1), Is.LessThan(s.LearningRate(step)), $"decreasing at {step}");
        Assert.Throws<ArgumentException>(() => s.LearningRate(-1));
        Assert.Throws<ArgumentException>(() => _ = new CosineSchedule(1e-3, 1e-2, 10, 110));
        Assert.Throws<ArgumentException>(() => _ = new CosineSchedule(1e-3, 1e-4, 10, 10));
    }
}
