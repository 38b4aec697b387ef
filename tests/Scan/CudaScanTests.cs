using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>The scan suite on a real GPU (CUDA): the full grid. Skipped, never passed, without a GPU.</summary>
[Category("Gpu")]
public sealed class CudaScanTests : ScanBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    private static IEnumerable<TestCaseData> Cases() =>
        Grid([1, 7, 97, 128, 1025, 4099], [1, 16, 64], dc: 10).Select(c => new TestCaseData(c).SetName($"Cuda {c}"));

    /// <summary>Forward and every gradient against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Cases))]
    public void SelectiveScanMatchesReference(ScanCase c) => CheckSelectiveScan(c);

    /// <summary>The atomic dB/dC sink matches the reference too.</summary>
    [Test]
    public void AtomicBackwardMatchesReference() =>
        CheckSelectiveScan(new ScanCase(2, 64, 1025, 16, G: 4, D: true, Z: true, DeltaBias: true, Softplus: true), deterministic: false);

    /// <summary>Nst = 256, the largest supported state count.</summary>
    [Test]
    public void LargestStateCount() => CheckSelectiveScan(new ScanCase(1, 4, 200, 256, Z: true, D: true));

    /// <summary>Decays A dt from -1e-4 to -50 stay finite and accurate.</summary>
    [Test]
    public void ExtremeDecaysStayFinite() =>
        CheckExtremeDecays(new ScanCase(2, 10, 4099, 16, D: true, Z: true, MinDecay: 1e-4, MaxDecay: 50));

    /// <summary>FlashAttention's race test, shortened: the deterministic backward is bitwise repeatable.</summary>
    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new ScanCase(2, 64, 1025, 16, G: 4, D: true, Z: true, DeltaBias: true, Softplus: true, InitialState: true), 50);

    /// <summary>The linear recurrence against the reference.</summary>
    [TestCase(1, false)]
    [TestCase(97, true)]
    [TestCase(4099, true)]
    public void RecurrenceMatchesReference(int steps, bool initial) => CheckRecurrence(4, 33, steps, initial);
}
