using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// Feature norms across float32's whole range (issue "Feature norms overflow where the answer fits"): rows whose
/// squares overflow (1e20) or underflow (1e-30, subnormals) in float32 while every norm fits, rows whose L1 sits just
/// under float.MaxValue, rows whose norms truly overflow (refused), and the backward at those scales.
/// </summary>
/// <remarks>
/// The 2x rule compares against naive float32, which at these scales is itself broken: its sum of squares overflows
/// to infinity at 1e20 (so the rule's bound is infinite) and underflows to 0 at 1e-30 (so the bound is the rule's
/// 1e-6 absolute slack, larger than the norms themselves). Each norm is therefore also checked directly against the
/// float64 reference with a relative tolerance of 1e-6, and the 2x rule is applied only where naive float32 is finite
/// and has not underflowed to 0.
/// </remarks>
public abstract class FeatureNormsRangeTests : BackendFixture
{
    private const double RelativeTolerance = 1e-6;

    /// <summary>Rows of one length F: huge, tiny, mixed huge and tiny, a ramp over 50 decades, subnormals.</summary>
    private static float[] ScaleRows(int features, out int rows)
    {
        rows = 6;
        var x = new float[rows * features];
        for (var f = 0; f < features; f++)
        {
            x[f] = 1e20f;                                                          // row 0: the reported case
            x[features + f] = f % 3 == 1 ? -1e-30f : 1e-30f;                       // row 1: squares underflow
            x[2 * features + f] = f % 2 == 0 ? 1e30f : -1e-30f;                    // row 2: mixed 1e30 and 1e-30
            var exponent = features == 1 ? 20.0 : -30.0 + 50.0 * f / (features - 1);
            x[3 * features + f] = (float)((f % 2 == 0 ? 1 : -1) * Math.Pow(10, exponent)); // row 3: rising magnitudes
            x[4 * features + f] = (f % 4 == 3 ? -3f : 1f) * 1e-40f;                // row 4: subnormal values
            x[5 * features + f] = -2e19f;                                          // row 5: huge and all negative
        }
        return x;
    }

    private static void AssertMatchesFloat64(string what, float[] actual, double[] reference, float[] naive)
    {
        for (var i = 0; i < reference.Length; i++)
        {
            Assert.That(float.IsFinite(actual[i]), Is.True, $"{what}[{i}] = {actual[i]}; the float64 value {reference[i]:E6} fits in float32");
            // float.Epsilon (the smallest subnormal) allows the final rounding of a subnormal result.
            Assert.That(actual[i], Is.EqualTo(reference[i]).Within(RelativeTolerance * Math.Abs(reference[i]) + float.Epsilon),
                $"{what}[{i}] against float64 (relative {RelativeTolerance})");
        }
        var naiveUsable = true;
        for (var i = 0; i < reference.Length; i++)
            if (!float.IsFinite(naive[i]) || (naive[i] == 0f && reference[i] != 0.0)) naiveUsable = false;
        if (naiveUsable) ErrorRule.Assert2x(what, actual, reference, naive);
    }

    private void AssertForwardMatches(float[] x, int rows, int features)
    {
        var r64 = FeatureNormsReference.Forward(TestData.ToDouble(x), rows, features);
        var r32 = FeatureNormsReference.Forward(x, rows, features);
        using var t = Device.FromArray(x, rows, features);
        using var o = FeatureNorms.Forward(t);
        var what = $"[{rows}, {features}]";
        AssertMatchesFloat64($"{what} L1", o.L1.ToArray(), r64.L1, r32.L1);
        AssertMatchesFloat64($"{what} L2", o.L2.ToArray(), r64.L2, r32.L2);
        AssertMatchesFloat64($"{what} L0", o.L0.ToArray(), r64.L0, r32.L0);
        AssertMatchesFloat64($"{what} Max", o.Max.ToArray(), r64.Max, r32.Max);
        AssertMatchesFloat64($"{what} NAN", o.Nan.ToArray(), r64.Nan, r32.Nan);
    }

    [TestCase(1)]
    [TestCase(17)]
    [TestCase(32)]
    [TestCase(4097)]
    public void ForwardFitsWhereSquaresOverflowOrUnderflow(int features)
    {
        var x = ScaleRows(features, out var rows);
        AssertForwardMatches(x, rows, features);
    }

    [Test]
    public void ForwardFitsWhenL1IsJustBelowFloatMax()
    {
        // 30 x 1.1e37 = 3.3e38 (and two zeros, so F = 32 reaches the SIMD loop of 256-bit and 512-bit vectors) and
        // 1.7e38 + 1.6e38 = 3.3e38: L1 fits (float.MaxValue = 3.4028e38) though every square overflows float32.
        const int features = 32;
        var x = new float[2 * features];
        for (var f = 0; f < 30; f++) x[f] = f % 2 == 0 ? 1.1e37f : -1.1e37f;
        x[features] = 1.7e38f;
        x[features + 7] = -1.6e38f;
        AssertForwardMatches(x, 2, features);
    }

    /// <summary>
    /// Rows whose 2048-float blocks (the Managed float32 fast path's block) differ in scale, so fast and float64-recomputed
    /// blocks meet in one row: normal, 1e20 (squares overflow), all zero, then a tail; a 1e-30 block among normal ones;
    /// a subnormal block among small ones.
    /// </summary>
    [Test]
    public void BlocksOfDifferentScalesInOneRow()
    {
        const int block = 2048, features = 3 * block + 5;
        const int rows = 3;
        var x = new float[rows * features];
        for (var f = 0; f < features; f++)
        {
            var u = (float)Math.Sin(0.37 * f);
            x[f] = (f / block) switch { 0 => u, 1 => 1e20f * u, 2 => 0f, _ => -u };
            x[features + f] = f / block == 1 ? 1e-30f * u : u;
            x[2 * features + f] = f / block == 2 ? 3e-39f : 1e-3f * u;
        }
        AssertForwardMatches(x, rows, features);
    }

    [Test]
    public void TrueOverflowIsRefusedNamingRowAndNorm()
    {
        // Row 1: 32 x 3e38 gives L1 = 9.6e39 and L2 = 1.7e39, both beyond float32.
        const int features = 32;
        var x = new float[3 * features];
        for (var f = 0; f < features; f++) (x[f], x[features + f], x[2 * features + f]) = (1f, 3e38f, 2f);
        using var t = Device.FromArray(x, 3, features);
        var e = Assert.Throws<OverflowException>(() => FeatureNorms.Forward(t))!;
        Assert.That(e.Message, Does.Contain("row 1").And.Contain("L1").And.Contain("L2").And.Contain("9.6"), e.Message);

        // 32 x 3e37: L1 = 9.6e38 overflows, L2 = 1.7e38 fits; only L1 is named.
        for (var f = 0; f < features; f++) x[features + f] = -3e37f;
        t.CopyFrom(x);
        e = Assert.Throws<OverflowException>(() => FeatureNorms.Forward(t))!;
        Assert.That(e.Message, Does.Contain("row 1").And.Contain("L1").And.Not.Contain("L2 ="), e.Message);
    }

    // |dx - reference| <= 1e-6 max_f |reference_rf| per row, and dx finite everywhere.
    private static void AssertGradientMatches(string what, float[] dx, double[] reference, int rows, int features)
    {
        for (var r = 0; r < rows; r++)
        {
            var scale = 0.0;
            for (var f = 0; f < features; f++) scale = Math.Max(scale, Math.Abs(reference[r * features + f]));
            Assert.That(scale, Is.GreaterThan(0.0), $"{what} row {r}: the test wants a non-zero gradient");
            for (var f = 0; f < features; f++)
            {
                var i = r * features + f;
                Assert.That(float.IsFinite(dx[i]), Is.True, $"{what}[{r}, {f}] = {dx[i]}");
                Assert.That(dx[i], Is.EqualTo(reference[i]).Within(RelativeTolerance * scale), $"{what}[{r}, {f}]");
            }
        }
    }

    [TestCase(1)]
    [TestCase(17)]
    [TestCase(32)]
    [TestCase(4097)]
    public void BackwardIsFiniteAndRightAtHugeAndTinyScales(int features)
    {
        var x = ScaleRows(features, out var rows);
        var dl1 = TestData.Normal(rows, 21);
        var dl2 = TestData.Normal(rows, 22);
        using var t = Device.FromArray(x, rows, features);
        using var forward = FeatureNorms.Forward(t);
        using var g1 = Device.FromArray(dl1, rows);
        using var g2 = Device.FromArray(dl2, rows);
        using var dx = FeatureNorms.Backward(t, forward, g1, g2);
        AssertGradientMatches($"[{rows}, {features}] dx", dx.ToArray(),
            FeatureNormsReference.Backward(TestData.ToDouble(x), rows, features, TestData.ToDouble(dl1), TestData.ToDouble(dl2)), rows, features);
        using var dxL2 = FeatureNorms.Backward(t, forward, null, g2);
        AssertGradientMatches($"[{rows}, {features}] dx (L2 only)", dxL2.ToArray(),
            FeatureNormsReference.Backward(TestData.ToDouble(x), rows, features, null, TestData.ToDouble(dl2)), rows, features);
    }

    [Test]
    public void BackwardFromExactStatisticsNeitherOverflowsNorLosesDigits()
    {
        // Saved L2 taken from the float64 reference, so only the backward is under test. Row 0: one value 1e38 with
        // dL2 = 8 (dL2 * x overflows float32 before the division); row 1: subnormals 1e-40 (1 / L2 overflows float32);
        // row 2: 2e-39 (dL2 * x is subnormal and loses digits).
        const int rows = 3, features = 8;
        var x = new float[rows * features];
        for (var f = 0; f < features; f++)
        {
            x[f] = f == 3 ? 1e38f : 0f;
            x[features + f] = f % 2 == 0 ? 1e-40f : -1e-40f;
            x[2 * features + f] = (f + 1) * 2e-39f;
        }
        float[] dl2 = [8f, 0.7f, 0.3f];
        var l2 = Array.ConvertAll(FeatureNormsReference.Forward(TestData.ToDouble(x), rows, features).L2, v => (float)v);
        using var t = Device.FromArray(x, rows, features);
        using var saved = new FeatureNormOutput(Device.Zeros(rows), Device.FromArray(l2, rows), Device.Zeros(rows),
            Device.Zeros(rows), Device.Zeros(rows));
        using var g2 = Device.FromArray(dl2, rows);
        using var dx = FeatureNorms.Backward(t, saved, null, g2);
        var reference = new double[x.Length];
        for (var r = 0; r < rows; r++)
            for (var f = 0; f < features; f++)
                reference[r * features + f] = dl2[r] * (double)x[r * features + f] / l2[r];
        AssertGradientMatches("dx", dx.ToArray(), reference, rows, features);
    }

    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void BackwardRefusesNonFiniteSavedStatistics(float bad)
    {
        using var x = Device.FromArray([1f, -2f, 3f, 4f], 2, 2);
        using var forward = FeatureNorms.Forward(x);
        forward.L2.CopyFrom([bad, 5f]);
        using var g1 = Device.FromArray([1f, 1f], 2);
        using var g2 = Device.FromArray([1f, 1f], 2);
        using var dx = Device.FromArray([9f, 9f, 9f, 9f], 2, 2);
        var e = Assert.Throws<ArgumentException>(() => FeatureNorms.Backward(x, forward, g1, g2, dx))!;
        Assert.That(e.ParamName, Is.EqualTo("forward.L2"));
        Assert.That(e.Message, Does.Contain("forward.L2").And.Contain(bad.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.That(dx.ToArray(), Is.EqualTo(new[] { 9f, 9f, 9f, 9f }), "refused before any launch");
    }
}

/// <summary>Range tests on the Managed backend.</summary>
public sealed class ManagedFeatureNormsRangeTests : FeatureNormsRangeTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <summary>The Managed pass computes into scratch, so a refused call leaves preallocated outputs as they were.</summary>
    [Test]
    public void RefusalLeavesManagedOutputsUntouched()
    {
        var x = Enumerable.Repeat(3e38f, 64).ToArray();
        using var t = Device.FromArray(x, 2, 32);
        using var kept = new FeatureNormOutput(Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2),
            Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2), Device.FromArray([7f, 7f], 2));
        Assert.Throws<OverflowException>(() => FeatureNorms.Forward(t, kept));
        foreach (var output in new[] { kept.L1, kept.L2, kept.L0, kept.Max, kept.Nan })
            Assert.That(output.ToArray(), Is.EqualTo(new[] { 7f, 7f }));
    }
}

/// <summary>Range tests of the exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuFeatureNormsRangeTests : FeatureNormsRangeTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
}

/// <summary>Range tests on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaFeatureNormsRangeTests : FeatureNormsRangeTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;
}

/// <summary>
/// The range tests on the Managed backend at every SIMD width (SimdWidth.Force for each test): the float32 fast path's
/// blocks and their float64 fallback at Vector128, Vector256 and Vector512.
/// </summary>
[TestFixture(128)]
[TestFixture(256)]
[TestFixture(512)]
[Category("Widths")]
public sealed class ManagedFeatureNormsWidthTests(int bits) : FeatureNormsRangeTests
{
    private SimdWidth.Scope scope;

    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <summary>Runs this test's Managed ops at the fixture's width.</summary>
    [SetUp]
    public void ForceWidth() => scope = SimdWidth.Force(bits);

    /// <summary>Restores the widest width.</summary>
    [TearDown]
    public void RestoreWidth() => scope.Dispose();
}
