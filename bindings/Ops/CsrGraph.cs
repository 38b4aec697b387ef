// The graph of GraphAttention: a CSR adjacency (rowPtr [Nn + 1], colIdx [E]), validated once at creation and reused
// across calls, with its transpose (CSC) for the backward's per-key gathers and the Managed backend's work plans.
// Shapes: Nn nodes, E edges; node i's neighbours are colIdx[rowPtr[i] .. rowPtr[i + 1]).
//
// Why a graph object rather than float tensors of ids (as Embedding's token ids): a graph is structure, not data. It is
// fixed across the calls of a training run, so validating it (monotone rowPtr, ids in range, no duplicate edge),
// transposing it and planning the Managed work split are done once here, and on an ILGPU device its four int arrays are
// uploaded once, exact for any Nn (float32 ids stop at 2^24).
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit;

/// <summary>
/// A directed graph in CSR form for <see cref="GraphAttention"/>: node i attends over its neighbours
/// <c>colIdx[rowPtr[i] .. rowPtr[i + 1])</c> (self-loops allowed, duplicate edges refused). Created once per device
/// with <see cref="Create(Device, int[], int[])"/>, which validates it and, on an ILGPU device, uploads it; immutable afterwards.
/// </summary>
public sealed class CsrGraph : IDisposable
{
    /// <summary>Edges per Managed work item: lighter nodes are packed into items of about this many edges, heavier
    /// nodes are split into chunks of this many edges combined afterwards in a fixed order.</summary>
    internal const int DefaultEdgeChunk = 2048;

    private MemoryBuffer1D<int, Stride1D.Dense>? rowPtrBuffer, colIdxBuffer, transposeBuffer;

    private CsrGraph(Device device, int[] rowPtr, int[] colIdx, int edgeChunk)
    {
        Device = device;
        RowPtr = rowPtr;
        ColIdx = colIdx;
        Nodes = rowPtr.Length - 1;
        (ColPtr, RowIdx) = Transpose(Nodes, rowPtr, colIdx);
        RowPlan = GraphWorkPlan.Create(RowPtr, edgeChunk);
        ColumnPlan = GraphWorkPlan.Create(ColPtr, edgeChunk);
        for (var i = 0; i < Nodes; i++) MaxDegree = Math.Max(MaxDegree, Degree(i));
        if (device.Accelerator is { } acc)
        {
            rowPtrBuffer = Upload(device, acc, RowPtr);
            colIdxBuffer = Upload(device, acc, ColIdx);
            transposeBuffer = Upload(device, acc, [.. ColPtr, .. RowIdx]);
        }
    }

    /// <summary>
    /// Validates a CSR graph and binds it to <paramref name="device"/> (the device of the tensors it will be used with).
    /// The arrays are copied: later changes to them do not reach the graph.
    /// </summary>
    /// <param name="device">The device of the q, k, v tensors this graph is used with.</param>
    /// <param name="rowPtr">Row pointers <c>[Nn + 1]</c>: rowPtr[0] = 0, non-decreasing, rowPtr[Nn] = E.</param>
    /// <param name="colIdx">Neighbour ids <c>[E]</c>, each in [0, Nn), no id twice in one row.</param>
    /// <exception cref="ArgumentException">The first problem found, naming the array, the index and the value.</exception>
    public static CsrGraph Create(Device device, int[] rowPtr, int[] colIdx) => Create(device, rowPtr, colIdx, DefaultEdgeChunk);

    /// <summary><see cref="Create(Device, int[], int[])"/> with an explicit Managed edge chunk (tests use small ones).</summary>
    internal static CsrGraph Create(Device device, int[] rowPtr, int[] colIdx, int edgeChunk)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(rowPtr);
        ArgumentNullException.ThrowIfNull(colIdx);
        ArgumentOutOfRangeException.ThrowIfLessThan(edgeChunk, 1);
        device.ThrowIfDisposed();
        Validate(rowPtr, colIdx);
        return new CsrGraph(device, (int[])rowPtr.Clone(), (int[])colIdx.Clone(), edgeChunk);
    }

    /// <summary>The device this graph was created for.</summary>
    public Device Device { get; }

    /// <summary>Nn, the node count.</summary>
    public int Nodes { get; }

    /// <summary>E, the edge count.</summary>
    public int Edges => ColIdx.Length;

    /// <summary>The largest out-degree (neighbours of one node).</summary>
    public int MaxDegree { get; }

    /// <summary>The number of neighbours of node <paramref name="i"/>.</summary>
    public int Degree(int i) => RowPtr[i + 1] - RowPtr[i];

    /// <summary>Row pointers <c>[Nn + 1]</c>.</summary>
    internal int[] RowPtr { get; }

    /// <summary>Neighbour ids <c>[E]</c>.</summary>
    internal int[] ColIdx { get; }

    /// <summary>The transpose's pointers <c>[Nn + 1]</c>: key node j is a neighbour of <c>RowIdx[ColPtr[j] .. ColPtr[j + 1])</c>.</summary>
    internal int[] ColPtr { get; }

    /// <summary>The transpose's source nodes <c>[E]</c>, ascending within each key node.</summary>
    internal int[] RowIdx { get; }

    /// <summary>The Managed work split over nodes (forward, dQ).</summary>
    internal GraphWorkPlan RowPlan { get; }

    /// <summary>The Managed work split over key nodes (dK, dV).</summary>
    internal GraphWorkPlan ColumnPlan { get; }

    internal ArrayView1D<int, Stride1D.Dense> RowPtrView => rowPtrBuffer!.View;
    internal ArrayView1D<int, Stride1D.Dense> ColIdxView => colIdxBuffer!.View;
    /// <summary>ColPtr then RowIdx in one device array <c>[Nn + 1 + E]</c>.</summary>
    internal ArrayView1D<int, Stride1D.Dense> TransposeView => transposeBuffer!.View;

    /// <inheritdoc />
    public void Dispose()
    {
        rowPtrBuffer?.Dispose();
        colIdxBuffer?.Dispose();
        transposeBuffer?.Dispose();
        rowPtrBuffer = colIdxBuffer = transposeBuffer = null;
    }

    private static void Validate(int[] rowPtr, int[] colIdx)
    {
        if (rowPtr.Length < 1)
            throw new ArgumentException("rowPtr must have length Nn + 1 >= 1; got an empty array.", nameof(rowPtr));
        if (rowPtr[0] != 0)
            throw new ArgumentException($"rowPtr[0] = {rowPtr[0]}; CSR row pointers start at 0.", nameof(rowPtr));
        var nodes = rowPtr.Length - 1;
        for (var i = 0; i < nodes; i++)
            if (rowPtr[i + 1] < rowPtr[i])
                throw new ArgumentException(
                    $"rowPtr is not monotone: rowPtr[{i + 1}] = {rowPtr[i + 1]} < rowPtr[{i}] = {rowPtr[i]}.", nameof(rowPtr));
        if (rowPtr[nodes] != colIdx.Length)
            throw new ArgumentException(
                $"rowPtr[Nn = {nodes}] = {rowPtr[nodes]}; wanted E = colIdx.Length = {colIdx.Length}.", nameof(rowPtr));
        // seen[j] = i + 1 when j has been met in row i: one pass finds duplicates without sorting.
        var seen = new int[nodes];
        for (var i = 0; i < nodes; i++)
        for (var e = rowPtr[i]; e < rowPtr[i + 1]; e++)
        {
            var j = colIdx[e];
            if ((uint)j >= (uint)nodes)
                throw new ArgumentException($"colIdx[{e}] = {j} (row {i}) is outside [0, Nn = {nodes}).", nameof(colIdx));
            if (seen[j] == i + 1)
                throw new ArgumentException(
                    $"colIdx[{e}] = {j} repeats an edge of row {i}; duplicate edges are refused (merge them, or give the " +
                    "edge weight through the values).", nameof(colIdx));
            seen[j] = i + 1;
        }
    }

    // Counting sort by column: sources come out ascending within each key node, so the backward's sums over a key's
    // queries run in a fixed order.
    private static (int[] ColPtr, int[] RowIdx) Transpose(int nodes, int[] rowPtr, int[] colIdx)
    {
        var colPtr = new int[nodes + 1];
        foreach (var j in colIdx) colPtr[j + 1]++;
        for (var j = 0; j < nodes; j++) colPtr[j + 1] += colPtr[j];
        var next = (int[])colPtr.Clone();
        var rowIdx = new int[colIdx.Length];
        for (var i = 0; i < nodes; i++)
        for (var e = rowPtr[i]; e < rowPtr[i + 1]; e++)
            rowIdx[next[colIdx[e]]++] = i;
        return (colPtr, rowIdx);
    }

    private static MemoryBuffer1D<int, Stride1D.Dense> Upload(Device device, Accelerator acc, int[] data)
    {
        // A zero-length buffer cannot be allocated everywhere; one unused element stands in for an empty array.
        var buffer = acc.Allocate1D<int>(Math.Max(1, data.Length));
        if (data.Length > 0) buffer.View.SubView(0, data.Length).CopyFromCPU(data);
        device.CountAllocation();
        return buffer;
    }
}

/// <summary>
/// How the Managed backend splits the nodes of a CSR (or CSC) structure into parallel work items of similar cost, for
/// power-law degrees: consecutive light nodes are packed into one item of about <c>edgeChunk</c> edges, and a node of
/// more than <c>edgeChunk</c> edges (a hub) is split into chunks of <c>edgeChunk</c> edges, each writing a partial
/// result into its own slot; the slots are then combined per hub in chunk order, so results are deterministic.
/// </summary>
internal sealed class GraphWorkPlan
{
    /// <summary>One work item: nodes [Node0, Node1) whole (Slot = -1), or edges [Edge0, Edge1) of hub Node0 into Slot.</summary>
    internal readonly record struct Item(int Node0, int Node1, int Edge0, int Edge1, int Slot);

    /// <summary>The items, in node order.</summary>
    public required Item[] Items { get; init; }

    /// <summary>Each hub: its node and its slots [FirstSlot, FirstSlot + Count).</summary>
    public required (int Node, int FirstSlot, int Count)[] Hubs { get; init; }

    /// <summary>Partial-result slots (chunks of hubs).</summary>
    public int Slots => Hubs.Length == 0 ? 0 : Hubs[^1].FirstSlot + Hubs[^1].Count;

    /// <summary>The largest number of edges one item reads for one node.</summary>
    public required int MaxItemEdges { get; init; }

    public static GraphWorkPlan Create(int[] ptr, int edgeChunk)
    {
        var nodes = ptr.Length - 1;
        var items = new List<Item>();
        var hubs = new List<(int, int, int)>();
        var slots = 0;
        var start = 0;
        long cost = 0;
        var maxEdges = 0;
        for (var i = 0; i < nodes; i++)
        {
            var degree = ptr[i + 1] - ptr[i];
            if (degree > edgeChunk)
            {
                if (start < i) items.Add(new Item(start, i, 0, 0, -1));
                var chunks = (degree + edgeChunk - 1) / edgeChunk;
                hubs.Add((i, slots, chunks));
                for (var c = 0; c < chunks; c++)
                    items.Add(new Item(i, i + 1, ptr[i] + c * edgeChunk, Math.Min(ptr[i + 1], ptr[i] + (c + 1) * edgeChunk), slots++));
                maxEdges = Math.Max(maxEdges, edgeChunk);
                (start, cost) = (i + 1, 0);
                continue;
            }
            maxEdges = Math.Max(maxEdges, degree);
            // A node costs its edges plus a few edges' worth of per-node work (loads, stores, the softmax's log).
            cost += degree + 4;
            if (cost < edgeChunk) continue;
            items.Add(new Item(start, i + 1, 0, 0, -1));
            (start, cost) = (i + 1, 0);
        }
        if (start < nodes) items.Add(new Item(start, nodes, 0, 0, -1));
        return new GraphWorkPlan { Items = items.ToArray(), Hubs = hubs.ToArray(), MaxItemEdges = maxEdges };
    }
}
