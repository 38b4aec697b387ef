using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// Linear forward and backward on each backend against the float64 reference with the 2x rule (DESIGN.md section 7).
/// Shapes: T tokens, I inputs, O outputs; x [T, I], W [O, I], b [O], y and dy [T, O].
/// </summary>
public abstract class LinearBackendTests : BackendFixture
{
    /// <summary>The (T, I, O) shapes this backend is tested at.</summary>
    protected abstract IEnumerable<(int T, int I, int O)> Shapes();

    [Test]
    public void ForwardAndBackwardMatchReference([Values] bool bias)
    {
        var seed = 1;
        foreach (var (t, i, o) in Shapes())
            Check(t, i, o, bias, seed++);
    }

    /// <summary>The backward gives bitwise-equal gradients when repeated (no atomics, fixed summation order).</summary>
    [Test]
    public void BackwardIsDeterministic()
    {
        var (t, i, o) = Shapes().Last();
        using var x = Device.FromArray(TestData.Normal(t * i, 5), t, i);
        using var w = Device.FromArray(TestData.Normal(o * i, 6), o, i);
        using var dy = Device.FromArray(TestData.Normal(t * o, 7), t, o);
        using var first = Linear.Backward(dy, x, w, hasBias: true);
        var (dx, dw, db) = (first.DX.ToArray(), first.DW.ToArray(), first.DB!.ToArray());
        for (var r = 0; r < 3; r++)
        {
            Linear.Backward(dy, x, w, hasBias: true, first);
            Assert.That(first.DX.ToArray(), Is.EqualTo(dx));
            Assert.That(first.DW.ToArray(), Is.EqualTo(dw));
            Assert.That(first.DB!.ToArray(), Is.EqualTo(db));
        }
    }

    private void Check(int t, int i, int o, bool bias, int seed)
    {
        var what = $"T={t} I={i} O={o} bias={bias}";
        var xs = TestData.Normal(t * i, seed);
        var ws = TestData.Normal(o * i, seed + 1000, 1f / MathF.Sqrt(i));
        var bs = bias ? TestData.Normal(o, seed + 2000) : null;
        var dys = TestData.Normal(t * o, seed + 3000);
        using var x = Device.FromArray(xs, t, i);
        using var w = Device.FromArray(ws, o, i);
        using var b = bs is null ? null : Device.FromArray(bs, o);
        using var dy = Device.FromArray(dys, t, o);
        using var y = Device.Zeros(t, o);
        Linear.Forward(x, w, b, y);
        using var g = Linear.Backward(dy, x, w, bias);

        var refY = LinearReference.Forward(TestData.ToDouble(xs), TestData.ToDouble(ws), bs is null ? null : TestData.ToDouble(bs), t, i, o);
        Assert2x($"y ({what})", y.ToArray(), refY, LinearReference.Forward(xs, ws, bs, t, i, o),
            s => LinearReference.Forward(TestData.PerturbUlp(xs, s), TestData.PerturbUlp(ws, s + 1), TestData.PerturbUlpOrNull(bs, s + 2), t, i, o));

        var refG = LinearReference.Backward(TestData.ToDouble(dys), TestData.ToDouble(xs), TestData.ToDouble(ws), t, i, o);
        var naiveG = LinearReference.Backward(dys, xs, ws, t, i, o);
        LinearReferenceGradients<float> Perturbed(int s) =>
            LinearReference.Backward(TestData.PerturbUlp(dys, s), TestData.PerturbUlp(xs, s + 1), TestData.PerturbUlp(ws, s + 2), t, i, o);
        Assert2x($"dx ({what})", g.DX.ToArray(), refG.DX, naiveG.DX, s => Perturbed(s).DX);
        Assert2x($"dW ({what})", g.DW.ToArray(), refG.DW, naiveG.DW, s => Perturbed(s).DW);
        if (bias) Assert2x($"db ({what})", g.DB!.ToArray(), refG.DB, naiveG.DB, s => Perturbed(s).DB);
        else Assert.That(g.DB, Is.Null, what);
    }

    private static void Assert2x(string what, float[] actual, double[] reference, float[] naive, Func<int, float[]> perturbedNaive)
    {
        var verdict = ErrorRule.Check2xResampled(what, actual, reference, naive, ErrorRule.ScaledFloor(reference),
            () => Enumerable.Range(0, 4).Select(k => perturbedNaive(100 + 10 * k)));
        if (!verdict.Passed) Assert.Fail(verdict.Message);
    }
}

/// <summary>The Managed backend: every T, I, O in {1, 7, 33, 127} and one shape of several GEMM tiles and K blocks.</summary>
[TestFixture]
public sealed class ManagedLinearTests : LinearBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override IEnumerable<(int T, int I, int O)> Shapes()
    {
        int[] sizes = [1, 7, 33, 127];
        foreach (var t in sizes)
        foreach (var i in sizes)
        foreach (var o in sizes)
            yield return (t, i, o);
        yield return (300, 257, 511);
    }

    /// <summary>After warm-up, a forward and backward of a multi-tile shape allocate less than 1 KB together.</summary>
    [Test]
    public void RepeatedCallsDoNotAllocate()
    {
        const int t = 300, i = 257, o = 511;
        using var x = Device.FromArray(TestData.Normal(t * i, 1), t, i);
        using var w = Device.FromArray(TestData.Normal(o * i, 2), o, i);
        using var b = Device.FromArray(TestData.Normal(o, 3), o);
        using var dy = Device.FromArray(TestData.Normal(t * o, 4), t, o);
        using var y = Device.Zeros(t, o);
        using var g = new LinearGradients(Device.Zeros(t, i), Device.Zeros(o, i), Device.Zeros(o));
        for (var r = 0; r < 3; r++)
        {
            Linear.Forward(x, w, b, y);
            Linear.Backward(dy, x, w, hasBias: true, g);
        }
        var before = GC.GetTotalAllocatedBytes(precise: true);
        Linear.Forward(x, w, b, y);
        Linear.Backward(dy, x, w, hasBias: true, g);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        TestContext.Out.WriteLine($"warm forward + backward allocated {allocated} bytes");
        Assert.That(allocated, Is.LessThan(1024), $"a warm forward + backward allocated {allocated} bytes");
    }
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator (one OS thread per GPU thread): tiny shapes only.</summary>
[TestFixture]
public sealed class IlgpuCpuLinearTests : LinearBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override IEnumerable<(int T, int I, int O)> Shapes()
    {
        yield return (1, 1, 1);
        yield return (7, 33, 5);
        yield return (70, 19, 66); // two tiles in M and in N, a K edge inside one 16-step
    }
}

/// <summary>The linear layer on a real GPU (CUDA): larger, awkward shapes. Skipped, never passed, without a GPU.</summary>
[Category("Gpu")]
public sealed class CudaLinearTests : LinearBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override IEnumerable<(int T, int I, int O)> Shapes()
    {
        int[] sizes = [1, 7, 33, 127];
        foreach (var t in sizes)
        foreach (var i in sizes)
        foreach (var o in sizes)
            yield return (t, i, o);
        yield return (300, 257, 511);
        yield return (1025, 768, 2304);
    }
}
