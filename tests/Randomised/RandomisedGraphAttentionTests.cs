using CsCheck;
using NUnit.Framework;
using static RouteKit.Tests.Randomised.RandomisedCheck;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// GraphAttention on random graphs on the Managed backend, forward and backward against the float64 reference with the
/// 2x rule (<see cref="GraphAttentionBackendTests.CheckAgainstReference"/>), reproducibly (RandomisedCheck's fixed
/// master seed). The generator draws Nn in 1..60, a degree profile (empty, sparse, dense or one hub), self-loops on
/// a random subset, heads 1..3, D in 1..80, Dot/Distance, NormalizeKeys, brake, diagnostics, the input scale
/// (log-uniform in [1e-2, 10]) and the Managed edge chunk (2, 7 or the default), so hub splitting is exercised.
/// Shapes: H heads, Nn nodes, E edges, D head dim.
/// </summary>
public sealed class RandomisedManagedGraphAttentionTests : GraphAttentionBackendTests
{
    protected override Backend Backend => Backend.Managed;

    private sealed record Drawn(GraphCase Case, int EdgeChunk)
    {
        public override string ToString() => $"{Case} chunk{EdgeChunk}";
    }

    private static Gen<Drawn> Cases =>
        from nodes in Gen.Int[1, 60]
        from profile in Gen.Int[0, 3]
        from graphSeed in Gen.Int[0, int.MaxValue]
        from h in Gen.Int[1, 3]
        from d in Gen.Int[1, 80]
        from score in OneOf(Score.Dot, Score.Distance)
        from normalize in Gen.Bool
        from brake in Gen.Bool
        from diagnostics in Gen.Bool
        from scale in LogUniform(-2, 1)
        from chunk in OneOf(2, 7, CsrGraph.DefaultEdgeChunk)
        select Build(nodes, profile, graphSeed, h, d, score, normalize, brake, diagnostics, scale, chunk);

    // Profiles: 0 no edges at all, 1 degrees 0..3, 2 about half of all pairs, 3 a hub (node 0) plus degrees 0..2.
    private static Drawn Build(int nodes, int profile, int graphSeed, int h, int d, Score score, bool normalize, bool brake,
        bool diagnostics, float scale, int chunk)
    {
        var rng = new Random(graphSeed);
        var lists = new int[nodes][];
        for (var i = 0; i < nodes; i++)
        {
            var set = new HashSet<int>();
            var count = profile switch
            {
                0 => 0,
                1 => rng.Next(0, 4),
                2 => nodes / 2,
                _ => i == 0 ? nodes : rng.Next(0, 3),
            };
            for (var e = 0; e < count; e++) set.Add(profile == 3 && i == 0 ? e : rng.Next(nodes));
            if (rng.Next(3) == 0) set.Add(i);
            lists[i] = set.ToArray();
        }
        var (rowPtr, colIdx) = Graphs.FromLists(lists);
        return new Drawn(new GraphCase($"random p{profile}", h, rowPtr, colIdx, d, score, normalize, brake, diagnostics, scale), chunk);
    }

    /// <summary>Forward (O, Lse, diagnostics) and backward (dQ, dK, dV) on every drawn case.</summary>
    [Test]
    public void MatchesReferenceOnRandomGraphs() =>
        Run("Managed graph attention", Cases, (c, seed) => CheckAgainstReference(c.Case, c.EdgeChunk, seed, scaledFloor: true), 150);
}
