using System.Text;
using CsCheck;
using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;
using static RouteKit.Tests.Randomised.RandomisedCheck;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// Feature norms (L1, L2, L0, Max, NAN) and their backward on random rows of awkward kinds (Gaussian, constant,
/// zero, all negative, one spike, sparse), each row with its own scale, log-uniform in [1e-30, 1e30].
/// <para>Norms are homogeneous in x, so each row is checked in its own units: the 2x rule with the 1e-6 floor times
/// the row's max |x| or the norm itself, whichever is larger (L1 of F values reaches F max|x|, and a floor below one
/// ulp of the result fails a correctly summed value whenever the naive sum happens to round exactly: 2026-12-02,
/// IlgpuCpu L1 of 87 values one ulp off against a floor of 0.4 ulp) (the gradient is scale-free: floor times
/// |dL1| + |dL2|). Where the naive float32 reference is
/// unusable for a row (its sum of squares overflows, e.g. 32 values of 1e20, or underflows, e.g. values of 1e-30,
/// while the float64 answer fits float32 comfortably) that row is compared to float64 with a relative tolerance
/// instead (<see cref="ErrorRule.CheckRelative"/>): 1e-5 for the sums and the gradient, exact for L0 and Max.</para>
/// Shapes: R rows, F features.
/// </summary>
public abstract class RandomisedFeatureNormsTests : BackendFixture
{
    /// <summary>Cases per CI run.</summary>
    protected abstract int CiCases { get; }
    /// <summary>Feature counts to draw from.</summary>
    protected abstract Gen<int> Features { get; }

    /// <summary>What a row holds.</summary>
    public enum RowKind { Gaussian, Constant, Zero, Negative, Spike, Sparse }

    /// <summary>Which norms the loss depends on in the backward.</summary>
    public enum Upstream { Both, L1Only, L2Only }

    /// <summary>One feature-norm problem.</summary>
    public sealed record NormsCase(int F, (RowKind Kind, float Scale)[] Rows, Upstream Upstream)
    {
        /// <inheritdoc />
        public override string ToString() =>
            $"[{Rows.Length}, {F}] rows {string.Join(", ", Rows.Select(r => $"{r.Kind} x{r.Scale:G3}"))}; backward {Upstream}";

        /// <summary>x [R, F] for the case.</summary>
        public float[] Data(int seed)
        {
            var x = TestData.Normal(Rows.Length * F, seed);
            for (var r = 0; r < Rows.Length; r++)
            {
                var row = x.AsSpan(r * F, F);
                var (kind, scale) = Rows[r];
                for (var f = 0; f < F; f++)
                    row[f] = kind switch
                    {
                        RowKind.Gaussian => row[f] * scale,
                        RowKind.Constant => scale,
                        RowKind.Zero => 0f,
                        RowKind.Negative => -Math.Abs(row[f]) * scale,
                        RowKind.Spike => f == F / 2 ? scale : row[f],
                        _ => Math.Abs(row[f]) > 1.5f ? row[f] * scale : 0f,
                    };
            }
            return x;
        }
    }

    private Gen<NormsCase> Cases =>
        from f in Features
        from rows in Gen.Select(OneOf(Enum.GetValues<RowKind>()), LogUniform(-30, 30)).Array[1, 6]
        from upstream in OneOf(Enum.GetValues<Upstream>())
        select new NormsCase(f, rows, upstream);

    private void Check(NormsCase c, int seed)
    {
        int rows = c.Rows.Length, features = c.F;
        var x = c.Data(seed);
        var xd = TestData.ToDouble(x);
        var r64 = FeatureNormsReference.Forward(xd, rows, features);
        var r32 = FeatureNormsReference.Forward(x, rows, features);
        using var t = Device.FromArray(x, rows, features);
        using var o = FeatureNorms.Forward(t);
        var actual = new[] { o.L1.ToArray(), o.L2.ToArray(), o.L0.ToArray(), o.Max.ToArray(), o.Nan.ToArray() };
        var reference = new[] { r64.L1, r64.L2, r64.L0, r64.Max, r64.Nan };
        var naive = new[] { r32.L1, r32.L2, r32.L0, r32.Max, r32.Nan };
        string[] names = ["L1", "L2", "L0", "Max", "NAN"];

        var dL1 = c.Upstream == Upstream.L2Only ? null : TestData.Normal(rows, seed + 1);
        var dL2 = c.Upstream == Upstream.L1Only ? null : TestData.Normal(rows, seed + 2);
        using var g1 = dL1 is null ? null : Device.FromArray(dL1, rows);
        using var g2 = dL2 is null ? null : Device.FromArray(dL2, rows);
        using var dx = FeatureNorms.Backward(t, o, g1, g2);
        var dxActual = dx.ToArray();
        var dx64 = FeatureNormsReference.Backward(xd, rows, features, dL1 is null ? null : TestData.ToDouble(dL1),
            dL2 is null ? null : TestData.ToDouble(dL2));
        var dx32 = FeatureNormsReference.Backward(x, rows, features, dL1, dL2);

        var failures = new StringBuilder();
        for (var r = 0; r < rows; r++)
        {
            var scale = 0.0;
            for (var f = 0; f < features; f++) scale = Math.Max(scale, Math.Abs(xd[r * features + f]));
            if (scale == 0) scale = 1;
            var usable = NaiveUsable(r64, r32, r);
            for (var k = 0; k < names.Length; k++)
            {
                var what = $"row {r} {names[k]}{(usable ? "" : " (naive float32 unusable: relative to float64)")}";
                ErrorVerdict verdict = usable
                    ? ErrorRule.Check2x(what, [actual[k][r]], [reference[k][r]], [naive[k][r]],
                        k == 2 ? 1e-6 : 1e-6 * Math.Max(scale, Math.Abs(reference[k][r])))
                    : ErrorRule.CheckRelative(what, [actual[k][r]], [reference[k][r]], names[k] is "L0" or "Max" ? 0 : 1e-5);
                if (!verdict.Passed) failures.AppendLine(verdict.Message);
            }
            var upstream = Math.Abs(dL1?[r] ?? 0) + Math.Abs(dL2?[r] ?? 0);
            var span = new Range(r * features, (r + 1) * features);
            var dxWhat = $"row {r} dx{(usable ? "" : " (naive float32 unusable: relative to float64)")}";
            var dxVerdict = usable
                ? ErrorRule.Check2x(dxWhat, dxActual[span], dx64[span], dx32[span], 1e-6 * upstream)
                : ErrorRule.CheckRelative(dxWhat, dxActual[span], dx64[span], 1e-5, 1e-6 * upstream);
            if (!dxVerdict.Passed) failures.AppendLine(dxVerdict.Message);
        }
        if (failures.Length > 0) Assert.Fail(failures.ToString().TrimEnd());
    }

    // The naive float32 norms of row r are usable as the 2x rule's yardstick when they are finite and within 1e-3 of
    // float64: an overflowed or underflowed sum of squares is neither.
    private static bool NaiveUsable(FeatureNormsReferenceOutput<double> r64, FeatureNormsReferenceOutput<float> r32, int r)
    {
        static bool Close(float naive, double exact) =>
            float.IsFinite(naive) && Math.Abs(naive - exact) <= 1e-3 * Math.Abs(exact);
        return Close(r32.L1[r], r64.L1[r]) && Close(r32.L2[r], r64.L2[r]) && Close(r32.Nan[r], r64.Nan[r]);
    }

    /// <summary>Forward (every norm) and backward (dx) on every drawn case.</summary>
    [Test]
    public void MatchesReferenceOnRandomCases() => Run($"{Backend} feature norms", Cases, Check, CiCases);
}

/// <summary>Random feature-norm cases on the Managed backend, F up to 4099.</summary>
public sealed class RandomisedManagedFeatureNormsTests : RandomisedFeatureNormsTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int CiCases => 300;
    /// <inheritdoc />
    protected override Gen<int> Features =>
        Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 2000] : OneOf(1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 64, 255, 256, 257, 4099));
}

/// <summary>Random feature-norm cases on the ILGPU CPU simulator.</summary>
public sealed class RandomisedIlgpuCpuFeatureNormsTests : RandomisedFeatureNormsTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int CiCases => 30;
    /// <inheritdoc />
    protected override Gen<int> Features =>
        Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 300] : OneOf(1, 2, 31, 32, 33, 257, 1025));
}
