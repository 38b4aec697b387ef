using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>The scan suite on the Managed backend: the full grid of lengths and state counts.</summary>
[TestFixture]
public sealed class ManagedScanTests : ScanBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    private static IEnumerable<TestCaseData> Cases() =>
        Grid([1, 7, 97, 128, 1025, 4099], [1, 16, 64], dc: 10).Select(c => new TestCaseData(c).SetName($"Managed {c}"));

    /// <summary>Forward and every gradient against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Cases))]
    public void SelectiveScanMatchesReference(ScanCase c) => CheckSelectiveScan(c);

    /// <summary>Decays A dt from -1e-4 to -50 over 4099 steps stay finite and accurate.</summary>
    [Test]
    public void ExtremeDecaysStayFinite() =>
        CheckExtremeDecays(new ScanCase(2, 10, 4099, 16, D: true, Z: true, MinDecay: 1e-4, MaxDecay: 50));

    /// <summary>The backward is bitwise repeatable.</summary>
    [Test]
    public void BackwardIsDeterministic() =>
        CheckDeterministic(new ScanCase(2, 20, 1025, 16, G: 2, D: true, Z: true, DeltaBias: true, Softplus: true, InitialState: true), 5);

    /// <summary>The linear recurrence against the reference, with and without h0, at the lengths.</summary>
    [TestCase(1, false)]
    [TestCase(7, true)]
    [TestCase(97, false)]
    [TestCase(128, true)]
    [TestCase(1025, true)]
    [TestCase(4099, false)]
    public void RecurrenceMatchesReference(int steps, bool initial) => CheckRecurrence(2, 5, steps, initial);

    /// <summary>Decays from 1e-4 to 1 - 1e-4: near-zero and near-one gates both stay accurate.</summary>
    [Test]
    public void RecurrenceWithExtremeGates() => CheckRecurrence(2, 5, 4099, true, 1e-4f, 0.9999f);
}
