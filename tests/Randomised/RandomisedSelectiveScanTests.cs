using CsCheck;
using NUnit.Framework;
using static RouteKit.Tests.Randomised.RandomisedCheck;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// The selective scan on random cases, forward and every gradient against the float64 reference with the 2x rule
/// (the existing <see cref="ScanBackendTests.CheckSelectiveScan"/>, its floor carried to each output's scale:
/// extreme decays give gradients of 10-30 whose few entries the naive float32 result can round correctly by luck). The generator draws B, Dc, L (chunk edges and
/// primes), Nst, grouped or ungrouped B/C, every optional input (D, z, deltaBias, h0), softplus, the deterministic or
/// atomic backward, and either Mamba-initialised decays or extreme ones (A dt log-spaced from -[1e-6, 1e-1] to
/// -[1, 100]), where every output and gradient must also be finite.
/// Shapes: B batch, Dc channels, L steps, Nst states, G groups.
/// </summary>
public abstract class RandomisedSelectiveScanTests : ScanBackendTests
{
    /// <summary>Cases per CI run.</summary>
    protected abstract int CiCases { get; }
    /// <summary>Sequence lengths to draw from.</summary>
    protected abstract Gen<int> Length { get; }
    /// <summary>State counts to draw from.</summary>
    protected abstract Gen<int> States { get; }
    /// <summary>Largest channel count.</summary>
    protected abstract int MaxChannels { get; }
    /// <summary>Largest batch.</summary>
    protected abstract int MaxBatch { get; }

    private Gen<(ScanCase Case, bool Deterministic)> Cases =>
        from b in Gen.Int[1, MaxBatch]
        from dc in Gen.Int[1, MaxChannels]
        from g in OneOf(0, 1, 2).Select(g => g == 2 && dc % 2 != 0 ? 1 : g)
        from l in Length
        from nst in States
        from d in Gen.Bool
        from z in Gen.Bool
        from bias in Gen.Bool
        from softplus in Gen.Bool
        from h0 in Gen.Bool
        from extreme in Gen.Bool
        from minDecay in LogUniform(-6, -1)
        from maxDecay in LogUniform(0, 2)
        from deterministic in Gen.Bool
        select (new ScanCase(b, dc, l, nst, g, d, z, bias, softplus, h0, extreme ? minDecay : 0, extreme ? maxDecay : 0),
            deterministic);

    /// <summary>Forward (out, last state) and every gradient on every drawn case.</summary>
    [Test]
    public void MatchesReferenceOnRandomCases() =>
        Run($"{Backend} selective scan", Cases,
            (c, seed) => CheckSelectiveScan(c.Case, c.Deterministic, requireFinite: c.Case.ExtremeDecays, seed: seed,
                scaledFloor: true), CiCases,
            c => $"{c.Case}{(c.Deterministic ? "" : " atomic")}");
}

/// <summary>Random selective-scan cases on the Managed backend.</summary>
public sealed class RandomisedManagedSelectiveScanTests : RandomisedSelectiveScanTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int CiCases => 400;
    /// <inheritdoc />
    protected override Gen<int> Length =>
        Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 300] : OneOf(1, 2, 31, 32, 33, 63, 64, 65, 97, 128, 129, 257, 1025));
    /// <inheritdoc />
    protected override Gen<int> States => Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 64] : OneOf(1, 2, 16, 17, 64, 256));
    /// <inheritdoc />
    protected override int MaxChannels => 8;
    /// <inheritdoc />
    protected override int MaxBatch => 2;
}

/// <summary>Random selective-scan cases on the ILGPU CPU simulator: tiny shapes.</summary>
public sealed class RandomisedIlgpuCpuSelectiveScanTests : RandomisedSelectiveScanTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int CiCases => 16;
    /// <inheritdoc />
    protected override Gen<int> Length => Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 40] : OneOf(1, 31, 32, 33, 65));
    /// <inheritdoc />
    protected override Gen<int> States => OneOf(1, 2, 4, 8, 16);
    /// <inheritdoc />
    protected override int MaxChannels => 4;
    /// <inheritdoc />
    protected override int MaxBatch => 1;
}
