using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>Permute.SwapMiddle on each backend: an exact copy by its definition, round trips, and refusals.</summary>
public abstract class PermuteBackendTests : BackendFixture
{
    /// <summary>(A, P, Q, R) shapes this backend runs: R = 1 (the tiled transpose on GPUs) and R &gt; 1, awkward sizes.</summary>
    protected abstract IEnumerable<(int A, int P, int Q, int R)> Shapes();

    // y[a, q, p, r] = x[a, p, q, r], the definition.
    private static float[] Definition(float[] x, int a, int p, int q, int r)
    {
        var y = new float[x.Length];
        for (var ai = 0; ai < a; ai++)
        for (var pp = 0; pp < p; pp++)
        for (var qq = 0; qq < q; qq++)
        for (var rr = 0; rr < r; rr++)
            y[((ai * q + qq) * p + pp) * r + rr] = x[((ai * p + pp) * q + qq) * r + rr];
        return y;
    }

    [Test]
    public void SwapMiddleIsTheDefinitionAndRoundTrips()
    {
        foreach (var (a, p, q, r) in Shapes())
        {
            var what = $"[{a}, {p}, {q}, {r}]";
            var x = TrainingCheck.Normal(a * p * q * r, a * 1000 + p * 10 + q + r);
            using var tx = Device.FromArray(x, a, p, q, r);
            using var y = Permute.SwapMiddle(tx, a, p, q, r);
            Assert.That(y.Shape, Is.EqualTo(new[] { a, q, p, r }), what);
            Assert.That(y.ToArray(), Is.EqualTo(Definition(x, a, p, q, r)), what);
            using var back = Permute.SwapMiddle(y, a, q, p, r);
            Assert.That(back.ToArray(), Is.EqualTo(x), $"{what} SwapMiddle(SwapMiddle(x)) == x");
            using var dx = Permute.SwapMiddleBackward(y, a, p, q, r);
            Assert.That(dx.Shape, Is.EqualTo(new[] { a, p, q, r }), what);
            Assert.That(dx.ToArray(), Is.EqualTo(x), $"{what} backward of the forward's output is x");
        }
    }

    /// <summary>The attention-head and channel-major uses, with inputs and outputs of other shapes of the same length.</summary>
    [Test]
    public void AnyShapesOfTheRightLengthAreAccepted()
    {
        int b = 2, t = 7, h = 3, d = 5;
        var x = TrainingCheck.Normal(b * t * h * d, 3);
        using var flat = Device.FromArray(x, b * t, h * d); // as a linear layer writes [B T, H D]
        using var y = Device.FromArray(Enumerable.Repeat(7f, x.Length).ToArray(), x.Length);
        Assert.That(Permute.SwapMiddle(flat, b, t, h, d, y), Is.SameAs(y));
        Assert.That(y.Shape, Is.EqualTo(new[] { x.Length }));
        Assert.That(y.ToArray(), Is.EqualTo(Definition(x, b, t, h, d)));

        using var channels = Device.FromArray(x, b, t * h * d / 5, 5); // [B, T, C] -> [B, C, T] with C = 5
        using var cm = Permute.SwapMiddle(channels, b, t * h * d / 5, 5, 1);
        Assert.That(cm.Shape, Is.EqualTo(new[] { b, 5, t * h * d / 5, 1 }));
        Assert.That(cm.ToArray(), Is.EqualTo(Definition(x, b, t * h * d / 5, 5, 1)));
    }

    [Test]
    public void BadInputIsRefusedWithOutputUntouched()
    {
        using var x = Device.FromArray(TrainingCheck.Normal(24, 1), 2, 3, 4);
        using var y = Device.FromArray(Sevens(24), 24);
        Refused(() => Permute.SwapMiddle(x, 2, 3, 4, 2, y), "x", "[2, 3, 4]", "24", "48");
        Refused(() => Permute.SwapMiddle(x, 2, 0, 4, 1, y), "p", "at least 1");
        Refused(() => Permute.SwapMiddle(x, -2, -3, 4, 1, y), "a", "at least 1");
        using var y23 = Device.FromArray(Sevens(23), 23);
        Refused(() => Permute.SwapMiddle(x, 2, 3, 4, 1, y23), "y", "[23]", "24");
        Refused(() => Permute.SwapMiddle(x, 2, 3, 4, 1, x), "y", "also an input");
        using var nan = Device.FromArray([.. Sevens(5), float.NaN, .. Sevens(18)], 24);
        Refused(() => Permute.SwapMiddle(nan, 2, 3, 4, 1, y), "x", "NaN", "flat index 5");
        Refused(() => Permute.SwapMiddleBackward(nan, 2, 3, 4, 1, y), "dy", "NaN", "flat index 5");
        Refused(() => Permute.SwapMiddleBackward(x, 2, 3, 4, 1, y23), "dx", "[23]");
        Refused(() => Permute.SwapMiddleBackward(x, 2, 3, 4, 1, x), "dx", "also an input");
        using var managed = Device.Create(Backend.Managed);
        using var elsewhere = managed.Zeros(24);
        if (Device.Backend != Backend.Managed)
            Refused(() => Permute.SwapMiddle(x, 2, 3, 4, 1, elsewhere), "y", "lives on");
        Assert.That(y.ToArray(), Is.EqualTo(Sevens(24)), "a refused call leaves y untouched");
        Assert.That(elsewhere.ToArray(), Is.All.EqualTo(0f));
    }

    internal static float[] Sevens(int n) => Enumerable.Repeat(7f, n).ToArray();

    internal static void Refused(Action call, string parameter, params string[] inMessage)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(parameter), e.Message);
        foreach (var s in inMessage) Assert.That(e.Message, Does.Contain(s), e.Message);
    }
}

/// <summary>SwapMiddle on the Managed backend, with shapes large enough for the parallel path.</summary>
public sealed class ManagedPermuteTests : PermuteBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override IEnumerable<(int A, int P, int Q, int R)> Shapes() =>
    [
        (1, 1, 1, 1), (2, 7, 33, 1), (1, 33, 7, 1), (3, 127, 5, 1), (2, 7, 3, 33), (1, 5, 7, 16), (2, 33, 3, 7),
        (3, 300, 257, 1), (2, 128, 12, 64), (1, 127, 33, 5),
    ];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuPermuteTests : PermuteBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override IEnumerable<(int A, int P, int Q, int R)> Shapes() =>
        [(1, 1, 1, 1), (2, 7, 33, 1), (1, 33, 7, 1), (2, 40, 35, 1), (2, 7, 3, 33), (2, 33, 3, 7)];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaPermuteTests : PermuteBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override IEnumerable<(int A, int P, int Q, int R)> Shapes() =>
        [(1, 1, 1, 1), (2, 7, 33, 1), (1, 33, 7, 1), (3, 300, 257, 1), (2, 128, 12, 64), (2, 33, 3, 7)];
}
