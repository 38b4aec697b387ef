using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// The causal depthwise Conv1d on each backend against the float64 reference (2x rule), its determinism and its
/// refusals. Shapes: B batch, T time, C channels, K width; x, y, dy, dx [B, T, C]; weight, dweight [C, K]; bias [C].
/// </summary>
public abstract class Conv1dBackendTests : BackendFixture
{
    /// <summary>(B, T, C, K) shapes this backend runs.</summary>
    protected abstract IEnumerable<(int B, int T, int C, int K)> Shapes();

    /// <summary>(x scale, weight scale) pairs each shape runs at: ordinary, and extreme magnitudes whose products stay normal.</summary>
    protected virtual IEnumerable<(float X, float W)> Magnitudes() => [(1f, 1f), (1e15f, 1f), (1e-15f, 1f), (1f, 1e-20f)];

    /// <summary>Inputs of one case: x and weight at their scales, bias and dy normal.</summary>
    internal static (float[] X, float[] W, float[] Bias, float[] Dy) Inputs(int batch, int time, int channels, int width, int seed,
        float xScale = 1f, float wScale = 1f)
    {
        var n = batch * time * channels;
        return (TrainingCheck.Normal(n, seed, xScale), TrainingCheck.Normal(channels * width, seed + 1, wScale / MathF.Sqrt(width)),
            TrainingCheck.Normal(channels, seed + 2), TrainingCheck.Normal(n, seed + 3));
    }

    [Test]
    public void ForwardAndBackwardMatchReference([Values] bool bias)
    {
        foreach (var (batch, time, channels, width) in Shapes())
        foreach (var (xs, ws) in Magnitudes())
            Check(batch, time, channels, width, bias, xs, ws, seed: batch * 1009 + time * 101 + channels * 7 + width);
    }

    /// <summary>One case: y, dx, dweight and (with a bias) dbias within the 2x rule of the float64 reference.</summary>
    protected void Check(int batch, int time, int channels, int width, bool bias, float xScale, float wScale, int seed)
    {
        var (x, w, b, dy) = Inputs(batch, time, channels, width, seed, xScale, wScale);
        var bs = bias ? b : null;
        var what = $"Conv1d B={batch} T={time} C={channels} K={width} bias={bias} x~{xScale:E0} w~{wScale:E0}";
        using var tx = Device.FromArray(x, batch, time, channels);
        using var tw = Device.FromArray(w, channels, width);
        using var tb = bias ? Device.FromArray(b, channels) : null;
        using var tdy = Device.FromArray(dy, batch, time, channels);
        using var y = Conv1d.Forward(tx, tw, tb);
        var refY = Conv1dReference.Forward(TrainingCheck.D(x), TrainingCheck.D(w), bs is null ? null : TrainingCheck.D(bs), batch, time, channels, width);
        Assert2x($"{what} y", y.ToArray(), refY, Conv1dReference.Forward(x, w, bs, batch, time, channels, width),
            s => Conv1dReference.Forward(TestData.PerturbUlp(x, s), TestData.PerturbUlp(w, s + 1), TestData.PerturbUlpOrNull(bs, s + 2), batch, time, channels, width));

        using var g = Conv1d.Backward(tdy, tx, tw, bias);
        var refG = Conv1dReference.Backward(TrainingCheck.D(dy), TrainingCheck.D(x), TrainingCheck.D(w), batch, time, channels, width);
        var naive = Conv1dReference.Backward(dy, x, w, batch, time, channels, width);
        (float[] DX, float[] DWeight, float[] DBias) Perturbed(int s) =>
            Conv1dReference.Backward(TestData.PerturbUlp(dy, s), TestData.PerturbUlp(x, s + 1), TestData.PerturbUlp(w, s + 2), batch, time, channels, width);
        Assert2x($"{what} dx", g.DX.ToArray(), refG.DX, naive.DX, s => Perturbed(s).DX);
        Assert2x($"{what} dweight", g.DWeight.ToArray(), refG.DWeight, naive.DWeight, s => Perturbed(s).DWeight);
        if (bias) Assert2x($"{what} dbias", g.DBias!.ToArray(), refG.DBias, naive.DBias, s => Perturbed(s).DBias);
        else Assert.That(g.DBias, Is.Null, what);
    }

    /// <summary>
    /// The 2x rule with the 1e-6 floor scaled by the output's largest |reference| (as <see cref="TrainingCheck.Assert2x"/>),
    /// resampling the naive float32 run on ulp-moved inputs when the plain run was lucky (<see cref="ErrorRule.WorstNaive"/>):
    /// the backends multiply-add with FMA and the naive reference does not, so a few-element output can meet a naive run
    /// that happened to round exactly.
    /// </summary>
    internal static void Assert2x(string what, float[] actual, double[] reference, float[] naive, Func<int, float[]> perturbedNaive)
    {
        var max = 0.0;
        foreach (var r in reference) max = Math.Max(max, Math.Abs(r));
        var verdict = ErrorRule.Check2xResampled(what, actual, reference, naive, Math.Max(1e-6 * max, double.Epsilon),
            () => Enumerable.Range(0, 4).Select(k => perturbedNaive(100 + 10 * k)));
        if (!verdict.Passed) Assert.Fail(verdict.Message);
    }

    /// <summary>With T &lt; K every output sees fewer than K inputs; x at negative times must count as zero.</summary>
    [Test]
    public void ShortSequencesSeeOnlyThePast()
    {
        // B = 1, T = 2, C = 1, K = 4: y[0] = w3 x0 + b, y[1] = w2 x0 + w3 x1 + b; dx[0] = w3 dy0 + w2 dy1, dx[1] = w3 dy1.
        using var x = Device.FromArray([2f, 3f], 1, 2, 1);
        using var w = Device.FromArray([100f, 10f, 5f, 1f], 1, 4);
        using var b = Device.FromArray([0.5f], 1);
        using var y = Conv1d.Forward(x, w, b);
        Assert.That(y.ToArray(), Is.EqualTo(new[] { 2.5f, 13.5f }));
        using var dy = Device.FromArray([1f, 2f], 1, 2, 1);
        using var g = Conv1d.Backward(dy, x, w, hasBias: true);
        Assert.That(g.DX.ToArray(), Is.EqualTo(new[] { 11f, 2f }));
        // dweight[j] = sum_t dy[t] x[t - 3 + j]: j = 3: 1*2 + 2*3 = 8; j = 2: 2*2 = 4; j = 0, 1: no x in range.
        Assert.That(g.DWeight.ToArray(), Is.EqualTo(new[] { 0f, 0f, 4f, 8f }));
        Assert.That(g.DBias!.ToArray(), Is.EqualTo(new[] { 3f }));
    }

    /// <summary>Preallocated outputs are written in place (no new tensors), overwritten (not accumulated), and repeated calls are bitwise equal.</summary>
    [Test]
    public void PreallocatedOutputsAreOverwrittenAndRepeatable()
    {
        var (batch, time, channels, width) = (2, 33, 7, 4);
        var (x, w, b, dy) = Inputs(batch, time, channels, width, 5);
        using var tx = Device.FromArray(x, batch, time, channels);
        using var tw = Device.FromArray(w, channels, width);
        using var tb = Device.FromArray(b, channels);
        using var tdy = Device.FromArray(dy, batch, time, channels);
        using var y = Device.FromArray(Sevens(batch * time * channels), batch, time, channels);
        using var g = new Conv1dGradients(Device.FromArray(Sevens(batch * time * channels), batch, time, channels),
            Device.FromArray(Sevens(channels * width), channels, width), Device.FromArray(Sevens(channels), channels));
        Assert.That(Conv1d.Forward(tx, tw, tb, y), Is.SameAs(y));
        Assert.That(Conv1d.Backward(tdy, tx, tw, hasBias: true, g), Is.SameAs(g));
        var first = (y.ToArray(), g.DX.ToArray(), g.DWeight.ToArray(), g.DBias!.ToArray());
        using var fresh = Conv1d.Backward(tdy, tx, tw, hasBias: true);
        Assert.That((g.DX.ToArray(), g.DWeight.ToArray(), g.DBias.ToArray()),
            Is.EqualTo((fresh.DX.ToArray(), fresh.DWeight.ToArray(), fresh.DBias!.ToArray())), "gradients overwrite, never accumulate");
        for (var r = 0; r < 3; r++)
        {
            Conv1d.Forward(tx, tw, tb, y);
            Conv1d.Backward(tdy, tx, tw, hasBias: true, g);
            Assert.That((y.ToArray(), g.DX.ToArray(), g.DWeight.ToArray(), g.DBias.ToArray()), Is.EqualTo(first));
        }
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        var (batch, time, channels, width) = (1, 2, 3, 4);
        using var x = Device.FromArray([1f, 2f, 4f, -1f, 0f, 5f], batch, time, channels);
        using var w = Device.FromArray(Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), channels, width);
        using var b = Device.FromArray([1f, 2f, 3f], channels);
        using var dy = Device.FromArray([1f, -1f, 2f, 0.5f, 1f, 3f], batch, time, channels);
        using var y = Device.FromArray(Sevens(6), batch, time, channels);
        using var g = new Conv1dGradients(Device.FromArray(Sevens(6), batch, time, channels), Device.FromArray(Sevens(12), channels, width),
            Device.FromArray(Sevens(3), channels));

        using var rank2 = Device.Zeros(2, 3);
        Refused(() => Conv1d.Forward(rank2, w, b, y), "x", "[2, 3]", "rank 3");
        using var w4 = Device.Zeros(4, width);
        Refused(() => Conv1d.Forward(x, w4, b, y), "weight", "[4, 4]", "[3, K]");
        using var w1 = Device.Zeros(channels);
        Refused(() => Conv1d.Forward(x, w1, b, y), "weight", "[3]", "[3, K]");
        using var b4 = Device.Zeros(4);
        Refused(() => Conv1d.Forward(x, w, b4, y), "bias", "[4]", "[3]");
        using var y2 = Device.Zeros(batch, 3, channels);
        Refused(() => Conv1d.Forward(x, w, b, y2), "y", "[1, 3, 3]", "[1, 2, 3]");
        Refused(() => Conv1d.Forward(x, w, b, x), "y", "also an input");
        using var nan = Device.FromArray([1f, 2f, float.NaN, 0f, 0f, 0f], batch, time, channels);
        Refused(() => Conv1d.Forward(nan, w, b, y), "x", "NaN", "flat index 2");
        using var wInf = Device.FromArray([.. Sevens(5), float.PositiveInfinity, .. Sevens(6)], channels, width);
        Refused(() => Conv1d.Forward(x, wInf, b, y), "weight", "Infinity", "flat index 5");
        using var bNan = Device.FromArray([0f, float.NaN, 0f], channels);
        Refused(() => Conv1d.Forward(x, w, bNan, y), "bias", "NaN", "flat index 1");
        using var managed = Device.Create(Backend.Managed);
        using var elsewhere = managed.FromArray(Sevens(12), channels, width);
        if (Device.Backend != Backend.Managed)
            Refused(() => Conv1d.Forward(x, elsewhere, b, y), "weight", "lives on");
        Assert.That(y.ToArray(), Is.EqualTo(Sevens(6)), "a refused forward leaves y untouched");

        using var dy3 = Device.Zeros(batch, 3, channels);
        Refused(() => Conv1d.Backward(dy3, x, w, true, g), "dy", "[1, 3, 3]", "[1, 2, 3]");
        using var dyInf = Device.FromArray([1f, 1f, 1f, 1f, float.NegativeInfinity, 1f], batch, time, channels);
        Refused(() => Conv1d.Backward(dyInf, x, w, true, g), "dy", "-Infinity", "flat index 4");
        Refused(() => Conv1d.Backward(dy, nan, w, true, g), "x", "NaN", "flat index 2");
        Refused(() => Conv1d.Backward(dy, x, wInf, true, g), "weight", "Infinity", "flat index 5");
        Refused(() => Conv1d.Backward(dy, x, w, false, g), "gradients", "hasBias is False");
        using var aliasDx = new Conv1dGradients(dy, Device.Zeros(channels, width), Device.Zeros(channels));
        Refused(() => Conv1d.Backward(dy, x, w, true, aliasDx), "gradients.DX", "also an input");
        using var aliasDw = new Conv1dGradients(Device.Zeros(batch, time, channels), w, Device.Zeros(channels));
        Refused(() => Conv1d.Backward(dy, x, w, true, aliasDw), "gradients.DWeight", "also an input");
        using var wrongDw = new Conv1dGradients(Device.Zeros(batch, time, channels), Device.Zeros(channels, 3), Device.Zeros(channels));
        Refused(() => Conv1d.Backward(dy, x, w, true, wrongDw), "gradients.DWeight", "[3, 3]", "[3, 4]");
        using var wrongDb = new Conv1dGradients(Device.Zeros(batch, time, channels), Device.Zeros(channels, width), Device.Zeros(2));
        Refused(() => Conv1d.Backward(dy, x, w, true, wrongDb), "gradients.DBias", "[2]", "[3]");
        Assert.That(g.DX.ToArray().Concat(g.DWeight.ToArray()).Concat(g.DBias!.ToArray()), Is.EqualTo(Sevens(21)),
            "a refused backward leaves the gradients untouched");
    }

    internal static float[] Sevens(int n) => Enumerable.Repeat(7f, n).ToArray();

    private static void Refused(Action call, string parameter, params string[] inMessage)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(parameter), e.Message);
        foreach (var s in inMessage) Assert.That(e.Message, Does.Contain(s));
    }
}

/// <summary>Conv1d on the Managed backend: every combination of the awkward sizes, and a large shape.</summary>
public sealed class ManagedConv1dTests : Conv1dBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C, int K)> Shapes()
    {
        foreach (var b in new[] { 1, 2 })
        foreach (var t in new[] { 1, 3, 7, 33, 127 })
        foreach (var c in new[] { 1, 7, 33, 127 })
        foreach (var k in new[] { 1, 4, 5 })
            yield return (b, t, c, k);
    }

    /// <summary>A Mamba-sized shape: several row tasks per batch and several dweight channel tasks, on the thread pool.</summary>
    [Test]
    public void LargeShapeMatchesReference([Values(4, 8)] int width) =>
        Check(2, 1024, 512, width, bias: true, 1f, 1f, seed: 77 + width);

    /// <summary>
    /// Every SIMD width on this machine (the widest accelerated one is what Conv1d uses; the narrower ones are what
    /// AVX2, SSE and NEON machines, or DOTNET_EnableAVX512=0 / DOTNET_EnableAVX2=0, run) gives the same results as the
    /// reference, channel tails included.
    /// </summary>
    [Test]
    [Category("Widths")]
    public void EveryVectorWidthMatchesReference([Values(128, 256, 512)] int bits)
    {
        var accelerated = SimdWidth.IsAccelerated(bits);
        var (batch, time, channels, width) = accelerated ? (2, 300, 203, 4) : (1, 9, 37, 4);
        var (x, w, b, dy) = Inputs(batch, time, channels, width, bits);
        var n = batch * time * channels;
        float[] y = new float[n], dx = new float[n], dw = new float[channels * width], db = new float[channels];
        Conv1dManaged.Forward(x, w, b, y, batch, time, channels, width, bits);
        Conv1dManaged.Backward(dy, x, w, dx, dw, db, batch, time, channels, width, bits);
        var what = $"Vector{bits} B={batch} T={time} C={channels} K={width}";
        var refY = Conv1dReference.Forward(TrainingCheck.D(x), TrainingCheck.D(w), TrainingCheck.D(b), batch, time, channels, width);
        var refG = Conv1dReference.Backward(TrainingCheck.D(dy), TrainingCheck.D(x), TrainingCheck.D(w), batch, time, channels, width);
        var naive = Conv1dReference.Backward(dy, x, w, batch, time, channels, width);
        TrainingCheck.Assert2x($"{what} y", y, refY, Conv1dReference.Forward(x, w, b, batch, time, channels, width));
        TrainingCheck.Assert2x($"{what} dx", dx, refG.DX, naive.DX);
        TrainingCheck.Assert2x($"{what} dweight", dw, refG.DWeight, naive.DWeight);
        TrainingCheck.Assert2x($"{what} dbias", db, refG.DBias, naive.DBias);
    }

    /// <summary>After warm-up, a forward and backward on the thread pool allocate little (pooled scratch, no arrays).</summary>
    [Test]
    public void RepeatedCallsAllocateLittle()
    {
        var (batch, time, channels, width) = (2, 256, 256, 4);
        var (x, w, b, dy) = Inputs(batch, time, channels, width, 9);
        using var tx = Device.FromArray(x, batch, time, channels);
        using var tw = Device.FromArray(w, channels, width);
        using var tb = Device.FromArray(b, channels);
        using var tdy = Device.FromArray(dy, batch, time, channels);
        using var y = Device.Zeros(batch, time, channels);
        using var g = new Conv1dGradients(Device.Zeros(batch, time, channels), Device.Zeros(channels, width), Device.Zeros(channels));
        for (var r = 0; r < 3; r++)
        {
            Conv1d.Forward(tx, tw, tb, y);
            Conv1d.Backward(tdy, tx, tw, true, g);
        }
        var before = GC.GetTotalAllocatedBytes(precise: true);
        Conv1d.Forward(tx, tw, tb, y);
        Conv1d.Backward(tdy, tx, tw, true, g);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        TestContext.Out.WriteLine($"warm forward + backward allocated {allocated} bytes");
        // Parallel.For's own bookkeeping is a few KB per loop; a [B, T, C] or [C, K] array would be 512 KB or 4 KB.
        Assert.That(allocated, Is.LessThan(32 * 1024), $"a warm forward + backward allocated {allocated} bytes");
    }
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator (an OS thread per GPU thread): small shapes, T &lt; K among them.</summary>
public sealed class IlgpuCpuConv1dTests : Conv1dBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C, int K)> Shapes() =>
        [(1, 1, 1, 1), (2, 3, 7, 4), (1, 7, 33, 5), (2, 33, 7, 4), (1, 3, 1, 5), (2, 7, 127, 1), (1, 127, 1, 4)];

    /// <inheritdoc />
    protected override IEnumerable<(float X, float W)> Magnitudes() => [(1f, 1f), (1e15f, 1f), (1e-15f, 1f)];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaConv1dTests : Conv1dBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C, int K)> Shapes() =>
        [(1, 1, 1, 1), (2, 3, 7, 4), (1, 7, 33, 5), (2, 127, 127, 4), (2, 1024, 1536, 4)];
}

/// <summary>The float64 reference's gradients against central finite differences of its own forward (DESIGN.md section 7).</summary>
[TestFixture]
public sealed class Conv1dReferenceTests
{

    [TestCase(1, 1, 1, 1)]
    [TestCase(1, 2, 3, 4)]
    [TestCase(2, 5, 3, 4)]
    [TestCase(2, 7, 2, 5)]
    [TestCase(1, 6, 4, 1)]
    public void GradientsMatchFiniteDifferences(int batch, int time, int channels, int width)
    {
        var (xf, wf, bf, dyf) = Conv1dBackendTests.Inputs(batch, time, channels, width, batch * 31 + time * 7 + channels + width);
        double[] x = TrainingCheck.D(xf), w = TrainingCheck.D(wf), b = TrainingCheck.D(bf), dy = TrainingCheck.D(dyf);
        double Loss()
        {
            var y = Conv1dReference.Forward(x, w, b, batch, time, channels, width);
            var s = 0.0;
            for (var i = 0; i < y.Length; i++) s += dy[i] * y[i];
            return s;
        }
        var (dx, dw, db) = Conv1dReference.Backward(dy, x, w, batch, time, channels, width);
        FiniteDifference.AssertClose("dx", dx, FiniteDifference.Numeric(x, Loss));
        FiniteDifference.AssertClose("dweight", dw, FiniteDifference.Numeric(w, Loss));
        FiniteDifference.AssertClose("dbias", db, FiniteDifference.Numeric(b, Loss));
    }

    /// <summary>The layout and tap order are PyTorch's: weight[c, K-1] multiplies x[t], weight[c, 0] multiplies x[t - K + 1].</summary>
    [Test]
    public void TapOrderIsPyTorchs()
    {
        // C = 2, K = 3, T = 4, x[t, c] = (t + 1) * (c == 0 ? 1 : 10); weight[0] = [100, 10, 1], weight[1] = [0, 0, 1].
        double[] x = [1, 10, 2, 20, 3, 30, 4, 40];
        double[] w = [100, 10, 1, 0, 0, 1];
        var y = Conv1dReference.Forward(x, w, null, 1, 4, 2, 3);
        // channel 0: y[t] = x[t] + 10 x[t-1] + 100 x[t-2]; channel 1 is the identity.
        Assert.That(y, Is.EqualTo(new double[] { 1, 10, 12, 20, 123, 30, 234, 40 }));
    }


}
