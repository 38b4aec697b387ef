// GraphAttention forward: per (head, node) a softmax over the node's CSR neighbours, O = sum_j P_ij v_j, Lse, the
// saved statistics and the fused diagnostics; never a per-edge buffer.
//
// Versions (listed by `routekit-perf list`; `routekit-perf graph --variant 1` times the Managed path, these kernels are
// validated by the tests; GPU timing not yet done):
//   1. GraphAttentionForward.WarpPerNodeKernel (2026-12-02): one warp per (head, node). The warp is cut into
//      S = warp / T edge slots of T lanes (T from the head dimension, 8 dims per lane, attention's layout); slot s walks
//      the node's edges s, s + S, ... with its own online softmax (m, l, s1, self, acc), and the S states are merged by
//      a butterfly of warp shuffles at the end, in a fixed order, so the result is the same on every run (slot 0 stores).
//      Load balance: warps do not synchronise with each other (no barrier, no shared memory), so a hub of degree 1e4
//      occupies one warp for 1e4 / S steps while its group's other warps finish their degree-2 nodes and retire; the
//      degree-2 nodes never wait for it. (A hub still bounds its own latency; splitting hubs over several warps with a
//      combine pass, as the Managed backend does, is the next version if a power-law graph shows that tail.)
//      Specialised on T (ILanes), Dot/Distance (IScoreKind) and diagnostics (IDiagnosticsKind).
//
// Shapes: H heads, Nn nodes, E edges, D head dim; q, k', v, O [H, Nn, D]; rowPtr [Nn + 1], colIdx [E].
// Scores z_ij = s q_i . k'_j - m_h [j != i] + bias_j, in that operation order (the backward recomputes them bit for bit).
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;

namespace RouteKit.Kernels.Graph;

/// <summary>Device code of the graph-attention forward.</summary>
public static class GraphAttentionForward
{
    /// <summary>The forward versions a perf harness can list, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("WarpPerNodeKernel", "one warp per (head, node), warp / T edge slots with online softmax, merged by shuffles"),
    ];

    /// <summary>
    /// Version 1. Grid: ceil(H Nn / W) groups of W warps (Group.DimX a multiple of the warp size); p.N = p.M = Nn,
    /// p.H heads. A node with no neighbours gets O = 0, Lse = -inf, statistics (-inf, 0) and zero diagnostics.
    /// </summary>
    public static void WarpPerNodeKernel<TLanes, TScore, TDiagnostics>(
        ArrayView1D<float, Stride1D.Dense> q,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [H, Nn, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [H, Nn], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H] brake m_h
        ArrayView1D<int, Stride1D.Dense> rowPtr,       // [Nn + 1]
        ArrayView1D<int, Stride1D.Dense> colIdx,       // [E]
        ArrayView1D<float, Stride1D.Dense> o,          // [H, Nn, D]
        ArrayView1D<float, Stride1D.Dense> lse,        // [H, Nn]
        ArrayView1D<float, Stride1D.Dense> stats,      // [H, Nn, 2] (m_i, log l_i)
        ArrayView1D<float, Stride1D.Dense> entropy,    // [H, Nn] normalised, written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> maxProb,    // [H, Nn], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> selfMass,   // [H, Nn], written only with diagnostics
        AttentionKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TDiagnostics : struct, IDiagnosticsKind
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var diagnostics = default(TDiagnostics).Enabled;
        var w = GraphWarp.Locate(p, lanes);
        var (lane, slot, slots, row, valid, h, i) = (w.Lane, w.Slot, w.Slots, w.Row, w.Valid, w.Head, w.Node);
        var (e0, e1) = w.EdgeRange(rowPtr);
        var slope = slopes[h];
        var (head0, qOff) = (w.Head0, w.Offset);
        var qi = LaneVector.Load(q, qOff, lane, lanes, w.Dims);

        var acc = default(LaneVector);   // sum e^(z - m) v
        var state = OnlineSoftmax.Empty; // m, l, s1 and the self-loop's weight e^(z_ii - m)
        for (var b = e0; b < e1; b += slots)
        {
            var e = b + slot;
            var has = e < e1;
            var j = has ? colIdx[e] : 0;
            var kj = LaneVector.Load(scoredKeys, (head0 + j) * p.D, lane, lanes, has ? p.D : 0);
            var dot = AttentionLanes.SegmentSum<TLanes>(qi.Dot(kj)); // every lane of the warp joins the shuffles
            if (!has) continue;
            var z = p.Scale * dot - (j != i ? slope : 0f);
            if (hasBias) z += keyBias[head0 + j];
            var weight = state.Add(z, ref acc, LaneVector.Load(v, (head0 + j) * p.D, lane, lanes, p.D), diagnostics);
            if (diagnostics && j == i) state.Mass = weight;
        }

        var (rowMax, sum, shiftedSum, self) = (state.Max, state.Sum, state.ShiftedSum, state.Mass);
        // Merge the slots' states: a butterfly over the slot bits, in a fixed order; slot 0's result is stored.
        for (var offset = lanes; offset < slots * lanes; offset *= 2)
        {
            var otherMax = Warp.ShuffleXor(rowMax, offset);
            var otherSum = Warp.ShuffleXor(sum, offset);
            var otherShifted = Warp.ShuffleXor(shiftedSum, offset);
            var otherSelf = Warp.ShuffleXor(self, offset);
            var otherAcc = GraphWarp.ShuffleXor(acc, offset);
            var merged = XMath.Max(rowMax, otherMax);
            var a = sum > 0f ? XMath.Exp(rowMax - merged) : 0f;
            var b = otherSum > 0f ? XMath.Exp(otherMax - merged) : 0f;
            if (diagnostics)
            {
                var mine = sum > 0f ? a * (shiftedSum + (rowMax - merged) * sum) : 0f;
                var theirs = otherSum > 0f ? b * (otherShifted + (otherMax - merged) * otherSum) : 0f;
                shiftedSum = mine + theirs;
                self = a * self + b * otherSelf;
            }
            sum = a * sum + b * otherSum;
            acc.Scale(a);
            acc.AddScaled(b, otherAcc);
            rowMax = merged;
        }

        if (!valid || slot != 0) return;
        var inv = sum > 0f ? 1f / sum : 0f;
        acc.Store(o, qOff, lane, lanes, p.D, inv);
        if (lane != 0) return;
        var logSum = sum > 0f ? XMath.Log(sum) : 0f;
        lse[row] = sum > 0f ? rowMax + logSum : float.NegativeInfinity;
        stats[2 * row] = sum > 0f ? rowMax : float.NegativeInfinity;
        stats[2 * row + 1] = logSum;
        if (!diagnostics) return;
        var degree = e1 - e0;
        entropy[row] = degree > 1 ? (logSum - shiftedSum * inv) / XMath.Log((float)degree) : 0f;
        maxProb[row] = inv;
        selfMass[row] = self * inv;
    }
}

/// <summary>
/// Where one thread sits in a warp-per-node graph kernel: warp w of the grid serves row w = h Nn + node (node = a query
/// node in the forward and dQ, a key node in dK/dV); its lanes form S = warp / T slots of T lanes.
/// </summary>
public struct GraphWarp
{
    /// <summary>Lane within the slot's T-lane segment (owns dims lane + c T).</summary>
    public int Lane;
    /// <summary>The slot, 0..S-1.</summary>
    public int Slot;
    /// <summary>S, slots per warp.</summary>
    public int Slots;
    /// <summary>h Nn + node.</summary>
    public int Row;
    /// <summary>False for the padding warps of the last group (they run no edge).</summary>
    public bool Valid;
    /// <summary>Head h.</summary>
    public int Head;
    /// <summary>Node.</summary>
    public int Node;
    /// <summary>h Nn: the first row of this head.</summary>
    public int Head0;
    /// <summary>D for a valid row, 0 for padding (loads give zeros).</summary>
    public int Dims;
    /// <summary>The row's offset in an [H, Nn, D] array (0 for padding).</summary>
    public int Offset;

    /// <summary>Locates the calling thread.</summary>
    public static GraphWarp Locate(AttentionKernelParams p, int lanes)
    {
        var warp = Warp.WarpSize;
        var inWarp = Group.IdxX % warp;
        var w = new GraphWarp
        {
            Lane = inWarp & (lanes - 1),
            Slot = inWarp / lanes,
            Slots = warp / lanes,
            Row = Grid.IdxX * (Group.DimX / warp) + Group.IdxX / warp,
        };
        w.Valid = w.Row < p.H * p.N;
        var row = w.Valid ? w.Row : 0;
        w.Head = row / p.N;
        w.Node = row - w.Head * p.N;
        w.Head0 = w.Head * p.N;
        w.Dims = w.Valid ? p.D : 0;
        w.Offset = w.Valid ? row * p.D : 0;
        return w;
    }

    /// <summary>This node's edges [First, End) in a CSR pointer array (empty for padding).</summary>
    public readonly (int First, int End) EdgeRange(ArrayView1D<int, Stride1D.Dense> ptr) =>
        Valid ? (ptr[Node], ptr[Node + 1]) : (0, 0);

    /// <summary>The eight values of the lane <paramref name="offset"/> lanes away (xor) in the warp.</summary>
    public static LaneVector ShuffleXor(LaneVector x, int offset) => new()
    {
        X0 = Warp.ShuffleXor(x.X0, offset),
        X1 = Warp.ShuffleXor(x.X1, offset),
        X2 = Warp.ShuffleXor(x.X2, offset),
        X3 = Warp.ShuffleXor(x.X3, offset),
        X4 = Warp.ShuffleXor(x.X4, offset),
        X5 = Warp.ShuffleXor(x.X5, offset),
        X6 = Warp.ShuffleXor(x.X6, offset),
        X7 = Warp.ShuffleXor(x.X7, offset),
    };

    /// <summary>The sum of <paramref name="x"/> over the warp's S slots (same lane in each), by a butterfly in a fixed order.</summary>
    public static LaneVector SumSlots(LaneVector x, int lanes, int slots)
    {
        for (var offset = lanes; offset < slots * lanes; offset *= 2)
        {
            var other = ShuffleXor(x, offset);
            x.AddScaled(1f, other);
        }
        return x;
    }

    /// <summary>The scalar sum over the warp's S slots, as the vector one.</summary>
    public static float SumSlots(float x, int lanes, int slots)
    {
        for (var offset = lanes; offset < slots * lanes; offset *= 2) x += Warp.ShuffleXor(x, offset);
        return x;
    }
}
