using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// The depth-router suite on the ILGPU CPU simulator: the exact GPU kernels (lane layouts T = 1..8, both scores,
/// diagnostics on and off, both row reductions) at shapes small enough for a simulator that runs every GPU thread as
/// an OS thread.
/// </summary>
[TestFixture]
public sealed class IlgpuCpuDepthRouterTests : DepthRouterBackendTests
{
    protected override Backend Backend => Backend.IlgpuCpu;

    private static IEnumerable<TestCaseData> Cases()
    {
        DepthCase[] cases =
        [
            new(1, 1, 17, 1, 16),
            new(2, 2, 5, 2, 59, Score.Distance, Diagnostics: false),
            new(7, 7, 2, 2, 64, NormalizeKeys: true, Brake: 0.7f, PerHead: true),
            new(1, 7, 17, 1, 8, Score.Distance, NormalizeKeys: true, Brake: 0.2f),
            // L = 64: the single-layer call reading every layer (the full Lq = L = 64 square runs on Managed).
            new(1, 64, 2, 1, 16, Score.Distance, Brake: 0.05f),
            new(7, 7, 3, 1, 16, Brake: 40f),
            new(7, 7, 3, 1, 64, InputScale: 31f),
            new(5, 7, 2, 2, 59, Score.Distance, Brake: 1f, KeyScale: 31f),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetName($"IlgpuCpu {c}");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(DepthCase c) => CheckAgainstReference(c);

    /// <summary>The OpenCL dispatch path (row sums through shared memory), run on the simulator.</summary>
    [Test]
    public void GroupSharedReductionMatchesReference() =>
        CheckAgainstReference(new DepthCase(3, 5, 3, 2, 24, Score.Distance, NormalizeKeys: true, Brake: 0.3f), reduction: SegmentReduction.GroupShared);
}
