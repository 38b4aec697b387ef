using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>The attention suite on a real GPU (CUDA): the awkward shapes of DESIGN.md section 7 at full size.</summary>
[Category("Gpu")]
public sealed class CudaAttentionTests : AttentionBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    private static IEnumerable<AttentionCase> Cases()
    {
        foreach (var (n, m) in new[] { (1, 1), (17, 97), (128, 128), (200, 1025), (1025, 200) })
        foreach (var d in new[] { 16, 59, 64, 128 })
        {
            yield return new(2, 4, 2, n, m, d, Score.Dot);
            yield return new(1, 4, 1, n, m, d, Score.Distance, NormalizeKeys: true, Causal: true, Window: 64, Brake: true);
        }
        yield return new(1, 2, 2, 97, 200, 72, Score.Distance, InputScale: 31f);
        yield return new(1, 2, 2, 256, 256, 256, Score.Dot, Causal: true);
    }

    /// <summary>Forward and backward against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(AttentionCase c) => CheckAgainstReference(c);

    /// <summary>FlashAttention's race test, shortened: the backward is bitwise repeatable.</summary>
    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new AttentionCase(2, 4, 2, 239, 113, 64, Score.Distance, NormalizeKeys: true, Causal: true), 50);

    /// <summary>Forward and backward version 2 (register tiles; docs/variants/attention.md) on the same grid.</summary>
    [TestCaseSource(nameof(Cases))]
    public void Variant2MatchesReference(AttentionCase c) => CheckAgainstReference(c with { KernelVariant = 2 });

    /// <summary>The race test for version 2, whose groups synchronise three or four times per tile.</summary>
    [Test]
    public void Variant2BackwardIsDeterministic() =>
        CheckDeterministic(new AttentionCase(2, 4, 2, 239, 113, 64, Score.Distance, NormalizeKeys: true, Causal: true, KernelVariant: 2), 50);
}
