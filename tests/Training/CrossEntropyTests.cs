using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The fused softmax + cross-entropy + dlogits on each backend against the float64 reference (2x rule).</summary>
public abstract class CrossEntropyTests : BackendFixture
{
    private const int Ignore = CrossEntropy.DefaultIgnoreIndex;

    /// <summary>The (T, V) shapes this backend runs.</summary>
    protected abstract (int Rows, int Classes)[] Shapes { get; }

    private static int[] Targets(int rows, int classes, int seed, bool ignoreSome)
    {
        var rng = new Random(seed);
        var t = new int[rows];
        for (var r = 0; r < rows; r++) t[r] = ignoreSome && r % 3 == 1 ? Ignore : rng.Next(classes);
        return t;
    }

    private void Check(int rows, int classes, float scale, int[] targets, int seed)
    {
        var logits = TestData.Normal(rows * classes, seed, scale);
        var r64 = CrossEntropyReference.Forward(TestData.ToDouble(logits), targets, rows, classes, Ignore);
        var r32 = CrossEntropyReference.Forward(logits, targets, rows, classes, Ignore);
        using var x = Device.FromArray(logits, rows, classes);
        using var t = Device.FromArray(Array.ConvertAll(targets, v => (float)v), rows);
        using var o = CrossEntropy.Forward(x, t);
        var what = $"[{rows}, {classes}] scale {scale}";
        var floor = ErrorRule.ScaledFloor(r64.Losses);
        ErrorRule.Assert2x($"{what} losses", o.Losses.ToArray(), r64.Losses, r32.Losses, floor);
        ErrorRule.Assert2x($"{what} mean", o.Mean.ToArray(), [r64.Mean], [r32.Mean], floor);
        // dlogits are at most 1 / count: the floor is 1e-6 of their own largest magnitude (8 ulps), not 1e-6 absolute.
        var dFloor = Math.Max(1e-6 * r64.DLogits.Max(Math.Abs), 1e-30);
        ErrorRule.Assert2x($"{what} dlogits", o.DLogits.ToArray(), r64.DLogits, r32.DLogits, dFloor);
        var d = o.DLogits.ToArray();
        var losses = o.Losses.ToArray();
        for (var r = 0; r < rows; r++)
        {
            if (targets[r] != Ignore) continue;
            Assert.That(losses[r], Is.EqualTo(0f), $"{what}: ignored row {r} has a loss");
            Assert.That(d.AsSpan(r * classes, classes).ToArray(), Is.All.EqualTo(0f), $"{what}: ignored row {r} has gradients");
        }
    }

    [Test]
    public void MatchesReferenceWithIgnoredRows()
    {
        foreach (var (rows, classes) in Shapes)
            Check(rows, classes, 3f, Targets(rows, classes, rows + classes, ignoreSome: true), rows * 31 + classes);
    }

    [Test]
    public void LogitsAtScale1e3StayFiniteAndAccurate()
    {
        foreach (var (rows, classes) in Shapes)
            Check(rows, classes, 1e3f, Targets(rows, classes, rows, ignoreSome: rows > 1), 7 + rows);
    }

    [Test]
    public void AllRowsIgnoredGivesZeroLossAndGradients()
    {
        var (rows, classes) = Shapes[^1];
        using var x = Device.FromArray(TestData.Normal(rows * classes, 3), rows, classes);
        using var t = Device.FromArray(Enumerable.Repeat((float)Ignore, rows).ToArray(), rows);
        using var o = new CrossEntropyOutput(Device.FromArray(Enumerable.Repeat(9f, rows).ToArray(), rows), Device.FromArray([9f], 1),
            Device.FromArray(Enumerable.Repeat(9f, rows * classes).ToArray(), rows, classes));
        CrossEntropy.Forward(x, t, Ignore, o);
        Assert.That(o.Mean.ToArray(), Is.EqualTo(new[] { 0f }));
        Assert.That(o.Losses.ToArray(), Is.All.EqualTo(0f));
        Assert.That(o.DLogits.ToArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void RepeatedRunsAreBitwiseEqual()
    {
        var (rows, classes) = Shapes[^1];
        using var x = Device.FromArray(TestData.Normal(rows * classes, 5, 10f), rows, classes);
        using var t = Device.FromArray(Array.ConvertAll(Targets(rows, classes, 5, true), v => (float)v), rows);
        using var a = CrossEntropy.Forward(x, t);
        using var b = CrossEntropy.Forward(x, t);
        Assert.That(b.DLogits.ToArray(), Is.EqualTo(a.DLogits.ToArray()));
        Assert.That(b.Mean.ToArray(), Is.EqualTo(a.Mean.ToArray()));
    }

    [Test]
    public void BadInputIsRefusedAndOutputsAreUntouched()
    {
        int rows = 3, classes = 5;
        using var x = Device.FromArray(TestData.Normal(rows * classes, 1), rows, classes);
        using var good = Device.FromArray([0f, 4f, Ignore], rows);
        using var o = new CrossEntropyOutput(Device.FromArray([7f, 7f, 7f], rows), Device.FromArray([7f], 1),
            Device.FromArray(Enumerable.Repeat(7f, rows * classes).ToArray(), rows, classes));
        void Refused(string param, Action call)
        {
            var e = Assert.Throws<ArgumentException>(() => call())!;
            Assert.That(e.ParamName, Is.EqualTo(param), e.Message);
            Assert.That(o.Losses.ToArray(), Is.All.EqualTo(7f), $"{param}: losses touched");
            Assert.That(o.Mean.ToArray(), Is.All.EqualTo(7f), $"{param}: mean touched");
            Assert.That(o.DLogits.ToArray(), Is.All.EqualTo(7f), $"{param}: dlogits touched");
        }
        foreach (var bad in new[] { 5f, -1f, 1.5f, float.NaN })
        {
            using var t = Device.FromArray([0f, bad, 1f], rows);
            Refused("targets", () => CrossEntropy.Forward(x, t, Ignore, o));
        }
        var withNan = TestData.Normal(rows * classes, 1);
        withNan[4] = float.PositiveInfinity;
        using (var xi = Device.FromArray(withNan, rows, classes)) Refused("logits", () => CrossEntropy.Forward(xi, good, Ignore, o));
        using (var t4 = Device.FromArray([0f, 1f, 2f, 3f], 4)) Refused("targets", () => CrossEntropy.Forward(x, t4, Ignore, o));
        using (var x1 = Device.FromArray(new float[rows * classes], rows * classes)) Refused("logits", () => CrossEntropy.Forward(x1, good, Ignore, o));
        using (var wrong = Device.Zeros(rows, classes + 1))
            Refused("outputs.DLogits", () => CrossEntropy.Forward(x, good, Ignore, new CrossEntropyOutput(o.Losses, o.Mean, wrong)));
        Refused("outputs.DLogits", () => CrossEntropy.Forward(x, good, Ignore, new CrossEntropyOutput(o.Losses, o.Mean, x)));
        Refused("outputs.Losses", () => CrossEntropy.Forward(x, good, Ignore, new CrossEntropyOutput(good, o.Mean, o.DLogits)));
        using var other = Device.Create(Backend.Managed);
        using var foreign = other.FromArray([0f, 1f, 2f], rows);
        Refused("targets", () => CrossEntropy.Forward(x, foreign, Ignore, o));
    }
}

/// <summary>CrossEntropy on the Managed backend, awkward T and V up to ~1000.</summary>
public sealed class ManagedCrossEntropyTests : CrossEntropyTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override (int Rows, int Classes)[] Shapes => [(1, 1), (7, 33), (33, 127), (127, 7), (33, 1000), (7, 1021)];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator, tiny shapes.</summary>
public sealed class IlgpuCpuCrossEntropyTests : CrossEntropyTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override (int Rows, int Classes)[] Shapes => [(1, 1), (5, 33), (2, 300)];
}

/// <summary>The kernels on a real GPU (skipped where none is found).</summary>
[Category("Gpu")]
public sealed class CudaCrossEntropyTests : CrossEntropyTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;
    /// <inheritdoc />
    protected override (int Rows, int Classes)[] Shapes => [(1, 1), (7, 33), (33, 127), (127, 7), (33, 1000), (7, 1021), (64, 50257)];
}

/// <summary>The reference's dlogits against central finite differences of its mean loss, in float64.</summary>
public sealed class CrossEntropyReferenceTests
{
    [Test]
    public void DLogitsMatchFiniteDifferences()
    {
        int rows = 5, classes = 7;
        var logits = TestData.ToDouble(TestData.Normal(rows * classes, 9, 2f));
        int[] targets = [3, CrossEntropy.DefaultIgnoreIndex, 0, 6, 2];
        var grad = CrossEntropyReference.Forward(logits, targets, rows, classes, CrossEntropy.DefaultIgnoreIndex).DLogits;
        const double h = 1e-5;
        for (var i = 0; i < logits.Length; i++)
        {
            var saved = logits[i];
            logits[i] = saved + h;
            var up = CrossEntropyReference.Forward(logits, targets, rows, classes, CrossEntropy.DefaultIgnoreIndex).Mean;
            logits[i] = saved - h;
            var down = CrossEntropyReference.Forward(logits, targets, rows, classes, CrossEntropy.DefaultIgnoreIndex).Mean;
            logits[i] = saved;
            Assert.That(grad[i], Is.EqualTo((up - down) / (2 * h)).Within(1e-8), $"dlogits[{i}]");
        }
    }
}
