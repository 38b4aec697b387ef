// k-nearest-neighbour graphs over real data (issue 13: the graph-attention experiment's graphs), in CSR form.
//
// Similarity is the cosine of the feature vectors (pixels, or a trained model's features); each node keeps its k most
// similar other nodes (ties broken by the lower index, so the graph is deterministic). `Symmetric` adds the reverse of
// every edge (an undirected kNN graph: degrees vary, which is what graph attention meets in practice); self-loops are
// optional. Rows list neighbours in increasing node order without duplicates. Brute force O(N^2 F) with SIMD dot
// products: 2000 Fashion-MNIST images take well under a second.
using System.Numerics.Tensors;

namespace RouteKit.Engine.Data;

/// <summary>A graph in CSR form: the neighbours of node i are ColIdx[RowPtr[i]..RowPtr[i+1]], sorted, distinct.</summary>
public sealed record CsrArrays(int[] RowPtr, int[] ColIdx)
{
    /// <summary>Number of nodes.</summary>
    public int Nodes => RowPtr.Length - 1;

    /// <summary>Number of edges.</summary>
    public int Edges => ColIdx.Length;

    /// <summary>The neighbours of <paramref name="node"/>.</summary>
    public ReadOnlySpan<int> Neighbours(int node) => ColIdx.AsSpan(RowPtr[node], RowPtr[node + 1] - RowPtr[node]);
}

/// <summary>Builds cosine kNN graphs (see the file header).</summary>
public static class KnnGraph
{
    /// <summary>
    /// The kNN graph of the <paramref name="count"/> rows of <paramref name="features"/> ([count, width], row-major).
    /// </summary>
    /// <exception cref="ArgumentException">Sizes that do not fit, k outside [1, count - 1], or a non-finite feature.</exception>
    public static CsrArrays Build(ReadOnlySpan<float> features, int count, int width, int k, bool symmetric = true, bool selfLoops = true)
    {
        if (count < 2) throw new ArgumentException($"count {count}: a kNN graph needs at least 2 nodes.", nameof(count));
        if (width < 1) throw new ArgumentException($"width {width}: wanted at least 1.", nameof(width));
        if (features.Length != (long)count * width)
            throw new ArgumentException($"features has {features.Length} values; wanted count x width = {count} x {width}.", nameof(features));
        if (k < 1 || k >= count) throw new ArgumentException($"k {k}: wanted 1 to count - 1 = {count - 1}.", nameof(k));
        for (var i = 0; i < features.Length; i++)
            if (!float.IsFinite(features[i]))
                throw new ArgumentException($"features[{i}] (row {i / width}) is {features[i]}; features must be finite.", nameof(features));

        // Unit rows (a zero row stays zero: its cosine with everything is 0).
        var unit = new float[features.Length];
        for (var i = 0; i < count; i++)
        {
            var row = features.Slice(i * width, width);
            var norm = TensorPrimitives.Norm(row);
            var dst = unit.AsSpan(i * width, width);
            if (norm > 0) TensorPrimitives.Divide(row, norm, dst);
        }
        var neighbours = new List<int>[count];
        for (var i = 0; i < count; i++) neighbours[i] = new List<int>(symmetric ? 2 * k + 1 : k + 1);
        var similarity = new float[count];
        var order = new int[count];
        for (var i = 0; i < count; i++)
        {
            var qi = unit.AsSpan(i * width, width);
            for (var j = 0; j < count; j++) similarity[j] = j == i ? float.NegativeInfinity : TensorPrimitives.Dot(qi, unit.AsSpan(j * width, width));
            for (var j = 0; j < count; j++) order[j] = j;
            // Most similar first; equal similarities by the lower index.
            Array.Sort(order, (a, b) => similarity[a] != similarity[b] ? similarity[b].CompareTo(similarity[a]) : a.CompareTo(b));
            for (var n = 0; n < k; n++)
            {
                neighbours[i].Add(order[n]);
                if (symmetric) neighbours[order[n]].Add(i);
            }
        }
        var rowPtr = new int[count + 1];
        var cols = new List<int>(count * (symmetric ? 2 * k : k) + count);
        for (var i = 0; i < count; i++)
        {
            if (selfLoops) neighbours[i].Add(i);
            foreach (var j in neighbours[i].Distinct().Order()) cols.Add(j);
            rowPtr[i + 1] = cols.Count;
        }
        return new CsrArrays(rowPtr, [.. cols]);
    }
}
