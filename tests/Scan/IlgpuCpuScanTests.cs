using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// The scan suite on the ILGPU CPU simulator: the exact GPU kernels (both delta activations, both dB/dC sinks,
/// partial last chunks, grouped and ungrouped B/C) at lengths a simulator that runs every GPU thread as an OS thread
/// can afford. The whole fixture must stay under 90 s on a 2-core machine (about 40 s on the shared development VM,
/// 2026-11-28; one row group of 4 warps per case wherever the case allows).
/// </summary>
[TestFixture]
public sealed class IlgpuCpuScanTests : ScanBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;

    private static IEnumerable<TestCaseData> Cases() =>
        Grid([1, 7, 97, 128], [1, 4], dc: 4, fullCaseStates: 16, fullCaseChannels: 2)
            .Append(new ScanCase(1, 2, 20, 64, G: 2, Z: true, InitialState: true))
            .Append(new ScanCase(1, 2, 1025, 1, D: true, Softplus: true))
            .Select(c => new TestCaseData(c).SetName($"IlgpuCpu {c}"));

    /// <summary>Forward and every gradient against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Cases))]
    public void SelectiveScanMatchesReference(ScanCase c) => CheckSelectiveScan(c);

    /// <summary>Nst = 256, the largest supported state count: the shared carries are full.</summary>
    [Test]
    public void LargestStateCount() => CheckSelectiveScan(new ScanCase(1, 1, 5, 256, D: true, Z: true, Softplus: true, InitialState: true));

    /// <summary>The atomic (non-deterministic) dB/dC sink gives the same values within the 2x rule.</summary>
    [Test]
    public void AtomicBackwardMatchesReference() =>
        CheckSelectiveScan(new ScanCase(1, 4, 45, 8, G: 2, D: true, Z: true, DeltaBias: true, Softplus: true), deterministic: false);

    /// <summary>Decays A dt from -1e-4 to -50 stay finite and accurate.</summary>
    [Test]
    public void ExtremeDecaysStayFinite() =>
        CheckExtremeDecays(new ScanCase(1, 2, 70, 8, D: true, Z: true, MinDecay: 1e-4, MaxDecay: 50));

    /// <summary>
    /// Decays near 1 over 4099 steps: the state drifts by the decay's rounding once per step, so this is where an
    /// approximate exp shows (the kernels' exp is bitwise the same here as on a GPU).
    /// </summary>
    [Test]
    public void ExtremeDecaysOverALongSequence() =>
        CheckExtremeDecays(new ScanCase(1, 1, 4099, 3, Z: true, MinDecay: 1e-4, MaxDecay: 50));

    /// <summary>The deterministic backward is bitwise repeatable.</summary>
    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new ScanCase(2, 2, 40, 4, G: 2, D: true, Z: true, DeltaBias: true, Softplus: true, InitialState: true), 3);

    /// <summary>The linear recurrence against the reference, with and without h0.</summary>
    [TestCase(1, false)]
    [TestCase(7, true)]
    [TestCase(97, false)]
    [TestCase(128, true)]
    [TestCase(1025, true)]
    public void RecurrenceMatchesReference(int steps, bool initial) => CheckRecurrence(2, 3, steps, initial);

    /// <summary>Gates near 0 and near 1 stay accurate.</summary>
    [Test]
    public void RecurrenceWithExtremeGates() => CheckRecurrence(1, 2, 300, true, 1e-4f, 0.9999f);
}
