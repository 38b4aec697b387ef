using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// Residual.Add and Residual.AddInto on each backend. A float32 sum is correctly rounded, so every backend must give
/// exactly the naive float32 result, which the 2x rule against float64 is checked beside.
/// </summary>
public abstract class ResidualBackendTests : BackendFixture
{
    /// <summary>Element counts this backend runs (below, at and above the vector widths, and above the Managed chunk).</summary>
    protected abstract int[] Lengths { get; }

    [Test]
    public void AddMatchesReference()
    {
        foreach (var n in Lengths)
        {
            var (x, r) = Inputs(n, n);
            using var tx = Device.FromArray(x, n);
            using var tr = Device.FromArray(r, n);
            using var y = Residual.Add(tx, tr);
            var naive = ResidualReference.Add(x, r);
            TrainingCheck.Assert2x($"x + r [{n}]", y.ToArray(), ResidualReference.Add(TrainingCheck.D(x), TrainingCheck.D(r)), naive);
            Assert.That(y.ToArray(), Is.EqualTo(naive), $"x + r [{n}] is the correctly rounded float32 sum");
        }
    }

    /// <summary>y may be x or r itself: the residual stream updated in place; AddInto(dst, src) is dst += src.</summary>
    [Test]
    public void InPlaceAndAccumulateMatchReference()
    {
        foreach (var n in Lengths)
        {
            var (x, r) = Inputs(n, n + 1);
            var expected = ResidualReference.Add(x, r);
            using var tx = Device.FromArray(x, n);
            using var tr = Device.FromArray(r, n);
            Assert.That(Residual.Add(tx, tr, tx), Is.SameAs(tx));
            Assert.That(tx.ToArray(), Is.EqualTo(expected), $"y = x [{n}]");
            Assert.That(tr.ToArray(), Is.EqualTo(r), $"r is unchanged [{n}]");

            using var tx2 = Device.FromArray(x, n);
            using var tr2 = Device.FromArray(r, n);
            Assert.That(Residual.Add(tx2, tr2, tr2), Is.SameAs(tr2));
            Assert.That(tr2.ToArray(), Is.EqualTo(expected), $"y = r [{n}]");

            using var dst = Device.FromArray(x, n);
            Assert.That(Residual.AddInto(dst, tr), Is.SameAs(dst));
            Assert.That(dst.ToArray(), Is.EqualTo(expected), $"dst += src [{n}]");
            Residual.AddInto(dst, dst);
            Assert.That(dst.ToArray(), Is.EqualTo(expected.Select(v => 2 * v).ToArray()), $"dst += dst doubles [{n}]");
        }
    }

    /// <summary>Any equal shapes are accepted; a preallocated y is filled and returned.</summary>
    [Test]
    public void AnyShapeAndPreallocatedOutput()
    {
        var (x, r) = Inputs(2 * 3 * 5, 3);
        using var tx = Device.FromArray(x, 2, 3, 5);
        using var tr = Device.FromArray(r, 2, 3, 5);
        using var y = Device.Zeros(2, 3, 5);
        Assert.That(Residual.Add(tx, tr, y), Is.SameAs(y));
        Assert.That(y.ToArray(), Is.EqualTo(ResidualReference.Add(x, r)));
        using var fresh = Residual.Add(tx, tr);
        Assert.That(fresh.Shape, Is.EqualTo(new[] { 2, 3, 5 }));
    }

    [Test]
    public void BadInputIsRefusedWithOutputsUntouched()
    {
        using var x = Device.FromArray([1f, -2f, 3f, 0f], 2, 2);
        using var r = Device.FromArray([1f, 1f, 1f, 1f], 2, 2);
        using var y = Device.FromArray([7f, 7f, 7f, 7f], 2, 2);
        using var dst = Device.FromArray([7f, 7f, 7f, 7f], 2, 2);
        using var flat = Device.Zeros(4);
        Refused(() => Residual.Add(x, flat, y), "r", "[4]", "[2, 2]");
        Refused(() => Residual.Add(x, r, flat), "y", "[4]", "[2, 2]");
        using var nan = Device.FromArray([1f, float.NaN, 3f, 0f], 2, 2);
        Refused(() => Residual.Add(nan, r, y), "x", "NaN", "flat index 1");
        Refused(() => Residual.Add(x, nan, y), "r", "NaN", "flat index 1");
        Refused(() => Residual.AddInto(dst, flat), "src", "[4]", "[2, 2]");
        using var inf = Device.FromArray([1f, 1f, float.PositiveInfinity, 1f], 2, 2);
        Refused(() => Residual.AddInto(dst, inf), "src", "Infinity", "flat index 2");
        Refused(() => Residual.AddInto(inf, r), "dst", "Infinity", "flat index 2");
        using var managed = Device.Create(Backend.Managed);
        using var elsewhere = managed.FromArray([1f, 1f, 1f, 1f], 2, 2);
        if (Device.Backend != Backend.Managed)
        {
            Refused(() => Residual.Add(x, elsewhere, y), "r", "lives on");
            Refused(() => Residual.AddInto(dst, elsewhere), "src", "lives on");
        }
        Assert.That(y.ToArray().Concat(dst.ToArray()), Is.All.EqualTo(7f), "a refused call leaves outputs untouched");
        Assert.That(inf.ToArray()[0], Is.EqualTo(1f));
    }

    // Normal values of scale 3 with extreme magnitudes at the front: sums that cancel exactly, that differ in scale by
    // 1e30, and that come near float's largest (doubled by AddInto(dst, dst) they still fit).
    private static (float[] X, float[] R) Inputs(int n, int seed)
    {
        var x = TrainingCheck.Normal(n, seed, 3f);
        var r = TrainingCheck.Normal(n, seed + 1, 3f);
        float[] xs = [1e30f, -1e-30f, 1.5f, 1e38f, -1.6e38f, 1f];
        float[] rs = [1f, 1e-30f, -1.5f, 5e37f, 1e38f, 1e-8f];
        xs.AsSpan(0, Math.Min(n, xs.Length)).CopyTo(x);
        rs.AsSpan(0, Math.Min(n, rs.Length)).CopyTo(r);
        return (x, r);
    }

    private static void Refused(Action call, string parameter, params string[] inMessage)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(parameter), e.Message);
        foreach (var s in inMessage) Assert.That(e.Message, Does.Contain(s));
    }
}

/// <summary>Residual on the Managed backend, up past the parallel chunk size.</summary>
public sealed class ManagedResidualTests : ResidualBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 200_003];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator.</summary>
public sealed class IlgpuCpuResidualTests : ResidualBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127];
}

/// <summary>The kernels on a real GPU.</summary>
[Category("Gpu")]
public sealed class CudaResidualTests : ResidualBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    /// <inheritdoc />
    protected override int[] Lengths => [1, 7, 33, 127, 1000, 200_003];
}
