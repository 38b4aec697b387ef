using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// Managed attention at every SIMD width on this machine (SimdWidth.Force): the Vector512 path of AVX-512 machines,
/// the Vector256 strips of AVX2 ones and the Vector128 strips of SSE and Arm NEON ones, each against the float64
/// reference with the 2x rule, forward and backward. A width this machine does not accelerate runs in .NET's software
/// fallback (correct, slow), so it gets the small shapes only. The CI slice under DOTNET_EnableAVX512=0 and
/// DOTNET_EnableAVX2=0 runs these again where the narrower widths are the machine's widest (.ci/run).
/// </summary>
[TestFixture(128)]
[TestFixture(256)]
[TestFixture(512)]
[Category("Widths")]
public sealed class ManagedAttentionWidthTests(int bits) : AttentionBackendTests
{
    protected override Backend Backend => Backend.Managed;

    /// <summary>Head dims below, at and past one 64-column block and its 16-column tail; keys past a 64-key block; every score and mask.</summary>
    private static IEnumerable<TestCaseData> Small()
    {
        AttentionCase[] cases =
        [
            new(1, 2, 1, 1, 1, 16),
            new(1, 2, 1, 17, 97, 59, Causal: true),
            new(1, 2, 2, 37, 70, 80, Score.Distance, NormalizeKeys: true, Window: 11, Brake: true),
            new(2, 4, 2, 13, 67, 24, Score.Distance, Causal: true, SinkTokens: 3, KeyLengths: [67, 5]),
            new(1, 2, 1, 29, 61, 64, Score.Distance, KeyScale: 60f),
            new(1, 2, 1, 31, 65, 128, InputScale: 31),
        ];
        foreach (var c in cases) yield return new TestCaseData(c).SetArgDisplayNames(c.ToString());
    }

    [TestCaseSource(nameof(Small))]
    public void MatchesTheReference(AttentionCase c)
    {
        using var width = SimdWidth.Force(bits);
        CheckAgainstReference(c);
    }

    [Test]
    public void LargerShapeMatchesTheReference()
    {
        if (!SimdWidth.IsAccelerated(bits)) Assert.Ignore($"Vector{bits} is emulated on this machine: the small shapes cover it.");
        using var width = SimdWidth.Force(bits);
        CheckAgainstReference(new AttentionCase(1, 2, 1, 300, 257, 72, Causal: true, Brake: true));
    }

}

/// <summary>SimdWidth.Force selects the code that runs, and restores the widest width after.</summary>
[TestFixture]
[Category("Widths")]
public sealed class SimdWidthDispatchTests
{
    [Test]
    public void ForceSetsAndRestoresTheWidth()
    {
        var widest = Math.Max(SimdWidth.WidestBits, 128);
        Assert.That(SimdWidth.ActiveBits, Is.EqualTo(widest));
        foreach (var bits in new[] { 128, 256, 512 })
        {
            using (SimdWidth.Force(bits)) Assert.That(SimdWidth.ActiveBits, Is.EqualTo(bits));
            Assert.That(SimdWidth.ActiveBits, Is.EqualTo(widest), "the scope restores the widest width");
        }
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => SimdWidth.Force(64))!;
        Assert.That(ex.Message, Does.Contain("128, 256 or 512"));
    }

    /// <summary>
    /// The widths sum a row's exponentials over 4, 8 or 16 lanes, so their outputs differ in the last bits: if forcing
    /// a width did not reach the kernel, two widths would agree bit for bit.
    /// </summary>
    [Test]
    public void EachForcedWidthRunsItsOwnCode()
    {
        var c = new AttentionCase(1, 2, 1, 17, 97, 59);
        var (q, k, v, _) = c.Inputs(3);
        float[] Run(int bits)
        {
            using var width = SimdWidth.Force(bits);
            using var device = Device.Create(Backend.Managed);
            using var tq = device.FromArray(q, c.B, c.H, c.N, c.D);
            using var tk = device.FromArray(k, c.B, c.Hkv, c.M, c.D);
            using var tv = device.FromArray(v, c.B, c.Hkv, c.M, c.D);
            using var fwd = Attention.Forward(tq, tk, tv, c.Options);
            return fwd.Lse.ToArray();
        }
        var (v128, v256, v512) = (Run(128), Run(256), Run(512));
        Assert.That(v128, Is.Not.EqualTo(v256), "Vector128 and Vector256 gave bitwise the same Lse");
        Assert.That(v256, Is.Not.EqualTo(v512), "Vector256 and Vector512 gave bitwise the same Lse");
        Assert.That(v128, Is.Not.EqualTo(v512), "Vector128 and Vector512 gave bitwise the same Lse");
    }
}
