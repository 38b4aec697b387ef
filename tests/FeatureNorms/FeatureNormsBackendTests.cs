using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>Feature norms and the collapse reductions on each backend against the float64 reference (2x rule).</summary>
public abstract class FeatureNormsBackendTests : BackendFixture
{
    /// <summary>Largest F this backend is tested at.</summary>
    protected abstract int MaxFeatures { get; }

    /// <summary>Rows of every awkward kind: zeros, all negative, one huge value, mixed sign, a single positive.</summary>
    private static float[] AwkwardRows(int rows, int features, int seed)
    {
        var x = TestData.Normal(rows * features, seed);
        for (var f = 0; f < features; f++)
        {
            x[f] = 0f;                                                  // row 0: all zeros
            if (rows > 1) x[features + f] = -Math.Abs(x[features + f]); // row 1: all negative
        }
        if (rows > 2) x[2 * features + features / 2] = 1e15f;           // row 2: one huge value
        if (rows > 3)
            for (var f = 0; f < features; f++) x[3 * features + f] = f == features - 1 ? 2.5f : -1f; // row 3: one positive, last
        return x;
    }

    private IEnumerable<(int Rows, int Features)> Shapes()
    {
        yield return (1, 1);
        yield return (5, 17);
        yield return (4, 1000);
        yield return (7, 257);
        yield return (3, MaxFeatures);
    }

    [Test]
    public void ForwardMatchesReference()
    {
        foreach (var (rows, features) in Shapes())
        {
            var x = AwkwardRows(rows, features, rows + features);
            var r64 = FeatureNormsReference.Forward(TestData.ToDouble(x), rows, features);
            var r32 = FeatureNormsReference.Forward(x, rows, features);
            using var t = Device.FromArray(x, rows, features);
            using var o = FeatureNorms.Forward(t);
            var what = $"[{rows}, {features}]";
            ErrorRule.Assert2x($"{what} L1", o.L1.ToArray(), r64.L1, r32.L1);
            ErrorRule.Assert2x($"{what} L2", o.L2.ToArray(), r64.L2, r32.L2);
            ErrorRule.Assert2x($"{what} L0", o.L0.ToArray(), r64.L0, r32.L0);
            ErrorRule.Assert2x($"{what} Max", o.Max.ToArray(), r64.Max, r32.Max);
            ErrorRule.Assert2x($"{what} NAN", o.Nan.ToArray(), r64.Nan, r32.Nan);
        }
    }

    [Test]
    public void LongMixedSignRowsStayAccurate()
    {
        // Large positive and negative values of nearly equal total: naive float32 sums lose digits here.
        int rows = 2, features = MaxFeatures;
        var x = TestData.Normal(rows * features, 11, 1000f);
        var r64 = FeatureNormsReference.Forward(TestData.ToDouble(x), rows, features);
        using var t = Device.FromArray(x, rows, features);
        using var o = FeatureNorms.Forward(t);
        var l1 = o.L1.ToArray();
        for (var r = 0; r < rows; r++)
            Assert.That(l1[r], Is.EqualTo(r64.L1[r]).Within(4e-7 * r64.L1[r]), "Kahan keeps L1 to a few ulps");
    }

    [Test]
    public void BackwardMatchesReference()
    {
        foreach (var (rows, features) in Shapes())
        {
            var x = AwkwardRows(rows, features, 3 * rows + features);
            x[Math.Min(x.Length - 1, features + 1)] = 0f; // an exact zero inside a live row: subgradient 0
            var dl1 = TestData.Normal(rows, 5);
            var dl2 = TestData.Normal(rows, 6);
            var r64 = FeatureNormsReference.Backward(TestData.ToDouble(x), rows, features, TestData.ToDouble(dl1), TestData.ToDouble(dl2));
            var r32 = FeatureNormsReference.Backward(x, rows, features, dl1, dl2);
            using var t = Device.FromArray(x, rows, features);
            using var o = FeatureNorms.Forward(t);
            using var g1 = Device.FromArray(dl1, rows);
            using var g2 = Device.FromArray(dl2, rows);
            using var dx = FeatureNorms.Backward(t, o, g1, g2);
            ErrorRule.Assert2x($"[{rows}, {features}] dx", dx.ToArray(), r64, r32);
            using var dxL2Only = FeatureNorms.Backward(t, o, null, g2);
            var only64 = FeatureNormsReference.Backward(TestData.ToDouble(x), rows, features, null, TestData.ToDouble(dl2));
            ErrorRule.Assert2x($"[{rows}, {features}] dx (L2 only)", dxL2Only.ToArray(), only64,
                FeatureNormsReference.Backward(x, rows, features, null, dl2));
        }
    }

    [Test]
    public void CollapseReductionsMatchReference()
    {
        // Row counts stay small: on the ILGPU simulator every row's group of 256 threads is 256 OS threads.
        foreach (var (rows, columns) in new[] { (1, 5), (33, 17), (70, 64) })
        {
            var x = TestData.Normal(rows * columns, rows * columns);
            var xd = TestData.ToDouble(x);
            using var t = Device.FromArray(x, rows, columns);
            using var gram = Collapse.Gram(t);
            ErrorRule.Assert2x($"Gram [{rows}, {columns}]", gram.ToArray(),
                FeatureNormsReference.Gram(xd, rows, columns), FeatureNormsReference.Gram(x, rows, columns));
            Assert.That(Collapse.EffectiveRank(t), Is.EqualTo(FeatureNormsReference.EffectiveRank(xd, rows, columns)).Within(1e-4).Percent);
            Assert.That(Collapse.ResidualRatio(t), Is.EqualTo(FeatureNormsReference.ResidualRatio(xd, rows, columns)).Within(1e-5));
            Assert.That(Collapse.MeanPairwiseCosine(t), Is.EqualTo(FeatureNormsReference.MeanPairwiseCosine(xd, rows, columns)).Within(1e-5));
        }
    }

    /// <summary>The device reductions behind the collapse measures, each with the 2x rule.</summary>
    [Test]
    public void CollapseDeviceReductionsFollowTheTwoTimesRule()
    {
        // (40, 300): more columns than a row group's 256 threads, so the column-stride loops run twice.
        foreach (var (rows, columns) in new[] { (1, 3), (97, 17), (40, 300) })
        {
            var x = TestData.Normal(rows * columns, 7 * rows + columns, 3f);
            x[0] = 0f;
            var xd = TestData.ToDouble(x);
            using var t = Device.FromArray(x, rows, columns);
            using var sums = Device.Zeros(columns);
            Collapse.ColumnSums(t, null, sums, rows, columns);
            ErrorRule.Assert2x($"ColumnSums [{rows}, {columns}]", sums.ToArray(),
                FeatureNormsReference.ColumnSums(xd, rows, columns), FeatureNormsReference.ColumnSums(x, rows, columns));
            using var norms = FeatureNorms.Forward(t);
            Collapse.ColumnSums(t, norms.L2, sums, rows, columns);
            ErrorRule.Assert2x($"UnitColumnSums [{rows}, {columns}]", sums.ToArray(),
                FeatureNormsReference.UnitColumnSums(xd, rows, columns), FeatureNormsReference.UnitColumnSums(x, rows, columns));
            // The deviation pass takes the mean as an input: give it the float32 mean both results see.
            var mean32 = FeatureNormsReference.ColumnSums(x, rows, columns).Select(v => v / rows).ToArray();
            using var mean = Device.FromArray(mean32, columns);
            using var deviation = Device.Zeros(rows);
            Collapse.RowDeviation(t, mean, deviation, rows, columns);
            ErrorRule.Assert2x($"RowDeviation [{rows}, {columns}]", deviation.ToArray(),
                FeatureNormsReference.RowDeviation(xd, rows, columns, Array.ConvertAll(mean32, v => (double)v)),
                FeatureNormsReference.RowDeviation(x, rows, columns, mean32));
        }
    }

    [Test]
    public void CollapsedRowsAreMeasuredNotCancelled()
    {
        // Rows = one direction + 1e-4 noise: the residual ratio is ~1e-4, below float32's sqrt(eps) noise floor of the
        // ||X||^2 - R|mean|^2 shortcut; the direct deviations keep it to a few percent.
        int rows = 64, columns = 32;
        var direction = TestData.Normal(columns, 1);
        var noise = TestData.Normal(rows * columns, 2, 1e-4f);
        var x = new float[rows * columns];
        for (var i = 0; i < x.Length; i++) x[i] = direction[i % columns] + noise[i];
        var xd = TestData.ToDouble(x);
        using var t = Device.FromArray(x, rows, columns);
        var expected = FeatureNormsReference.ResidualRatio(xd, rows, columns);
        Assert.That(Collapse.ResidualRatio(t), Is.EqualTo(expected).Within(5).Percent);
        Assert.That(Collapse.MeanPairwiseCosine(t), Is.EqualTo(FeatureNormsReference.MeanPairwiseCosine(xd, rows, columns)).Within(1e-6));
        Assert.That(Collapse.EffectiveRank(t), Is.LessThan(1.1), "one direction dominates");
    }

    [Test]
    public void DegenerateSetsAreDefined()
    {
        using var one = Device.FromArray([3f, -4f], 1, 2);
        Assert.That(Collapse.ResidualRatio(one), Is.Zero, "one row equals its mean");
        Assert.That(Collapse.MeanPairwiseCosine(one), Is.EqualTo(1.0), "one direction is fully collapsed");
        Assert.That(Collapse.EffectiveRank(one), Is.EqualTo(1.0).Within(1e-6));
        using var zeros = Device.Zeros(4, 3);
        Assert.That(Collapse.ResidualRatio(zeros), Is.Zero);
        Assert.That(Collapse.MeanPairwiseCosine(zeros), Is.Zero);
        Assert.That(Collapse.EffectiveRank(zeros), Is.Zero);
        var keys = Collapse.KeyNorms(zeros);
        Assert.That((keys.CoefficientOfVariation, keys.MaxOverMedian), Is.EqualTo((0.0, 1.0)));
    }

    [Test]
    public void KeyNormStratification()
    {
        // Keys [1, 2, 4, 3]: norms 1, 2, 3, 4 (scaled unit vectors) -> mean 2.5, std sqrt(1.25), median 2.5, max 4.
        var k = new float[4 * 3];
        float[] scales = [1, 2, 3, 4];
        for (var i = 0; i < 4; i++) k[i * 3 + i % 3] = scales[i];
        using var t = Device.FromArray(k, 1, 1, 4, 3);
        var s = Collapse.KeyNorms(t);
        Assert.That(s.CoefficientOfVariation, Is.EqualTo(Math.Sqrt(1.25) / 2.5).Within(1e-6));
        Assert.That(s.MaxOverMedian, Is.EqualTo(4 / 2.5).Within(1e-6));
        Assert.That(s.MeanNorm, Is.EqualTo(2.5).Within(1e-6));
    }

    [Test]
    public void BadInputIsRejectedBeforeAnyLaunch()
    {
        using var rank1 = Device.Zeros(8);
        var e = Assert.Throws<ArgumentException>(() => FeatureNorms.Forward(rank1))!;
        Assert.That((e.ParamName, e.Message.Contains("[8]")), Is.EqualTo(("x", true)));
        using var x = Device.FromArray([1f, float.NaN, 2f, 3f], 2, 2);
        using var kept = new FeatureNormOutput(Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2),
            Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2));
        e = Assert.Throws<ArgumentException>(() => FeatureNorms.Forward(x, kept))!;
        Assert.That(e.Message, Does.Contain("NaN").And.Contain("flat index 1"));
        Assert.That(kept.L1.ToArray(), Is.EqualTo(new[] { 7f, 7f }), "a refused call leaves outputs untouched");
        using var good = Device.FromArray([1f, 2f, 3f, 4f], 2, 2);
        using var wrong = new FeatureNormOutput(Device.Zeros(3), Device.Zeros(2), Device.Zeros(2), Device.Zeros(2), Device.Zeros(2));
        e = Assert.Throws<ArgumentException>(() => FeatureNorms.Forward(good, wrong))!;
        Assert.That(e.ParamName, Is.EqualTo("outputs.L1"));
        using var fwd = FeatureNorms.Forward(good);
        Assert.Throws<ArgumentException>(() => FeatureNorms.Backward(good, fwd, null, null));
        using var badGrad = Device.Zeros(3);
        e = Assert.Throws<ArgumentException>(() => FeatureNorms.Backward(good, fwd, badGrad, null))!;
        Assert.That(e.ParamName, Is.EqualTo("dL1"));
    }
}

/// <summary>Feature norms on the Managed backend, up to F = 16384.</summary>
public sealed class ManagedFeatureNormsTests : FeatureNormsBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int MaxFeatures => 16384;
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuFeatureNormsTests : FeatureNormsBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int MaxFeatures => 4099;
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaFeatureNormsTests : FeatureNormsBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;
    /// <inheritdoc />
    protected override int MaxFeatures => 16384;
}
