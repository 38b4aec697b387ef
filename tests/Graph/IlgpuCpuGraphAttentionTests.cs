using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// GraphAttention's GPU kernels on the ILGPU CPU simulator (every GPU thread an OS thread): the awkward graph only,
/// lane layouts T = 2 (16 edge slots per warp) and T = 8 (4 slots), both scores, key normalisation and the brake.
/// </summary>
public sealed class IlgpuCpuGraphAttentionTests : GraphAttentionBackendTests
{
    protected override Backend Backend => Backend.IlgpuCpu;

    private static IEnumerable<TestCaseData> Cases()
    {
        GraphCase[] cases =
        [
            Graphs.AwkwardCase(2, 16, Score.Dot, brake: true),
            Graphs.AwkwardCase(1, 59, Score.Distance, normalize: true),
            Graphs.AwkwardCase(2, 64, Score.Dot, normalize: true, brake: true, inputScale: 8f),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetArgDisplayNames(c.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(GraphCase c) => CheckAgainstReference(c);

    [Test]
    public void BackwardIsBitwiseRepeatable() => CheckDeterministic(Graphs.AwkwardCase(2, 16, Score.Dot, brake: true), repeats: 2);
}
