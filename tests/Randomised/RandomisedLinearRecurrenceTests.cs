using CsCheck;
using NUnit.Framework;
using static RouteKit.Tests.Randomised.RandomisedCheck;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// The linear recurrence h_t = a_t h_{t-1} + x_t on random cases, forward and backward against the float64 reference
/// with the 2x rule (the existing <see cref="ScanBackendTests.CheckRecurrence(string, int, int, int, float[], float[], float[], float[], bool)"/>,
/// its floor carried to each output's scale: inputs up to 1e3 give states of ~1e3 whose few entries the naive float32
/// result can round correctly by luck, while the ILGPU parallel scan, associating differently, lands an ulp or two away).
/// Decays are drawn from ranges near 0, near 1, exactly 1 (a running sum), signed in [-1, 1] and Mamba-like [0.5, 1];
/// inputs are scaled log-uniformly in [1e-3, 1e3].
/// Shapes: B batch, C channels, T steps.
/// </summary>
public abstract class RandomisedLinearRecurrenceTests : ScanBackendTests
{
    /// <summary>Cases per CI run.</summary>
    protected abstract int CiCases { get; }
    /// <summary>Sequence lengths to draw from.</summary>
    protected abstract Gen<int> Length { get; }
    /// <summary>Largest channel count.</summary>
    protected abstract int MaxChannels { get; }

    private static readonly (float Low, float High)[] DecayRanges =
        [(0.5f, 1f), (1e-4f, 1e-2f), (0.99f, 0.9999f), (1f, 1f), (-1f, 1f), (1e-4f, 0.9999f)];

    /// <summary>One recurrence problem.</summary>
    public sealed record RecurrenceCase(int B, int C, int T, bool Initial, float DecayLow, float DecayHigh, float InputScale)
    {
        /// <inheritdoc />
        public override string ToString() =>
            $"recurrence [{B}, {C}, {T}]{(Initial ? " h0" : "")} a in [{DecayLow:G4}, {DecayHigh:G4}] x scale {InputScale:G3}";
    }

    private Gen<RecurrenceCase> Cases =>
        from b in Gen.Int[1, 2]
        from c in Gen.Int[1, MaxChannels]
        from t in Length
        from initial in Gen.Bool
        from decay in OneOf(DecayRanges)
        from scale in LogUniform(-3, 3)
        select new RecurrenceCase(b, c, t, initial, decay.Low, decay.High, scale);

    private void Check(RecurrenceCase c, int seed)
    {
        var n = c.B * c.C * c.T;
        var rng = new Random(seed);
        var a = new float[n];
        for (var i = 0; i < n; i++) a[i] = c.DecayLow + (c.DecayHigh - c.DecayLow) * (float)rng.NextDouble();
        var x = Support.TestData.Normal(n, seed + 1, c.InputScale);
        var h0 = c.Initial ? Support.TestData.Normal(c.B * c.C, seed + 2, c.InputScale) : null;
        var dH = Support.TestData.Normal(n, seed + 3);
        CheckRecurrence(c.ToString(), c.B, c.C, c.T, a, x, h0, dH, scaledFloor: true);
    }

    /// <summary>h, the last state and dA, dX, dH0 on every drawn case.</summary>
    [Test]
    public void MatchesReferenceOnRandomCases() => Run($"{Backend} linear recurrence", Cases, Check, CiCases);
}

/// <summary>Random linear-recurrence cases on the Managed backend.</summary>
public sealed class RandomisedManagedLinearRecurrenceTests : RandomisedLinearRecurrenceTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override int CiCases => 500;
    /// <inheritdoc />
    protected override Gen<int> Length =>
        Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 2000] : OneOf(1, 2, 31, 32, 33, 64, 127, 1025, 4099));
    /// <inheritdoc />
    protected override int MaxChannels => 6;
}

/// <summary>Random linear-recurrence cases on the ILGPU CPU simulator.</summary>
public sealed class RandomisedIlgpuCpuLinearRecurrenceTests : RandomisedLinearRecurrenceTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override int CiCases => 20;
    /// <inheritdoc />
    protected override Gen<int> Length => Gen.Int[0, 1].SelectMany(k => k == 0 ? Gen.Int[1, 200] : OneOf(1, 31, 32, 33, 1025));
    /// <inheritdoc />
    protected override int MaxChannels => 3;
}
