using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// The GraphAttention suite on a real GPU (CUDA), skipped where there is none: the awkward graph at every lane layout
/// the common head dimensions use, and a 3000-degree hub beside degree-1..5 nodes (one warp per node, slots merged).
/// </summary>
[Category("Gpu")]
public sealed class CudaGraphAttentionTests : GraphAttentionBackendTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var d in new[] { 1, 16, 59, 64, 128, 256 })
        {
            yield return new TestCaseData(Graphs.AwkwardCase(2, d, Score.Dot, brake: true)).SetArgDisplayNames($"awkward D{d} Dot brake");
            yield return new TestCaseData(Graphs.AwkwardCase(2, d, Score.Distance, normalize: true)).SetArgDisplayNames($"awkward D{d} Distance+norm");
        }
        var (rowPtr, colIdx) = Graphs.Hub(3000, seed: 5);
        yield return new TestCaseData(new GraphCase("hub3000", 2, rowPtr, colIdx, 64, Score.Distance, NormalizeKeys: true, Brake: true))
            .SetArgDisplayNames("hub3000 D64 Distance+norm brake");
    }

    /// <summary>Forward and backward against the float64 reference with the 2x rule.</summary>
    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(GraphCase c) => CheckAgainstReference(c);

    /// <summary>The backward is bitwise repeatable.</summary>
    [Test]
    public void BackwardIsBitwiseRepeatable()
    {
        var (rowPtr, colIdx) = Graphs.Hub(3000, seed: 5);
        CheckDeterministic(new GraphCase("hub3000", 2, rowPtr, colIdx, 64, Score.Distance, NormalizeKeys: true, Brake: true), 20);
    }
}
