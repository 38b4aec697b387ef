using CsCheck;
using NUnit.Framework;
using static RouteKit.Tests.Randomised.RandomisedCheck;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// Attention on random cases, forward and backward against the float64 reference with the 2x rule (the existing
/// <see cref="AttentionBackendTests.CheckAgainstReference"/>). The generator draws shapes (B, H, Hkv | H, N and M
/// with primes and N &gt; M, so causal and window masks leave rows with every key masked), masks (causal, windows
/// including 0, ALiBi-like brakes), options (Dot/Distance, NormalizeKeys, diagnostics, sink counts) and magnitudes:
/// key norms log-uniform in [1e-2, 1e3] and query scales chosen so the typical |logit| is log-uniform in [1e-2, 1e3]
/// (Distance adds its -(s/2)|k|^2 term on top).
/// Shapes: B batch, H query heads, Hkv kv heads, N queries, M keys, D head dim.
/// </summary>
public abstract class RandomisedAttentionTests : AttentionBackendTests
{
    /// <summary>Cases per CI run.</summary>
    protected abstract int CiCases { get; }

    /// <summary>Query and key counts to draw from.</summary>
    protected abstract Gen<int> Length { get; }

    /// <summary>Head dimensions to draw from.</summary>
    protected abstract Gen<int> HeadDim { get; }

    /// <summary>Largest query-head count.</summary>
    protected abstract int MaxHeads { get; }

    /// <summary>Largest batch.</summary>
    protected abstract int MaxBatch { get; }

    private Gen<AttentionCase> Cases =>
        from b in Gen.Int[1, MaxBatch]
        from h in Gen.Int[1, MaxHeads]
        from hkv in OneOf(Enumerable.Range(1, h).Where(g => h % g == 0).Reverse().ToArray())
        from n in Length
        from m in Length
        from d in HeadDim
        from score in OneOf(Score.Dot, Score.Distance)
        from normalize in Gen.Bool
        from causal in Gen.Bool
        from windowKind in Gen.Int[0, 2]
        from window in windowKind == 1 ? Gen.Int[0, 4] : Gen.Int[0, 300]
        from brake in Gen.Bool
        from diagnostics in Gen.Bool
        from sinks in Gen.Int[0, 4]
        from keyNorm in LogUniform(-2, 3)
        from logit in LogUniform(-2, 3)
        select Build(b, h, hkv, n, m, d, score, normalize, causal, windowKind == 0 ? null : window, brake, diagnostics,
            sinks, keyNorm, logit);

    // Key norms ~ keyNorm (k's entries scaled by keyNorm / sqrt(D)); queries scaled so that s q.k' has spread ~ logit:
    // q.k' ~ sigma_q |k'|, s = 1/sqrt(D), |k'| = sqrt(D) when normalised.
    private static AttentionCase Build(int b, int h, int hkv, int n, int m, int d, Score score, bool normalize, bool causal,
        int? window, bool brake, bool diagnostics, int sinks, float keyNorm, float logit)
    {
        var keyScale = keyNorm / MathF.Sqrt(d);
        var queryScale = normalize ? logit : logit * MathF.Sqrt(d) / keyNorm;
        return new AttentionCase(b, h, hkv, n, m, d, score, normalize, causal, window, brake, diagnostics,
            InputScale: queryScale, SinkTokens: sinks, KeyScale: keyScale);
    }

    private static string Print(AttentionCase c) =>
        $"{c} sinks{c.SinkTokens}{(c.Diagnostics ? " diag" : "")} (key norm ~{c.KeyScale * MathF.Sqrt(c.D):G3})";

    /// <summary>Forward (O, Lse, diagnostics) and backward (dQ, dK, dV) on every drawn case.</summary>
    [Test]
    public void MatchesReferenceOnRandomCases() =>
        Run($"{Backend} attention", Cases, (c, seed) => CheckAgainstReference(c, seed: seed, scaledFloor: true), CiCases, Print);
}

/// <summary>Random attention cases on the Managed backend: N, M in 1..257, D in 1..128.</summary>
public sealed class RandomisedManagedAttentionTests : RandomisedAttentionTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int CiCases => 200;
    /// <inheritdoc />
    protected override Gen<int> Length =>
        Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 257] : OneOf(1, 2, 3, 5, 7, 13, 17, 31, 61, 64, 97, 127, 128, 193, 251, 257));
    /// <inheritdoc />
    protected override Gen<int> HeadDim => Gen.Int[1, 128];
    /// <inheritdoc />
    protected override int MaxHeads => 4;
    /// <inheritdoc />
    protected override int MaxBatch => 2;
}

/// <summary>
/// Random attention cases on the ILGPU CPU simulator (every GPU thread an OS thread): tiny shapes, and head
/// dimensions from a short list, since each D specialises (and compiles) its own kernels.
/// </summary>
public sealed class RandomisedIlgpuCpuAttentionTests : RandomisedAttentionTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int CiCases => 24;
    /// <inheritdoc />
    protected override Gen<int> Length => Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 24] : OneOf(1, 2, 7, 17, 31, 33));
    /// <inheritdoc />
    protected override Gen<int> HeadDim => OneOf(8, 1, 16, 24, 64);
    /// <inheritdoc />
    protected override int MaxHeads => 2;
    /// <inheritdoc />
    protected override int MaxBatch => 1;
}
