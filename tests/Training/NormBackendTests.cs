using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>LayerNorm and RmsNorm on each backend against the float64 reference (2x rule), and their refusals.</summary>
public abstract class NormBackendTests : BackendFixture
{
    /// <summary>(T, C) shapes this backend runs; the awkward sizes 1, 7, 33, 127.</summary>
    protected abstract IEnumerable<(int Rows, int Channels)> Shapes();

    /// <summary>Inputs of one case: x of the given scale around an offset of 3 scales, weight near 1, bias and dy normal.</summary>
    private static (float[] X, float[] W, float[] B, float[] Dy) Inputs(int rows, int channels, int seed, float scale)
    {
        var x = TrainingCheck.Normal(rows * channels, seed, scale, 3f * scale);
        var w = TrainingCheck.Normal(channels, seed + 1, 0.5f, 1f);
        var b = TrainingCheck.Normal(channels, seed + 2);
        var dy = TrainingCheck.Normal(rows * channels, seed + 3);
        return (x, w, b, dy);
    }

    // The magnitudes each shape is run at (eps below the rows' variance so it does not hide them); the extremes keep
    // every naive float32 sum of squares finite and normal.
    private static IEnumerable<(float Scale, float Eps)> Magnitudes()
    {
        yield return (1f, 1e-5f);
        yield return (1e15f, 1e-5f);
        yield return (1e-15f, 1e-36f);
    }

    [Test]
    public void LayerNormMatchesReference()
    {
        foreach (var (rows, channels) in Shapes())
        foreach (var (scale, eps) in Magnitudes())
        {
            var (x, w, b, dy) = Inputs(rows, channels, rows * 131 + channels, scale);
            var what = $"LayerNorm [{rows}, {channels}] x~{scale:E0}";
            var r64 = LayerNormReference.Forward(TrainingCheck.D(x), TrainingCheck.D(w), TrainingCheck.D(b), rows, channels, (double)eps);
            var r32 = LayerNormReference.Forward(x, w, b, rows, channels, eps);
            using var tx = Device.FromArray(x, rows, channels);
            using var tw = Device.FromArray(w, channels);
            using var tb = Device.FromArray(b, channels);
            using var tdy = Device.FromArray(dy, rows, channels);
            using var o = LayerNorm.Forward(tx, tw, tb, eps);
            TrainingCheck.Assert2x($"{what} y", o.Y.ToArray(), r64.Y, r32.Y);
            TrainingCheck.Assert2x($"{what} mean", o.Mean.ToArray(), r64.Mean, r32.Mean);
            TrainingCheck.Assert2x($"{what} rstd", o.Rstd.ToArray(), r64.Rstd, r32.Rstd);

            var g64 = LayerNormReference.Backward(TrainingCheck.D(dy), TrainingCheck.D(x), TrainingCheck.D(w), r64.Mean, r64.Rstd, rows, channels);
            var g32 = LayerNormReference.Backward(dy, x, w, r32.Mean, r32.Rstd, rows, channels);
            using var g = LayerNorm.Backward(tdy, tx, tw, o);
            TrainingCheck.Assert2x($"{what} dx", g.DX.ToArray(), g64.DX, g32.DX, TermScale(dy, w, r64.Rstd, channels));
            TrainingCheck.Assert2x($"{what} dweight", g.DWeight.ToArray(), g64.DWeight, g32.DWeight);
            TrainingCheck.Assert2x($"{what} dbias", g.DBias.ToArray(), g64.DBias, g32.DBias);
        }
    }

    [Test]
    public void RmsNormMatchesReference()
    {
        foreach (var (rows, channels) in Shapes())
        foreach (var (scale, eps) in Magnitudes())
        {
            var (x, w, _, dy) = Inputs(rows, channels, rows * 137 + channels, scale);
            var what = $"RmsNorm [{rows}, {channels}] x~{scale:E0}";
            var r64 = RmsNormReference.Forward(TrainingCheck.D(x), TrainingCheck.D(w), rows, channels, (double)eps);
            var r32 = RmsNormReference.Forward(x, w, rows, channels, eps);
            using var tx = Device.FromArray(x, rows, channels);
            using var tw = Device.FromArray(w, channels);
            using var tdy = Device.FromArray(dy, rows, channels);
            using var o = RmsNorm.Forward(tx, tw, eps);
            TrainingCheck.Assert2x($"{what} y", o.Y.ToArray(), r64.Y, r32.Y);
            TrainingCheck.Assert2x($"{what} rstd", o.Rstd.ToArray(), r64.Rstd, r32.Rstd);

            var g64 = RmsNormReference.Backward(TrainingCheck.D(dy), TrainingCheck.D(x), TrainingCheck.D(w), r64.Rstd, rows, channels);
            var g32 = RmsNormReference.Backward(dy, x, w, r32.Rstd, rows, channels);
            using var g = RmsNorm.Backward(tdy, tx, tw, o);
            TrainingCheck.Assert2x($"{what} dx", g.DX.ToArray(), g64.DX, g32.DX, TermScale(dy, w, r64.Rstd, channels));
            TrainingCheck.Assert2x($"{what} dweight", g.DWeight.ToArray(), g64.DWeight, g32.DWeight);
        }
    }

    /// <summary>Preallocated outputs are written in place (no new tensors) and repeated calls are bitwise equal.</summary>
    [Test]
    public void PreallocatedOutputsAreFilledAndRepeatable()
    {
        int rows = 7, channels = 33;
        var (x, w, b, dy) = Inputs(rows, channels, 5, 1f);
        using var tx = Device.FromArray(x, rows, channels);
        using var tw = Device.FromArray(w, channels);
        using var tb = Device.FromArray(b, channels);
        using var tdy = Device.FromArray(dy, rows, channels);
        using var o = new LayerNormOutput(Device.Zeros(rows, channels), Device.Zeros(rows), Device.Zeros(rows));
        using var g = new LayerNormGradients(Device.Zeros(rows, channels), Device.Zeros(channels), Device.Zeros(channels));
        Assert.That(LayerNorm.Forward(tx, tw, tb, outputs: o), Is.SameAs(o));
        Assert.That(LayerNorm.Backward(tdy, tx, tw, o, g), Is.SameAs(g));
        var first = (o.Y.ToArray(), g.DX.ToArray(), g.DWeight.ToArray(), g.DBias.ToArray());
        LayerNorm.Forward(tx, tw, tb, outputs: o);
        LayerNorm.Backward(tdy, tx, tw, o, g);
        Assert.That((o.Y.ToArray(), g.DX.ToArray(), g.DWeight.ToArray(), g.DBias.ToArray()), Is.EqualTo(first));

        using var ro = new RmsNormOutput(Device.Zeros(rows, channels), Device.Zeros(rows));
        using var rg = new RmsNormGradients(Device.Zeros(rows, channels), Device.Zeros(channels));
        Assert.That(RmsNorm.Forward(tx, tw, outputs: ro), Is.SameAs(ro));
        Assert.That(RmsNorm.Backward(tdy, tx, tw, ro, rg), Is.SameAs(rg));
        var rfirst = (ro.Y.ToArray(), rg.DX.ToArray(), rg.DWeight.ToArray());
        RmsNorm.Forward(tx, tw, outputs: ro);
        RmsNorm.Backward(tdy, tx, tw, ro, rg);
        Assert.That((ro.Y.ToArray(), rg.DX.ToArray(), rg.DWeight.ToArray()), Is.EqualTo(rfirst));
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        int rows = 2, channels = 3;
        using var x = Device.FromArray([1f, 2f, 4f, -1f, 0f, 5f], rows, channels);
        using var w = Device.FromArray([1f, 1f, 1f], channels);
        using var b = Device.Zeros(channels);
        using var dy = Device.FromArray([1f, -1f, 2f, 0.5f, 1f, 3f], rows, channels);
        using var o = new LayerNormOutput(Device.FromArray(Sevens(6), rows, channels), Device.FromArray(Sevens(2), rows), Device.FromArray(Sevens(2), rows));
        using var ro = new RmsNormOutput(Device.FromArray(Sevens(6), rows, channels), Device.FromArray(Sevens(2), rows));

        void Untouched()
        {
            Assert.That(o.Y.ToArray(), Is.EqualTo(Sevens(6)), "a refused call leaves outputs untouched");
            Assert.That(o.Mean.ToArray().Concat(o.Rstd.ToArray()), Is.EqualTo(Sevens(4)));
            Assert.That(ro.Y.ToArray().Concat(ro.Rstd.ToArray()), Is.EqualTo(Sevens(8)));
        }

        using var rank1 = Device.Zeros(6);
        Refused(() => LayerNorm.Forward(rank1, w, b, outputs: o), "x", "[6]", "rank 2");
        Refused(() => RmsNorm.Forward(rank1, w, outputs: ro), "x", "[6]", "rank 2");
        using var w4 = Device.Zeros(4);
        Refused(() => LayerNorm.Forward(x, w4, b, outputs: o), "weight", "[4]", "[3]");
        Refused(() => LayerNorm.Forward(x, w, w4, outputs: o), "bias", "[4]", "[3]");
        Refused(() => RmsNorm.Forward(x, w4, outputs: ro), "weight", "[4]", "[3]");
        Refused(() => LayerNorm.Forward(x, w, b, 0f, o), "eps", "0");
        Refused(() => RmsNorm.Forward(x, w, float.NaN, ro), "eps", "NaN");
        using var nan = Device.FromArray([1f, 2f, float.NaN, 0f, 0f, 0f], rows, channels);
        Refused(() => LayerNorm.Forward(nan, w, b, outputs: o), "x", "NaN", "flat index 2");
        Refused(() => RmsNorm.Forward(nan, w, outputs: ro), "x", "NaN", "flat index 2");
        using var inf = Device.FromArray([1f, float.PositiveInfinity, 1f], channels);
        Refused(() => LayerNorm.Forward(x, inf, b, outputs: o), "weight", "Infinity", "flat index 1");
        Refused(() => LayerNorm.Forward(x, w, inf, outputs: o), "bias", "Infinity", "flat index 1");
        using var aliased = new LayerNormOutput(x, Device.Zeros(rows), Device.Zeros(rows));
        Refused(() => LayerNorm.Forward(x, w, b, outputs: aliased), "outputs.Y", "also an input");
        using var wrongMean = new LayerNormOutput(Device.Zeros(rows, channels), Device.Zeros(3), Device.Zeros(rows));
        Refused(() => LayerNorm.Forward(x, w, b, outputs: wrongMean), "outputs.Mean", "[3]", "[2]");
        using var managed = Device.Create(Backend.Managed);
        using var elsewhere = managed.FromArray([1f, 1f, 1f], channels);
        if (Device.Backend != Backend.Managed)
            Refused(() => LayerNorm.Forward(x, elsewhere, b, outputs: o), "weight", "lives on");
        Untouched();

        // The backward: its inputs, the saved statistics, and outputs that alias inputs.
        using var fwd = LayerNorm.Forward(x, w, b);
        using var rfwd = RmsNorm.Forward(x, w);
        using var g = new LayerNormGradients(Device.FromArray(Sevens(6), rows, channels), Device.FromArray(Sevens(3), channels), Device.FromArray(Sevens(3), channels));
        using var rg = new RmsNormGradients(Device.FromArray(Sevens(6), rows, channels), Device.FromArray(Sevens(3), channels));
        using var dy3 = Device.Zeros(3, channels);
        Refused(() => LayerNorm.Backward(dy3, x, w, fwd, g), "dy", "[3, 3]", "[2, 3]");
        Refused(() => RmsNorm.Backward(dy3, x, w, rfwd, rg), "dy", "[3, 3]", "[2, 3]");
        using var dyNan = Device.FromArray([1f, 1f, 1f, 1f, float.NegativeInfinity, 1f], rows, channels);
        Refused(() => LayerNorm.Backward(dyNan, x, w, fwd, g), "dy", "-Infinity", "flat index 4");
        using var badStats = new LayerNormOutput(Device.Zeros(rows, channels), Device.FromArray([0f, float.NaN], rows), Device.FromArray([1f, 1f], rows));
        Refused(() => LayerNorm.Backward(dy, x, w, badStats, g), "forward.Mean", "NaN", "flat index 1");
        using var badRstd = new LayerNormOutput(Device.Zeros(rows, channels), Device.Zeros(rows), Device.FromArray([float.PositiveInfinity, 1f], rows));
        Refused(() => LayerNorm.Backward(dy, x, w, badRstd, g), "forward.Rstd", "Infinity", "flat index 0");
        using var badRmsRstd = new RmsNormOutput(Device.Zeros(rows, channels), Device.FromArray([1f, float.NaN], rows));
        Refused(() => RmsNorm.Backward(dy, x, w, badRmsRstd, rg), "forward.Rstd", "NaN", "flat index 1");
        using var shortStats = new RmsNormOutput(Device.Zeros(rows, channels), Device.Zeros(3));
        Refused(() => RmsNorm.Backward(dy, x, w, shortStats, rg), "forward.Rstd", "[3]", "[2]");
        using var aliasDx = new LayerNormGradients(dy, Device.Zeros(channels), Device.Zeros(channels));
        Refused(() => LayerNorm.Backward(dy, x, w, fwd, aliasDx), "gradients.DX", "also an input");
        using var aliasDw = new RmsNormGradients(Device.Zeros(rows, channels), w);
        Refused(() => RmsNorm.Backward(dy, x, w, rfwd, aliasDw), "gradients.DWeight", "also an input");
        Assert.That(g.DX.ToArray().Concat(g.DWeight.ToArray()).Concat(g.DBias.ToArray()), Is.EqualTo(Sevens(12)));
        Assert.That(rg.DX.ToArray().Concat(rg.DWeight.ToArray()), Is.EqualTo(Sevens(9)));
    }

    // max |rstd_t w_c dy_tc|: the size of the terms dx is formed from, which cancel to 0 at C = 1.
    private static double TermScale(float[] dy, float[] w, double[] rstd, int channels)
    {
        var max = 0.0;
        for (var i = 0; i < dy.Length; i++) max = Math.Max(max, Math.Abs(rstd[i / channels] * w[i % channels] * dy[i]));
        return max;
    }

    private static float[] Sevens(int n) => Enumerable.Repeat(7f, n).ToArray();

    private static void Refused(Action call, string parameter, params string[] inMessage)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(parameter), e.Message);
        foreach (var s in inMessage) Assert.That(e.Message, Does.Contain(s));
    }
}

/// <summary>The norms on the Managed backend: every pair of awkward sizes, and C = 1000.</summary>
public sealed class ManagedNormTests : NormBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override IEnumerable<(int Rows, int Channels)> Shapes()
    {
        int[] sizes = [1, 7, 33, 127];
        foreach (var t in sizes)
        foreach (var c in sizes)
            yield return (t, c);
        yield return (40, 1000);
    }
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator, tiny shapes.</summary>
public sealed class IlgpuCpuNormTests : NormBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override IEnumerable<(int Rows, int Channels)> Shapes() => [(1, 1), (7, 33), (33, 7), (3, 127)];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaNormTests : NormBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override IEnumerable<(int Rows, int Channels)> Shapes() => [(1, 1), (7, 33), (127, 127), (64, 1000), (1024, 768)];
}
