using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// The RG-LRU gate on each backend against the float64 reference (2x rule), at extremes (a -> 1, where 1 - a^2 is
/// clamped), bitwise repeatable, refusing bad input, and composed with LinearRecurrence against finite differences.
/// </summary>
public abstract class RgLruGateBackendTests : BackendFixture
{
    /// <summary>(B, T, C) shapes this backend runs; awkward sizes 1, 7, 33, 127.</summary>
    protected abstract IEnumerable<(int B, int T, int C)> Shapes();

    private sealed record Case(int B, int T, int C, float[] Gr, float[] Gi, float[] X, float[] Lambda, float[] Da, float[] Dgx, float Brake);

    private static Case Inputs(int b, int t, int c, int seed, float brake = RgLruGate.DefaultBrake)
    {
        var n = b * t * c;
        return new(b, t, c, TrainingCheck.Normal(n, seed, 2f), TrainingCheck.Normal(n, seed + 1, 2f), TrainingCheck.Normal(n, seed + 2),
            TrainingCheck.Normal(c, seed + 3, 2f, -1f), TrainingCheck.Normal(n, seed + 4), TrainingCheck.Normal(n, seed + 5), brake);
    }

    // Runs the case on the device and checks every output against the reference by the 2x rule.
    private void CheckCase(Case k, string what)
    {
        var (b, t, c) = (k.B, k.T, k.C);
        using var gr = Device.FromArray(k.Gr, b, t, c);
        using var gi = Device.FromArray(k.Gi, b, t, c);
        using var x = Device.FromArray(k.X, b, t, c);
        using var lambda = Device.FromArray(k.Lambda, c);
        using var da = Device.FromArray(k.Da, b, c, t);
        using var dgx = Device.FromArray(k.Dgx, b, c, t);
        using var o = RgLruGate.Forward(gr, gi, x, lambda, k.Brake);
        var f64 = RgLruGateReference.Forward(D(k.Gr), D(k.Gi), D(k.X), D(k.Lambda), b, t, c, (double)k.Brake);
        var f32 = RgLruGateReference.Forward(k.Gr, k.Gi, k.X, k.Lambda, b, t, c, k.Brake);
        var a = o.A.ToArray();
        var gx = o.GatedX.ToArray();
        Assert.That(a.All(v => v is >= 0f and <= 1f), $"{what}: a in [0, 1]: {string.Join(", ", a.Where(v => v is not (>= 0f and <= 1f)).Take(5))} on {Device.Backend}");
        TrainingCheck.Assert2x($"{what} a", a, f64.A, f32.A);
        TrainingCheck.Assert2x($"{what} gx", gx, f64.GatedX, f32.GatedX);

        using var g = RgLruGate.Backward(da, dgx, gr, gi, x, lambda, k.Brake);
        var g64 = RgLruGateReference.Backward(D(k.Da), D(k.Dgx), D(k.Gr), D(k.Gi), D(k.X), D(k.Lambda), b, t, c, (double)k.Brake);
        var g32 = RgLruGateReference.Backward(k.Da, k.Dgx, k.Gr, k.Gi, k.X, k.Lambda, b, t, c, k.Brake);
        var (dgr, dgi, dx, dl) = (g.DGr.ToArray(), g.DGi.ToArray(), g.DX.ToArray(), g.DLambda.ToArray());
        foreach (var (name, v) in new[] { ("dgr", dgr), ("dgi", dgi), ("dx", dx), ("dlambda", dl) })
        {
            var bad = Array.FindIndex(v, e => !float.IsFinite(e));
            Assert.That(bad, Is.EqualTo(-1), $"{what}: {name} finite; [{bad}] = {(bad < 0 ? 0 : v[bad])}");
        }
        var scales = TermScales(k);
        TrainingCheck.Assert2x($"{what} dgr", dgr, g64.DGr, g32.DGr, scales.DGr);
        TrainingCheck.Assert2x($"{what} dgi", dgi, g64.DGi, g32.DGi);
        TrainingCheck.Assert2x($"{what} dx", dx, g64.DX, g32.DX);
        TrainingCheck.Assert2x($"{what} dlambda", dl, g64.DLambda, g32.DLambda, scales.DLambda);
    }

    [Test]
    public void ForwardAndBackwardMatchReference()
    {
        foreach (var (b, t, c) in Shapes())
            CheckCase(Inputs(b, t, c, b * 1000 + t * 10 + c), $"RgLruGate [{b}, {t}, {c}]");
        var (b1, t1, c1) = Shapes().Last();
        CheckCase(Inputs(b1, t1, c1, 5, brake: 0.25f), $"RgLruGate [{b1}, {t1}, {c1}] brake 0.25");
    }

    /// <summary>
    /// lambda very negative (softplus underflows, a -> 1, 1 - a^2 at its 1e-30 floor), very positive (a -> 0), and gates
    /// saturated both ways: everything stays finite and within the 2x rule.
    /// </summary>
    [Test]
    public void ExtremesStayFiniteAndAccurate()
    {
        int b = 2, t = 5, c = 7;
        var k = Inputs(b, t, c, 77);
        float[] lambdas = [-1000f, -150f, -95f, -60f, -20f, 30f, 1e4f];
        lambdas.CopyTo(k.Lambda, 0);
        float[] gates = [-100f, -40f, -1e-3f, 0f, 40f, 100f, 1e30f];
        for (var i = 0; i < k.Gr.Length; i++)
        {
            k.Gr[i] = gates[i % gates.Length];
            k.Gi[i] = gates[(i * 3 + 1) % gates.Length];
        }
        CheckCase(k, "RgLruGate extremes");
        using var gr = Device.FromArray(k.Gr, b, t, c);
        using var gi = Device.FromArray(k.Gi, b, t, c);
        using var x = Device.FromArray(k.X, b, t, c);
        using var lambda = Device.FromArray(k.Lambda, c);
        using var o = RgLruGate.Forward(gr, gi, x, lambda);
        var a = o.A.ToArray();
        for (var tt = 0; tt < t; tt++) Assert.That(a[tt], Is.EqualTo(1f), "lambda = -1000: softplus underflows, a = 1");
        for (var tt = 0; tt < t; tt++) Assert.That(a[5 * t + tt], Is.EqualTo(0f).Or.LessThan(1e-30f), "lambda = 30: a -> 0");
    }

    [Test]
    public void PreallocatedOutputsAreFilledAndRepeatable()
    {
        var k = Inputs(2, 33, 7, 9);
        using var gr = Device.FromArray(k.Gr, 2, 33, 7);
        using var gi = Device.FromArray(k.Gi, 2, 33, 7);
        using var x = Device.FromArray(k.X, 2, 33, 7);
        using var lambda = Device.FromArray(k.Lambda, 7);
        using var da = Device.FromArray(k.Da, 2, 7, 33);
        using var dgx = Device.FromArray(k.Dgx, 2, 7, 33);
        using var o = new RgLruGateOutput(Device.Zeros(2, 7, 33), Device.Zeros(2, 7, 33));
        using var g = new RgLruGateGradients(Device.Zeros(2, 33, 7), Device.Zeros(2, 33, 7), Device.Zeros(2, 33, 7),
            Device.FromArray(Enumerable.Repeat(5f, 7).ToArray(), 7));
        Assert.That(RgLruGate.Forward(gr, gi, x, lambda, outputs: o), Is.SameAs(o));
        Assert.That(RgLruGate.Backward(da, dgx, gr, gi, x, lambda, gradients: g), Is.SameAs(g));
        var first = (o.A.ToArray(), o.GatedX.ToArray(), g.DGr.ToArray(), g.DGi.ToArray(), g.DX.ToArray(), g.DLambda.ToArray());
        RgLruGate.Forward(gr, gi, x, lambda, outputs: o);
        RgLruGate.Backward(da, dgx, gr, gi, x, lambda, gradients: g);
        Assert.That((o.A.ToArray(), o.GatedX.ToArray(), g.DGr.ToArray(), g.DGi.ToArray(), g.DX.ToArray(), g.DLambda.ToArray()),
            Is.EqualTo(first), "bitwise equal, and dlambda overwritten (not accumulated onto the 5s)");
    }

    /// <summary>gr, gi, x, lambda -> RgLruGate -> LinearRecurrence -> L = sum w h: the gradients through both ops against
    /// central finite differences of the float64 references composed the same way.</summary>
    [Test]
    public void GradientThroughLinearRecurrenceMatchesFiniteDifferences()
    {
        int b = 2, t = 6, c = 3;
        var k = Inputs(b, t, c, 21);
        var w = TrainingCheck.Normal(b * c * t, 22); // dL/dh, [B, C, T]
        using var gr = Device.FromArray(k.Gr, b, t, c);
        using var gi = Device.FromArray(k.Gi, b, t, c);
        using var x = Device.FromArray(k.X, b, t, c);
        using var lambda = Device.FromArray(k.Lambda, c);
        using var dh = Device.FromArray(w, b, c, t);
        using var gate = RgLruGate.Forward(gr, gi, x, lambda);
        using var h = LinearRecurrence.Forward(gate.A, gate.GatedX);
        using var lg = LinearRecurrence.Backward(dh, gate.A, gate.GatedX, null, h);
        using var g = RgLruGate.Backward(lg.DA, lg.DX, gr, gi, x, lambda);

        double Loss(double[] grv, double[] giv, double[] xv, double[] lv)
        {
            var (a, gx) = RgLruGateReference.Forward(grv, giv, xv, lv, b, t, c, (double)RgLruGate.DefaultBrake);
            var hv = ScanReference.RecurrenceForward(b, c, t, a, gx, null);
            var sum = 0.0;
            for (var i = 0; i < hv.Length; i++) sum += w[i] * hv[i];
            return sum;
        }
        double[][] inputs = [D(k.Gr), D(k.Gi), D(k.X), D(k.Lambda)];
        (string Name, float[] Got)[] grads = [("dgr", g.DGr.ToArray()), ("dgi", g.DGi.ToArray()), ("dx", g.DX.ToArray()), ("dlambda", g.DLambda.ToArray())];
        for (var which = 0; which < 4; which++)
        {
            var fd = new double[inputs[which].Length];
            for (var i = 0; i < fd.Length; i++)
            {
                var keep = inputs[which][i];
                var step = 1e-6 * Math.Max(1, Math.Abs(keep));
                inputs[which][i] = keep + step;
                var up = Loss(inputs[0], inputs[1], inputs[2], inputs[3]);
                inputs[which][i] = keep - step;
                var down = Loss(inputs[0], inputs[1], inputs[2], inputs[3]);
                inputs[which][i] = keep;
                fd[i] = (up - down) / (2 * step);
            }
            var scale = Math.Max(1, fd.Max(Math.Abs));
            ErrorRule.AssertRelative($"composed {grads[which].Name}", grads[which].Got, fd, 0, 2e-5 * scale);
        }
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        int b = 1, t = 3, c = 3;
        var k = Inputs(b, t, c, 3);
        using var gr = Device.FromArray(k.Gr, b, t, c);
        using var gi = Device.FromArray(k.Gi, b, t, c);
        using var x = Device.FromArray(k.X, b, t, c);
        using var lambda = Device.FromArray(k.Lambda, c);
        using var o = new RgLruGateOutput(Device.FromArray(Sevens(9), b, c, t), Device.FromArray(Sevens(9), b, c, t));
        using var flat = Device.Zeros(t, c);
        Refused(() => RgLruGate.Forward(flat, gi, x, lambda, outputs: o), "gr", "rank 3", "[3, 3]");
        using var gi4 = Device.Zeros(b, 4, c);
        Refused(() => RgLruGate.Forward(gr, gi4, x, lambda, outputs: o), "gi", "[1, 4, 3]", "[1, 3, 3]");
        Refused(() => RgLruGate.Forward(gr, gi, gi4, lambda, outputs: o), "x", "[1, 4, 3]");
        using var l4 = Device.Zeros(4);
        Refused(() => RgLruGate.Forward(gr, gi, x, l4, outputs: o), "lambda", "[4]", "[3]");
        foreach (var brake in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
            Refused(() => RgLruGate.Forward(gr, gi, x, lambda, brake, o), "brake", "finite and positive");
        using var nan = Device.FromArray([1f, 1f, 1f, 1f, float.NaN, 1f, 1f, 1f, 1f], b, t, c);
        Refused(() => RgLruGate.Forward(gr, gi, nan, lambda, outputs: o), "x", "NaN", "flat index 4");
        using var lInf = Device.FromArray([0f, float.NegativeInfinity, 0f], c);
        Refused(() => RgLruGate.Forward(gr, gi, x, lInf, outputs: o), "lambda", "-Infinity", "flat index 1");
        using var aliasA = new RgLruGateOutput(gr, Device.Zeros(b, c, t));
        Refused(() => RgLruGate.Forward(gr, gi, x, lambda, outputs: aliasA), "outputs.A", "also an input");
        using var same = Device.Zeros(b, c, t);
        using var aliasGx = new RgLruGateOutput(same, same);
        Refused(() => RgLruGate.Forward(gr, gi, x, lambda, outputs: aliasGx), "outputs.GatedX", "also an input");
        using var wide = Device.Zeros(b, c, t + 1);
        using var wrong = new RgLruGateOutput(wide, Device.Zeros(b, c, t));
        Refused(() => RgLruGate.Forward(gr, gi, x, lambda, outputs: wrong), "outputs.A", "[1, 3, 4]", "[1, 3, 3]");
        using var managed = Device.Create(Backend.Managed);
        using var elsewhere = managed.FromArray(k.Lambda, c);
        if (Device.Backend != Backend.Managed)
            Refused(() => RgLruGate.Forward(gr, gi, x, elsewhere, outputs: o), "lambda", "lives on");
        Assert.That(o.A.ToArray().Concat(o.GatedX.ToArray()), Is.All.EqualTo(7f), "a refused call leaves outputs untouched");

        using var da = Device.FromArray(k.Da, b, c, t);
        using var dgx = Device.FromArray(k.Dgx, b, c, t);
        using var g = new RgLruGateGradients(Device.FromArray(Sevens(9), b, t, c), Device.FromArray(Sevens(9), b, t, c),
            Device.FromArray(Sevens(9), b, t, c), Device.FromArray(Sevens(3), c));
        Refused(() => RgLruGate.Backward(wide, dgx, gr, gi, x, lambda, gradients: g), "dA", "[1, 3, 4]");
        Refused(() => RgLruGate.Backward(da, nan, gr, gi, x, lambda, gradients: g), "dGatedX", "NaN", "flat index 4");
        Refused(() => RgLruGate.Backward(da, dgx, gr, gi, x, lambda, 0f, g), "brake");
        using var aliasDl = new RgLruGateGradients(Device.Zeros(b, t, c), Device.Zeros(b, t, c), Device.Zeros(b, t, c), lambda);
        Refused(() => RgLruGate.Backward(da, dgx, gr, gi, x, lambda, gradients: aliasDl), "gradients.DLambda", "also an input");
        using var aliasDx = new RgLruGateGradients(Device.Zeros(b, t, c), Device.Zeros(b, t, c), dgx, Device.Zeros(c));
        Refused(() => RgLruGate.Backward(da, dgx, gr, gi, x, lambda, gradients: aliasDx), "gradients.DX", "also an input");
        using var nanGr = Device.FromArray([float.NaN, 1f, 1f, 1f, 1f, 1f, 1f, 1f, 1f], b, t, c);
        Refused(() => RgLruGate.Backward(da, dgx, nanGr, gi, x, lambda, gradients: g), "gr", "NaN", "flat index 0");
        Assert.That(g.DGr.ToArray().Concat(g.DGi.ToArray()).Concat(g.DX.ToArray()).Concat(g.DLambda.ToArray()), Is.All.EqualTo(7f));
    }

    // The sizes of the terms dgr and dlambda are formed from (a da and the m term of dlog a cancel; dlambda sums over b, t):
    // the 2x rule's floor is carried to them, as for LayerNorm's dx.
    private static (double DGr, double DLambda) TermScales(Case k)
    {
        double dgr = 0, dl = 0;
        for (var bb = 0; bb < k.B; bb++)
        for (var tt = 0; tt < k.T; tt++)
        for (var cc = 0; cc < k.C; cc++)
        {
            var i = (bb * k.T + tt) * k.C + cc;
            var o = (bb * k.C + cc) * k.T + tt;
            var r = RgLruGateReference.Sigmoid((double)k.Gr[i]);
            var sp = RgLruGateReference.Softplus((double)k.Lambda[cc]);
            var logA = -k.Brake * sp * r;
            var a = Math.Exp(logA);
            var m = RgLruGateReference.Gain(logA);
            var size = Math.Abs(a * k.Da[o]) + Math.Abs(k.Dgx[o] * k.X[i] * a * a / m);
            dgr = Math.Max(dgr, size * k.Brake * sp * r * (1 - r));
            dl = Math.Max(dl, size * k.Brake * r);
        }
        return (dgr, dl);
    }

    private static double[] D(float[] x) => TrainingCheck.D(x);

    private static float[] Sevens(int n) => PermuteBackendTests.Sevens(n);

    private static void Refused(Action call, string parameter, params string[] inMessage) =>
        PermuteBackendTests.Refused(call, parameter, inMessage);
}

/// <summary>The gate on the Managed backend, with shapes that span several tiles and the parallel path.</summary>
public sealed class ManagedRgLruGateTests : RgLruGateBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C)> Shapes() =>
        [(1, 1, 1), (2, 7, 33), (1, 33, 7), (3, 5, 127), (1, 17, 1), (2, 130, 70)];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuRgLruGateTests : RgLruGateBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C)> Shapes() => [(1, 1, 1), (2, 7, 33), (1, 33, 7), (1, 3, 127)];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaRgLruGateTests : RgLruGateBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override IEnumerable<(int B, int T, int C)> Shapes() =>
        [(1, 1, 1), (2, 7, 33), (1, 33, 7), (3, 5, 127), (2, 130, 70), (4, 1024, 256)];
}

/// <summary>The reference's own backward against central finite differences in float64.</summary>
public sealed class RgLruGateReferenceTests
{
    [TestCase(2, 5, 3, -1.0, 8.0)]
    [TestCase(1, 7, 4, -8.0, 8.0)]  // a near 1: m small, the a^2 / m term large
    [TestCase(2, 3, 2, 1.5, 0.5)]
    public void BackwardMatchesFiniteDifferences(int b, int t, int c, double lambdaOffset, double brake)
    {
        var n = b * t * c;
        double[] gr = TrainingCheck.D(TrainingCheck.Normal(n, 1, 2f)), gi = TrainingCheck.D(TrainingCheck.Normal(n, 2, 2f)),
            x = TrainingCheck.D(TrainingCheck.Normal(n, 3)), lambda = TrainingCheck.D(TrainingCheck.Normal(c, 4, 1f, (float)lambdaOffset)),
            wa = TrainingCheck.D(TrainingCheck.Normal(n, 5)), wg = TrainingCheck.D(TrainingCheck.Normal(n, 6));
        double Loss()
        {
            var (a, gx) = RgLruGateReference.Forward(gr, gi, x, lambda, b, t, c, brake);
            var sum = 0.0;
            for (var i = 0; i < n; i++) sum += wa[i] * a[i] + wg[i] * gx[i];
            return sum;
        }
        var g = RgLruGateReference.Backward(wa, wg, gr, gi, x, lambda, b, t, c, brake);
        foreach (var (name, input, analytic) in new[] { ("dgr", gr, g.DGr), ("dgi", gi, g.DGi), ("dx", x, g.DX), ("dlambda", lambda, g.DLambda) })
        {
            var scale = Math.Max(1, analytic.Max(Math.Abs));
            for (var i = 0; i < input.Length; i++)
            {
                var keep = input[i];
                var step = 1e-6 * Math.Max(1, Math.Abs(keep));
                input[i] = keep + step;
                var up = Loss();
                input[i] = keep - step;
                var down = Loss();
                input[i] = keep;
                Assert.That(analytic[i], Is.EqualTo((up - down) / (2 * step)).Within(1e-7 * scale), $"{name}[{i}]");
            }
        }
    }

    /// <summary>Where c softplus(lambda) r underflows, a = 1 exactly and 1 - a^2 sits at its floor: everything finite.</summary>
    [Test]
    public void ClampKeepsTheBackwardFinite()
    {
        double[] gr = [0, 50, -50], gi = [0, 1, -1], x = [1, -2, 3], lambda = [-1000, -800, -750];
        var (a, gx) = RgLruGateReference.Forward(gr, gi, x, lambda, 1, 1, 3, 8.0);
        Assert.That(a, Is.All.EqualTo(1.0));
        Assert.That(gx.Select(Math.Abs).Max(), Is.LessThanOrEqualTo(3e-15 + 1e-30));
        var g = RgLruGateReference.Backward([1.0, 1, 1], [1.0, 1, 1], gr, gi, x, lambda, 1, 1, 3, 8.0);
        Assert.That(g.DGr.Concat(g.DGi).Concat(g.DX).Concat(g.DLambda).All(double.IsFinite));
        var f = RgLruGateReference.Backward([1f, 1, 1], [1f, 1, 1], [0f, 50, -50], [0f, 1, -1], [1f, -2, 3], [-1000f, -95, -90], 1, 1, 3, 8f);
        Assert.That(f.DGr.Concat(f.DGi).Concat(f.DX).Concat(f.DLambda).All(float.IsFinite), "float32 too");
    }
}
