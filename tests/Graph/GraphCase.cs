using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// One GraphAttention test problem: a CSR graph, heads, head dimension, options and input scale.
/// Shapes: H heads, Nn nodes, E edges, D head dim; q, k, v, dO [H, Nn, D].
/// </summary>
public sealed record GraphCase(
    string Name, int H, int[] RowPtr, int[] ColIdx, int D,
    Score Score = Score.Dot, bool NormalizeKeys = false, bool Brake = false, bool Diagnostics = true, float InputScale = 1f)
{
    /// <summary>Nn.</summary>
    public int Nodes => RowPtr.Length - 1;

    /// <summary>E.</summary>
    public int Edges => ColIdx.Length;

    /// <summary>The options (brake m_h = 0.5 + h, large enough to move the self-loops' mass).</summary>
    public GraphAttentionOptions Options => new()
    {
        Score = Score, NormalizeKeys = NormalizeKeys, Diagnostics = Diagnostics,
        BrakeSlopes = Brake ? Enumerable.Range(0, H).Select(h => 0.5f + h).ToArray() : null,
    };

    /// <summary>The resolved parameters.</summary>
    public GraphAttentionParams Params => GraphAttentionParams.Resolve([H, Nodes, D], [H, Nodes, D], [H, Nodes, D], Nodes, Edges, Options);

    /// <summary>Seeded q, k (times <see cref="InputScale"/>), v and dO.</summary>
    public (float[] Q, float[] K, float[] V, float[] DOut) Inputs(int seed = 1)
    {
        var n = H * Nodes * D;
        return (TestData.Normal(n, seed, InputScale), TestData.Normal(n, seed + 1, InputScale), TestData.Normal(n, seed + 2),
            TestData.Normal(n, seed + 3));
    }

    /// <summary>The float64 reference and the naive float32 reference, forward and backward.</summary>
    public (GraphAttentionReferenceOutput<double> F64, GraphAttentionReferenceOutput<float> F32,
        AttentionReferenceGradients<double> G64, AttentionReferenceGradients<float> G32) References(int seed = 1)
    {
        var (q, k, v, dOut) = Inputs(seed);
        var p = Params;
        var (qd, kd, vd, dd) = (TestData.ToDouble(q), TestData.ToDouble(k), TestData.ToDouble(v), TestData.ToDouble(dOut));
        return (GraphAttentionReference.Forward(p, RowPtr, ColIdx, qd, kd, vd), GraphAttentionReference.Forward(p, RowPtr, ColIdx, q, k, v),
            GraphAttentionReference.Backward(p, RowPtr, ColIdx, dd, qd, kd, vd), GraphAttentionReference.Backward(p, RowPtr, ColIdx, dOut, q, k, v));
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Name} H{H} Nn{Nodes} E{Edges} D{D} {Score}{(NormalizeKeys ? "+norm" : "")}{(Brake ? " brake" : "")}" +
        $"{(Diagnostics ? "" : " nodiag")}{(InputScale != 1f ? $" x{InputScale}" : "")}";
}

/// <summary>Test graphs in CSR form.</summary>
public static class Graphs
{
    /// <summary>CSR arrays of adjacency lists (neighbour order kept).</summary>
    public static (int[] RowPtr, int[] ColIdx) FromLists(IReadOnlyList<int[]> lists)
    {
        var rowPtr = new int[lists.Count + 1];
        for (var i = 0; i < lists.Count; i++) rowPtr[i + 1] = rowPtr[i] + lists[i].Length;
        return (rowPtr, lists.SelectMany(l => l).ToArray());
    }

    /// <summary>
    /// Nine nodes, every awkward case at once: node 0 isolated (but a neighbour of others), node 1 connected to every
    /// node (itself included), node 2 only a self-loop, node 3 degree 1 without its self, node 4 a self-loop among
    /// others, node 5 two neighbours without itself, node 6 unsorted neighbours with its self, 7 and 8 small.
    /// </summary>
    public static (int[] RowPtr, int[] ColIdx) Awkward() => FromLists(
    [
        [],
        [0, 1, 2, 3, 4, 5, 6, 7, 8],
        [2],
        [5],
        [1, 4, 0, 8],
        [3, 6],
        [8, 1, 6, 0],
        [7, 2, 3],
        [7],
    ]);

    /// <summary>
    /// <paramref name="nodes"/> nodes: node 0 a hub connected to every node and a neighbour of every node; the others
    /// have 1..4 random neighbours (seeded), a self-loop on every third.
    /// </summary>
    public static (int[] RowPtr, int[] ColIdx) Hub(int nodes, int seed)
    {
        var rng = new Random(seed);
        var lists = new int[nodes][];
        lists[0] = Enumerable.Range(0, nodes).Reverse().ToArray();
        for (var i = 1; i < nodes; i++)
        {
            var set = new HashSet<int> { 0 };
            if (i % 3 == 0) set.Add(i);
            var extra = rng.Next(0, 4);
            for (var e = 0; e < extra; e++) set.Add(rng.Next(nodes));
            lists[i] = set.ToArray();
        }
        return FromLists(lists);
    }

    /// <summary>A case on <see cref="Awkward"/>.</summary>
    public static GraphCase AwkwardCase(int h, int d, Score score = Score.Dot, bool normalize = false, bool brake = false,
        bool diagnostics = true, float inputScale = 1f)
    {
        var (rowPtr, colIdx) = Awkward();
        return new GraphCase("awkward", h, rowPtr, colIdx, d, score, normalize, brake, diagnostics, inputScale);
    }
}
