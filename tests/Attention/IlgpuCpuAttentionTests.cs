using NUnit.Framework;

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
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetName($"IlgpuCpu {c}");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(AttentionCase c) => CheckAgainstReference(c);

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
