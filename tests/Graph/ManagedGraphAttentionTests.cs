using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// GraphAttention on the Managed backend: the awkward graph over D in {16, 59, 64}, Dot/Distance, NormalizeKeys, brake
/// on/off; hubs split into edge chunks (a tiny chunk on the awkward graph, the default chunk on a 3000-degree hub);
/// determinism. Shapes: H heads, Nn nodes, E edges, D head dim.
/// </summary>
public sealed class ManagedGraphAttentionTests : GraphAttentionBackendTests
{
    protected override Backend Backend => Backend.Managed;

    private static IEnumerable<TestCaseData> Variants()
    {
        foreach (var d in new[] { 16, 59, 64 })
        foreach (var score in new[] { Score.Dot, Score.Distance })
        foreach (var normalize in new[] { false, true })
        foreach (var brake in new[] { false, true })
        {
            var c = Graphs.AwkwardCase(2, d, score, normalize, brake);
            yield return new TestCaseData(c).SetArgDisplayNames(c.ToString());
        }
        var big = Graphs.AwkwardCase(2, 16, Score.Distance, brake: true, inputScale: 31f);
        yield return new TestCaseData(big).SetArgDisplayNames(big.ToString());
        var plain = Graphs.AwkwardCase(1, 1, diagnostics: false);
        yield return new TestCaseData(plain).SetArgDisplayNames(plain.ToString());
    }

    [TestCaseSource(nameof(Variants))]
    public void MatchesReference(GraphCase c) => CheckAgainstReference(c);

    /// <summary>Edge chunks of 3 edges: node 1 (degree 9) and the keys with many in-edges go through the hub combine.</summary>
    [TestCase(Score.Dot, false, true)]
    [TestCase(Score.Distance, true, true)]
    [TestCase(Score.Distance, false, false)]
    public void SplitHubsMatchReference(Score score, bool normalize, bool brake) =>
        CheckAgainstReference(Graphs.AwkwardCase(2, 24, score, normalize, brake), edgeChunk: 3);

    /// <summary>One hub of degree 3000 (in and out) beside nodes of degree 1..5, at the default 2048-edge chunk.</summary>
    [TestCase(Score.Dot, false)]
    [TestCase(Score.Distance, true)]
    public void LargeHubMatchesReference(Score score, bool normalize)
    {
        var (rowPtr, colIdx) = Graphs.Hub(3000, seed: 5);
        CheckAgainstReference(new GraphCase("hub3000", 1, rowPtr, colIdx, 16, score, normalize, Brake: true));
    }

    [Test]
    public void BackwardIsBitwiseRepeatable()
    {
        CheckDeterministic(Graphs.AwkwardCase(2, 59, Score.Distance, true, true), repeats: 20);
        CheckDeterministic(Graphs.AwkwardCase(2, 24, Score.Dot, true, true), repeats: 20, edgeChunk: 3);
    }
}
