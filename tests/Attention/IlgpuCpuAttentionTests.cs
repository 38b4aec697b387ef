using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The attention suite on the ILGPU CPU simulator: the exact GPU kernels (every lane layout T = 2..32, both score
/// variants, diagnostics on and off, padded and exact head dimensions) at shapes small enough for a simulator that
/// runs every GPU thread as an OS thread.
/// </summary>
[TestFixture]
public sealed class IlgpuCpuAttentionTests : AttentionBackendTests
{
    protected override Backend Backend => Backend.IlgpuCpu;

    private static IEnumerable<TestCaseData> Cases()
    {
        AttentionCase[] cases =
        [
            new(1, 1, 1, 17, 33, 64),
            new(1, 2, 2, 33, 17, 16, Score.Distance),
            new(1, 1, 1, 1, 33, 24, Score.Distance, NormalizeKeys: true),
            new(1, 2, 1, 17, 17, 59, Causal: true, Brake: true),
            // N > M with causal: the first N - M rows see no key (Lse = -inf, O = 0, zero gradients).
            new(1, 1, 1, 33, 17, 72, Causal: true, Diagnostics: true),
            new(2, 4, 2, 17, 33, 32, Score.Distance, NormalizeKeys: true, Causal: true, Window: 5, Brake: true),
            new(1, 4, 1, 17, 1, 8, NormalizeKeys: true),
            new(1, 1, 1, 17, 17, 128, Score.Distance, Window: 3, Diagnostics: false),
            new(1, 1, 1, 9, 17, 256, NormalizeKeys: true, Causal: true),
            // Logits around 1e3: the online softmax and the entropy's re-centred sum must not lose precision.
            new(1, 2, 1, 17, 33, 64, Score.Distance, InputScale: 31f, SinkTokens: 3),
            new(1, 1, 1, 17, 33, 16, InputScale: 31f, Causal: true),
            // Several key tiles (64 keys per tile at D <= 64) and several row groups per head, with the causal/window
            // band skipping whole tiles in the forward, dQ and dK/dV kernels.
            new(1, 1, 1, 97, 140, 16, Causal: true, Window: 40, Brake: true, SinkTokens: 4),
            new(1, 2, 1, 140, 97, 8, Score.Distance, Causal: true),
            new(1, 1, 1, 40, 70, 128, Score.Distance, NormalizeKeys: true, Window: 20),
            // D = 1: u = +-1, so the normalisation's projection must cancel dk' exactly (a rounded u left 4e-6).
            new(2, 4, 2, 16, 20, 1, Score.Distance, NormalizeKeys: true, Window: 2),
            new(1, 2, 2, 19, 29, 7, NormalizeKeys: true, Causal: true, Brake: true, InputScale: 31f),
            new(1, 1, 1, 5, 20, 200, Score.Distance, Causal: true, SinkTokens: 0),
            // Key norms in the hundreds: Distance scores of order 1e4, where a float32 Lse is off by ~1e-3 (the
            // backward must form P from the saved (max, log-sum), in the forward's operation order, brake included).
            new(1, 2, 1, 17, 33, 64, Score.Distance, Causal: true, Brake: true, KeyScale: 125f),
            new(1, 1, 1, 9, 17, 16, Score.Dot, KeyScale: 125f),
            // A window wider than any distance is no window (and i' + W must not overflow).
            new(1, 1, 1, 17, 33, 16, Window: int.MaxValue),
            // Key padding (issue 14): an empty element (every key hidden), lengths inside and across key tiles and
            // row groups, with the causal band and the normalised Distance keys.
            new(3, 2, 1, 17, 33, 24, KeyLengths: [33, 5, 0]),
            new(2, 2, 2, 33, 70, 16, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true, KeyLengths: [70, 67]),
            new(2, 1, 1, 97, 140, 8, Window: 40, KeyLengths: [1, 100]),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetName($"IlgpuCpu {c}");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(AttentionCase c) => CheckAgainstReference(c);

    private static IEnumerable<TestCaseData> GroupSharedCases()
    {
        AttentionCase[] cases =
        [
            new(1, 2, 1, 17, 33, 24, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true),
            new(1, 1, 1, 17, 70, 64, Window: 9),
            new(1, 1, 1, 9, 17, 256, Score.Distance, InputScale: 31f),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetName($"IlgpuCpu GroupShared {c}");
    }

    /// <summary>The OpenCL dispatch path (row sums through shared memory), run here on the simulator.</summary>
    [TestCaseSource(nameof(GroupSharedCases))]
    public void GroupSharedReductionMatchesReference(AttentionCase c)
    {
        var (q, k, v, dOut) = c.Inputs();
        CheckLauncher(c.ToString(), c.Params, q, k, v, dOut, SegmentReduction.GroupShared);
    }

    /// <summary>Keys at or below KeyEpsilon take the rho/eps branch of the normalisation and its gradient.</summary>
    [TestCase(false)]
    [TestCase(true)]
    public void ZeroKeysTakeTheEpsilonBranch(bool groupShared)
    {
        var reduction = groupShared ? SegmentReduction.GroupShared : SegmentReduction.WarpShuffle;
        var c = new AttentionCase(1, 2, 1, 9, 12, 24, Score.Distance, NormalizeKeys: true, Causal: true);
        var (q, k, v, dOut) = c.Inputs();
        foreach (var j in new[] { 0, 5, 11 })
            Array.Clear(k, j * c.D, c.D);
        Array.Fill(k, 1e-8f, 7 * c.D, c.D); // |k| = 4.9e-8 < eps = 1e-6
        CheckLauncher($"{c} with zero keys", c.Params, q, k, v, dOut, reduction);
    }

    // Forward and backward through the launcher with an explicit reduction, against the references, with the 2x rule.
    private void CheckLauncher(string what, AttentionParams p, float[] q, float[] k, float[] v, float[] dOut, SegmentReduction reduction)
    {
        var (qd, kd, vd, dd) = (TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v), TestData.ToDouble(dOut));
        var (f64, f32) = (Reference.AttentionReference.Forward(p, qd, kd, vd), Reference.AttentionReference.Forward(p, q, k, v));
        var (g64, g32) = (Reference.AttentionReference.Backward(p, dd, qd, kd, vd), Reference.AttentionReference.Backward(p, dOut, q, k, v));
        using var tq = Device.FromArray(q, p.QueryShape);
        using var tk = Device.FromArray(k, p.KeyShape);
        using var tv = Device.FromArray(v, p.KeyShape);
        using var tdo = Device.FromArray(dOut, p.QueryShape);
        using var fwd = AttentionOutput.Allocate(Device, p.B, p.H, p.N, p.D, diagnostics: true);
        AttentionIlgpu.Forward(Device, p, tq, tk, tv, fwd.Output, fwd.Lse, fwd.Stats, fwd.Diagnostics, reduction);
        ErrorRule.Assert2x($"{what} O", fwd.Output.ToArray(), f64.Output, f32.Output);
        ErrorRule.Assert2x($"{what} Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse);
        ErrorRule.Assert2x($"{what} Entropy", fwd.Diagnostics!.Entropy.ToArray(), f64.Entropy, f32.Entropy);
        ErrorRule.Assert2x($"{what} SinkMass", fwd.Diagnostics.SinkMass.ToArray(), f64.SinkMass, f32.SinkMass);
        ErrorRule.Assert2x($"{what} MaxProb", fwd.Diagnostics.MaxProb.ToArray(), f64.MaxProb, f32.MaxProb);
        using var grads = new AttentionGradients(Device.Zeros(p.QueryShape), Device.Zeros(p.KeyShape), Device.Zeros(p.KeyShape));
        AttentionIlgpu.Backward(Device, p, tdo, tq, tk, tv, fwd.Output, fwd.Stats, grads.DQ, grads.DK, grads.DV, reduction);
        ErrorRule.Assert2x($"{what} dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ);
        ErrorRule.Assert2x($"{what} dK", grads.DK.ToArray(), g64.DK, g32.DK);
        ErrorRule.Assert2x($"{what} dV", grads.DV.ToArray(), g64.DV, g32.DV);
    }

    private static IEnumerable<TestCaseData> Variant2Cases()
    {
        AttentionCase[] cases =
        [
            // N = M = 1 with GQA and normalised keys; D = 3 leaves 5 of 8 padded dims.
            new(1, 4, 2, 1, 1, 3, NormalizeKeys: true),
            new(1, 2, 1, 7, 13, 13, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true),
            // N > M with causal: the first N - M rows see no key (O = 0, Lse = -inf, zero diagnostics and gradients).
            new(1, 1, 1, 17, 13, 59, Causal: true),
            // An element with every key hidden, a window with the brake, GQA.
            new(2, 2, 1, 13, 37, 5, Window: 3, Brake: true, KeyLengths: [37, 0]),
            // Several key tiles (64 per forward tile, 32 per backward tile at D <= 32) with the band skipping tiles.
            new(1, 1, 1, 13, 70, 16, Causal: true, Window: 20, SinkTokens: 3),
            // Two row groups (R = 64 at T = 1) and key lengths inside the causal band.
            new(1, 1, 1, 67, 20, 7, Score.Distance, Causal: true, KeyLengths: [15]),
            // Distance scores of order 1e4: the backward must form z bit for bit as the forward did.
            new(1, 1, 1, 9, 33, 64, Score.Distance, Causal: true, Brake: true, KeyScale: 125f),
            // Logits around 1e3 over five key tiles (32 keys per forward tile at 8T = 64): the once-per-tile rescale.
            new(1, 1, 1, 13, 150, 37, InputScale: 31f),
            new(1, 1, 1, 3, 9, 200, Score.Distance, NormalizeKeys: true, SinkTokens: 0),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c with { KernelVariant = 2 }).SetName($"IlgpuCpu {c with { KernelVariant = 2 }}");
    }

    /// <summary>Forward and backward version 2 (register tiles) against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Variant2Cases))]
    public void Variant2MatchesReference(AttentionCase c) => CheckAgainstReference(c);

    /// <summary>Version 2's dK/dV kernel on the OpenCL dispatch path (the normalisation's sum through shared memory).</summary>
    [Test]
    public void Variant2GroupSharedReductionMatchesReference()
    {
        var c = new AttentionCase(1, 2, 1, 11, 19, 24, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true, KernelVariant: 2);
        var (q, k, v, dOut) = c.Inputs();
        CheckLauncher(c.ToString(), c.Params, q, k, v, dOut, SegmentReduction.GroupShared);
    }

    [Test]
    public void Variant2BackwardIsDeterministic() =>
        CheckDeterministic(new AttentionCase(1, 2, 1, 9, 11, 13, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true, KernelVariant: 2), 3);

    [TestCase(0)]
    [TestCase(3)]
    public void UnknownKernelVariantIsRejectedBeforeAnyKernel(int variant)
    {
        using var q = Device.Zeros(1, 1, 3, 16);
        using var k = Device.Zeros(1, 1, 5, 16);
        using var v = Device.Zeros(1, 1, 5, 16);
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward(q, k, v, new AttentionOptions { KernelVariant = variant }));
        Assert.That(e!.ParamName, Is.EqualTo("options"));
        Assert.That(e.Message, Does.Contain("KernelVariant").And.Contain("1..2"));
    }

    [TestCase(float.NaN)]
    [TestCase(float.PositiveInfinity)]
    public void NonFiniteInputIsRejectedBeforeAnyKernel(float bad)
    {
        var data = new float[1 * 1 * 3 * 16];
        data[21] = bad;
        using var q = Device.FromArray(data, 1, 1, 3, 16);
        using var k = Device.Zeros(1, 1, 5, 16);
        using var v = Device.Zeros(1, 1, 5, 16);
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward(q, k, v));
        Assert.That(e!.ParamName, Is.EqualTo("q"));
        Assert.That(e.Message, Does.Contain("flat index 21"));
    }

    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new AttentionCase(1, 4, 2, 33, 33, 24, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true), 3);
}
