// GraphAttention on the Managed backend: per (head, node) a softmax over the node's CSR neighbours, SIMD over the head
// dimension (System.Numerics.Vector<float>, whatever width the machine accelerates), parallel over work items of the
// graph's plans (CsrGraph.RowPlan / ColumnPlan, GraphWorkPlan): light nodes packed into items of ~2048 edges, hub
// nodes split into 2048-edge chunks whose partial results are combined per hub in chunk order, so a power-law degree
// distribution neither leaves one worker with a hub nor changes the result from run to run.
//
// Shapes: H heads, Nn nodes, E edges, D head dim; q, k, v, O [H, Nn, D]; Lse [H, Nn]; Stats [H, Nn, 2].
//
// Versions (time with `routekit-perf graph`):
//   v1 (2026-12-02) forward: per node, scores of its edges into scratch (one SIMD dot each), max, then one pass of
//                   exp and O += w v_j; hub chunks keep (m, l, s1, self, acc) and are merged as the online softmax does.
//                   Backward: Delta_i = dO_i . O_i; dQ over the CSR plan; dK/dV gathered per key node over the
//                   transpose (CsrGraph.ColPtr/RowIdx), P recomputed from the saved (m_i, log l_i): no atomics.
//   v2 (2026-12-02) software prefetch (x86) of the key/value rows (forward, dQ) and query/dO rows (dK/dV) 8 edges
//                   ahead. `routekit-perf graph --repeats 7-9 --dense-n 1024` (Nn 1e5, E 1e6, H1 D64), three pairs on the
//                   quiet 2-core VM (1-minute load 0.75-0.99): forward 87.2 / 77.1 / 102.6 ms before, 86.8 / 66.4 / 52.4
//                   after (medians 87.2 -> 66.4, 1.31x); backward 221.5 / 200.2 / 209.4 before, 169.1 / 186.4 / 132.9
//                   after (209.4 -> 169.1, 1.24x). Results bit for bit unchanged (only loads are hinted).
//
// Key preparation computes k', |k| and the Distance bias as AttentionReference.ScoredKeys does (O(H Nn D), small beside
// the O(E D) edge work), and chains dL/dk' through the normalisation as AttentionReference.KeyGradient does, both in
// float as before. Allocation-free after warm-up (issue 11; ManagedAllocationTests): k', |k|, the bias, Delta, dL/dk'
// and the hub slots live in the calling thread's CallScratch (ManagedParallel.WorkerLocal), the per-worker edge scores
// in Scratch, and the context is a struct inside each parallel body (it was a class, and these buffers arrays, until
// 2026-12-02: 1.8 KB / 68 KB per forward / backward call with Dot, 4.3 MB / 10.7 MB with normalised Distance keys).
// Unnormalised keys are read in place.
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace RouteKit;

internal static unsafe class GraphAttentionManaged
{
    private const int ForwardState = 4; // per hub slot: m, l, s1 (sum w (z - m)), self weight

    internal static void Forward(GraphAttentionParams p, CsrGraph g, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        Span<float> o, Span<float> lse, Span<float> stats, Span<float> entropy, Span<float> maxProb, Span<float> selfMass)
    {
        if (p.H * p.Nodes == 0) return;
        var call = ManagedParallel.WorkerLocal<CallScratch>();
        var plan = g.RowPlan;
        fixed (float* qp = q, kp = k, vp = v, op = o, lp = lse, sp = stats, ep = entropy, mp = maxProb, selfp = selfMass)
        fixed (int* rp = g.RowPtr, cp = g.ColIdx)
        {
            PrepareKeys(p, call, kp, out var keys, out _, out var bias);
            var c = new Context
            {
                P = p, Ptr = rp, Idx = cp, Q = qp, Keys = keys, V = vp, Bias = bias, HasBias = p.Keys.Score == Score.Distance,
                O = op, Lse = lp, Stats = sp, Entropy = p.Diagnostics ? ep : null, MaxProb = mp, SelfMass = selfp,
                PartialState = call.PartialState.Ensure((long)plan.Slots * p.H * ForwardState), // [Slots, H, 4]
                PartialAcc = call.PartialAcc.Ensure((long)plan.Slots * p.H * p.D),              // [Slots, H, D]
                Slots = plan.Slots, Plan = plan,
            };
            var body = new ForwardItems { C = c };
            ManagedParallel.For(p.H * plan.Items.Length, ref body);
            var hubs = new ForwardHubs { C = c };
            ManagedParallel.For(p.H * plan.Hubs.Length, ref hubs);
        }
    }

    internal static void Backward(GraphAttentionParams p, CsrGraph g, ReadOnlySpan<float> dOut, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, ReadOnlySpan<float> o, ReadOnlySpan<float> stats, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        if (p.H * p.Nodes == 0) return;
        var call = ManagedParallel.WorkerLocal<CallScratch>();
        var rowPlan = g.RowPlan;
        var columnPlan = g.ColumnPlan;
        var slots = Math.Max(rowPlan.Slots, columnPlan.Slots);
        fixed (float* dop = dOut, qp = q, kp = k, vp = v, op = o, sp = stats)
        fixed (float* dqp = dq, dkp = dk, dvp = dv)
        fixed (int* rp = g.RowPtr, cp = g.ColIdx, colp = g.ColPtr, rowp = g.RowIdx)
        {
            PrepareKeys(p, call, kp, out var keys, out var norms, out var bias);
            // With NormalizeKeys the key pass writes dL/dk' into scratch, chained into dk afterwards.
            var dkScored = p.Keys.NormalizeKeys ? call.DkScored.Ensure(dk.Length) : dkp; // [H, Nn, D]
            var c = new Context
            {
                P = p, Ptr = rp, Idx = cp, Q = qp, Keys = keys, V = vp, Bias = bias, HasBias = p.Keys.Score == Score.Distance,
                O = op, Stats = sp, DOut = dop, Delta = call.Delta.Ensure((long)p.H * p.Nodes), // [H, Nn] dO_i . O_i
                DQ = dqp, DK = dkScored, DV = dvp,
                PartialAcc = call.PartialAcc.Ensure((long)slots * p.H * p.D),   // [Slots, H, D] dq or dk' parts
                PartialAcc2 = call.PartialAcc2.Ensure((long)slots * p.H * p.D), // [Slots, H, D] dv parts
                PartialState = call.PartialState.Ensure((long)slots * p.H),     // [Slots, H] sum dz parts
                Plan = rowPlan, Slots = slots,
            };
            var deltas = new DeltaRows { C = c };
            ManagedParallel.For(p.H, ref deltas);
            var query = new QueryItems { C = c };
            ManagedParallel.For(p.H * rowPlan.Items.Length, ref query);
            var queryHubs = new QueryHubs { C = c };
            ManagedParallel.For(p.H * rowPlan.Hubs.Length, ref queryHubs);

            c.Plan = columnPlan;
            c.Ptr = colp;
            c.Idx = rowp;
            var key = new KeyItems { C = c };
            ManagedParallel.For(p.H * columnPlan.Items.Length, ref key);
            var keyHubs = new KeyHubs { C = c };
            ManagedParallel.For(p.H * columnPlan.Hubs.Length, ref keyHubs);
            if (p.Keys.NormalizeKeys) KeyGradient(p, kp, norms, dkScored, dkp);
        }
    }

    /// <summary>
    /// The calling thread's per-call buffers (prepared keys, key norms, Distance bias, row deltas, dL/dk', hub partial
    /// results), kept between calls (ManagedParallel.WorkerLocal) so a training step does not allocate them (issue 11).
    /// Every buffer is fully written before it is read in each call.
    /// </summary>
    private sealed class CallScratch
    {
        public readonly ThreadScratch Keys = new(), Norms = new(), Bias = new(), Delta = new(), DkScored = new();
        public readonly ThreadScratch PartialState = new(), PartialAcc = new(), PartialAcc2 = new();
    }

    // The keys as the score reads them: k' with NormalizeKeys (else k itself, nothing copied), |k| (with NormalizeKeys)
    // and the Distance bias -(s/2)|k'|^2 (null for Dot), [H, Nn, D] / [H, Nn]. k' and |k| are computed exactly as
    // AttentionReference.ScoredKeys does in float (sequential sums), as this op did before its buffers were kept.
    private static void PrepareKeys(GraphAttentionParams p, CallScratch call, float* k, out float* keys, out float* norms, out float* bias)
    {
        var rows = p.H * p.Nodes;
        var d = p.D;
        keys = k;
        norms = bias = null;
        if (p.Keys.NormalizeKeys)
        {
            keys = call.Keys.Ensure((long)rows * d);
            norms = call.Norms.Ensure(rows);
            float rho = p.Keys.KeyRadius, eps = p.Keys.KeyEpsilon;
            for (var r = 0; r < rows; r++)
            {
                float* src = k + (nint)r * d, dst = keys + (nint)r * d;
                var sq = 0f;
                for (var e = 0; e < d; e++) sq += src[e] * src[e];
                norms[r] = float.Sqrt(sq);
                var f = rho / float.Max(norms[r], eps);
                for (var e = 0; e < d; e++) dst[e] = src[e] * f;
            }
        }
        if (p.Keys.Score != Score.Distance) return;
        bias = call.Bias.Ensure(rows);
        for (var r = 0; r < rows; r++)
            bias[r] = -0.5f * p.Scale * Dot(keys + (nint)r * d, keys + (nint)r * d, d);
    }

    // dk from dL/dk' through the key normalisation, in float exactly as AttentionReference.KeyGradient computes it.
    private static void KeyGradient(GraphAttentionParams p, float* k, float* norms, float* dkScored, float* dk)
    {
        var rows = p.H * p.Nodes;
        var d = p.D;
        float rho = p.Keys.KeyRadius, eps = p.Keys.KeyEpsilon;
        for (var r = 0; r < rows; r++)
        {
            var off = (nint)r * d;
            var norm = norms[r];
            if (norm <= eps)
            {
                for (var e = 0; e < d; e++) dk[off + e] = rho / eps * dkScored[off + e];
                continue;
            }
            var dot = 0f;
            for (var e = 0; e < d; e++) dot += k[off + e] * dkScored[off + e];
            var udk = dot / norm; // u . dk'
            for (var e = 0; e < d; e++) dk[off + e] = rho / norm * (dkScored[off + e] - k[off + e] / norm * udk);
        }
    }

    /// <summary>
    /// Everything a work item reads and writes (pointers into pinned spans and scratch, valid during the call). A struct
    /// held by each parallel body and passed by <c>in</c>, so a call allocates no context object.
    /// </summary>
    private struct Context
    {
        public GraphAttentionParams P;
        public GraphWorkPlan Plan;
        public int* Ptr, Idx;      // CSR (rowPtr, colIdx) or the transpose (colPtr, rowIdx)
        public float* Q, Keys, V, Bias, O, Lse, Stats, Entropy, MaxProb, SelfMass;
        public float* DOut, Delta, DQ, DK, DV;
        public float* PartialState, PartialAcc, PartialAcc2;
        public bool HasBias;
        public int Slots;

        /// <summary>Parallel index -> (head, work item of <see cref="Plan"/>): heads outermost.</summary>
        public readonly (int H, GraphWorkPlan.Item Item) ItemAt(int index) => (index / Plan.Items.Length, Plan.Items[index % Plan.Items.Length]);

        /// <summary>Parallel index -> (head, hub of <see cref="Plan"/>).</summary>
        public readonly (int H, int Node, int FirstSlot, int Count) HubAt(int index)
        {
            var (node, first, count) = Plan.Hubs[index % Plan.Hubs.Length];
            return (index / Plan.Hubs.Length, node, first, count);
        }
    }

    /// <summary>Per-worker scratch: edge scores and two D-vectors.</summary>
    private sealed class Scratch
    {
        private float[] z = [], a = [], b = [];

        public Buffers Ensure(int edges, int d)
        {
            if (z.Length < edges) z = GC.AllocateArray<float>(edges, pinned: true);
            if (a.Length < d)
            {
                a = GC.AllocateArray<float>(d, pinned: true);
                b = GC.AllocateArray<float>(d, pinned: true);
            }
            return new Buffers
            {
                Z = (float*)Unsafe.AsPointer(ref z[0]), A = (float*)Unsafe.AsPointer(ref a[0]), B = (float*)Unsafe.AsPointer(ref b[0]),
            };
        }
    }

    /// <summary>A worker's scratch: Z [edges], A and B [D] (pinned).</summary>
    private struct Buffers
    {
        public float* Z, A, B;
    }

    private static Buffers ScratchFor(in Context c) =>
        ManagedParallel.WorkerLocal<Scratch>().Ensure(Math.Max(1, c.Plan.MaxItemEdges), Math.Max(1, c.P.D));

    // z_ij = s q_i . k'_j - m_h [j != i] (+ bias_j): one definition for the forward and both backward passes, so the
    // backward's z is the forward's bit for bit and z - m_i is exact at the row max.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float EdgeScore(in Context c, int h, int i, int j, float brake)
    {
        var p = c.P;
        var z = p.Scale * Dot(c.Q + ((nint)h * p.Nodes + i) * p.D, c.Keys + ((nint)h * p.Nodes + j) * p.D, p.D) - (j != i ? brake : 0f);
        if (c.HasBias) z += c.Bias[h * p.Nodes + j];
        return z;
    }

    // Software prefetch of the row of node j a few edges ahead (v2): an edge's key and value rows sit anywhere in the
    // node table, so the hardware prefetcher cannot guess them and each would cost a DRAM round trip in turn; issuing
    // the loads PrefetchAhead edges early overlaps them. x86 only (.NET exposes no prefetch instruction on Arm, where
    // this is a no-op).
    private const int PrefetchAhead = 8;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* row, int d)
    {
        if (!Sse.IsSupported) return;
        for (var o = 0; o < d; o += 16) Sse.Prefetch0(row + o);
    }

    // ---- forward ----

    private struct ForwardItems : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var (h, it) = C.ItemAt(index);
            var scratch = ScratchFor(in C);
            float* z = scratch.Z, acc = scratch.A;
            if (it.Slot >= 0)
            {
                var st = C.PartialState + ((nint)it.Slot * C.P.H + h) * ForwardState;
                ForwardEdges(in C, h, it.Node0, it.Edge0, it.Edge1, z, C.PartialAcc + ((nint)it.Slot * C.P.H + h) * C.P.D, st);
                return;
            }
            var state = stackalloc float[ForwardState];
            for (var i = it.Node0; i < it.Node1; i++)
            {
                ForwardEdges(in C, h, i, C.Ptr[i], C.Ptr[i + 1], z, acc, state);
                WriteNode(in C, h, i, acc, state);
            }
        }
    }

    private struct ForwardHubs : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var (h, node, first, count) = C.HubAt(index);
            var p = C.P;
            var acc = ScratchFor(in C).A;
            var state = stackalloc float[ForwardState];
            var m = float.NegativeInfinity;
            for (var s = first; s < first + count; s++) m = MathF.Max(m, C.PartialState[((nint)s * p.H + h) * ForwardState]);
            state[0] = m;
            state[1] = state[2] = state[3] = 0f;
            new Span<float>(acc, p.D).Clear();
            // Chunks merged in order: sum e^(m_c - m) (l_c, s1_c + (m_c - m) l_c, self_c, acc_c).
            for (var s = first; s < first + count; s++)
            {
                var part = C.PartialState + ((nint)s * p.H + h) * ForwardState;
                var alpha = MathF.Exp(part[0] - m);
                state[1] += alpha * part[1];
                state[2] += alpha * (part[2] + (part[0] - m) * part[1]);
                state[3] += alpha * part[3];
                AddScaled(acc, alpha, C.PartialAcc + ((nint)s * p.H + h) * p.D, p.D);
            }
            WriteNode(in C, h, node, acc, state);
        }
    }

    // Over edges [e0, e1) of node i: state = (m, l = sum w, s1 = sum w (z - m), w_self), acc = sum w v_j, w = e^(z - m).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardEdges(in Context c, int h, int i, int e0, int e1, float* z, float* acc, float* state)
    {
        var p = c.P;
        var brake = p.BrakeSlopes[h];
        var m = float.NegativeInfinity;
        var table = (nint)h * p.Nodes;
        for (var e = e0; e < e1; e++)
        {
            if (e + PrefetchAhead < e1) Prefetch(c.Keys + (table + c.Idx[e + PrefetchAhead]) * p.D, p.D);
            z[e - e0] = EdgeScore(in c, h, i, c.Idx[e], brake);
            m = MathF.Max(m, z[e - e0]);
        }
        new Span<float>(acc, p.D).Clear();
        float l = 0f, s1 = 0f, self = 0f;
        for (var e = e0; e < e1; e++)
        {
            var j = c.Idx[e];
            if (e + PrefetchAhead < e1) Prefetch(c.V + (table + c.Idx[e + PrefetchAhead]) * p.D, p.D);
            var shifted = z[e - e0] - m;
            var w = MathF.Exp(shifted);
            l += w;
            s1 += w * shifted;
            if (j == i) self = w;
            AddScaled(acc, w, c.V + ((nint)h * p.Nodes + j) * p.D, p.D);
        }
        state[0] = m;
        state[1] = l;
        state[2] = s1;
        state[3] = self;
    }

    private static void WriteNode(in Context c, int h, int i, float* acc, float* state)
    {
        var p = c.P;
        var row = (nint)h * p.Nodes + i;
        var dst = c.O + row * p.D;
        float m = state[0], l = state[1];
        var degree = c.Ptr[i + 1] - c.Ptr[i];
        if (degree == 0)
        {
            new Span<float>(dst, p.D).Clear();
            c.Lse[row] = float.NegativeInfinity;
            c.Stats[2 * row] = float.NegativeInfinity;
            c.Stats[2 * row + 1] = 0f;
            if (c.Entropy != null) c.Entropy[row] = c.MaxProb[row] = c.SelfMass[row] = 0f;
            return;
        }
        var inv = 1f / l;
        for (var d = 0; d < p.D; d++) dst[d] = acc[d] * inv;
        var logSum = MathF.Log(l);
        c.Lse[row] = m + logSum;
        c.Stats[2 * row] = m;
        c.Stats[2 * row + 1] = logSum;
        if (c.Entropy == null) return;
        // Entropy = log l - s1 / l (relative to the max: no O(|z|) cancellation), normalised by log(degree); 0 at degree 1.
        c.Entropy[row] = degree > 1 ? (logSum - state[2] * inv) / MathF.Log(degree) : 0f;
        c.MaxProb[row] = inv;
        c.SelfMass[row] = state[3] * inv;
    }

    // ---- backward ----

    private struct DeltaRows : IParallelBody
    {
        public Context C;

        public readonly void Run(int h)
        {
            var p = C.P;
            for (var i = 0; i < p.Nodes; i++)
            {
                var off = ((nint)h * p.Nodes + i) * p.D;
                C.Delta[h * p.Nodes + i] = Dot(C.DOut + off, C.O + off, p.D);
            }
        }
    }

    // P_ij = e^((z_ij - m_i) - log l_i) from the forward's statistics; 0 for a node with no neighbours (never asked).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Probability(in Context c, int row, float z) => MathF.Exp(z - c.Stats[2 * row] - c.Stats[2 * row + 1]);

    private struct QueryItems : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var p = C.P;
            var (h, it) = C.ItemAt(index);
            var acc = ScratchFor(in C).A;
            if (it.Slot >= 0)
            {
                QueryEdges(in C, h, it.Node0, it.Edge0, it.Edge1, C.PartialAcc + ((nint)it.Slot * p.H + h) * p.D);
                return;
            }
            for (var i = it.Node0; i < it.Node1; i++)
            {
                QueryEdges(in C, h, i, C.Ptr[i], C.Ptr[i + 1], acc);
                StoreScaled(C.DQ + ((nint)h * p.Nodes + i) * p.D, acc, p.Scale, p.D);
            }
        }
    }

    private struct QueryHubs : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var p = C.P;
            var (h, node, first, count) = C.HubAt(index);
            var acc = ScratchFor(in C).A;
            new Span<float>(acc, p.D).Clear();
            for (var s = first; s < first + count; s++) AddScaled(acc, 1f, C.PartialAcc + ((nint)s * p.H + h) * p.D, p.D);
            StoreScaled(C.DQ + ((nint)h * p.Nodes + node) * p.D, acc, p.Scale, p.D);
        }
    }

    // acc = sum over edges [e0, e1) of node i of dz_ij k'_j, dz_ij = P_ij (dO_i . v_j - Delta_i).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QueryEdges(in Context c, int h, int i, int e0, int e1, float* acc)
    {
        var p = c.P;
        var row = h * p.Nodes + i;
        var brake = p.BrakeSlopes[h];
        var dO = c.DOut + (nint)row * p.D;
        new Span<float>(acc, p.D).Clear();
        var table = (nint)h * p.Nodes;
        for (var e = e0; e < e1; e++)
        {
            var j = c.Idx[e];
            if (e + PrefetchAhead < e1)
            {
                var ahead = (table + c.Idx[e + PrefetchAhead]) * p.D;
                Prefetch(c.Keys + ahead, p.D);
                Prefetch(c.V + ahead, p.D);
            }
            var prob = Probability(in c, row, EdgeScore(in c, h, i, j, brake));
            var dz = prob * (Dot(dO, c.V + ((nint)h * p.Nodes + j) * p.D, p.D) - c.Delta[row]);
            AddScaled(acc, dz, c.Keys + ((nint)h * p.Nodes + j) * p.D, p.D);
        }
    }

    private struct KeyItems : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var p = C.P;
            var (h, it) = C.ItemAt(index);
            var scratch = ScratchFor(in C);
            float* dkAcc = scratch.A, dvAcc = scratch.B;
            if (it.Slot >= 0)
            {
                var part = (nint)it.Slot * p.H + h;
                C.PartialState[part] = KeyEdges(in C, h, it.Node0, it.Edge0, it.Edge1, C.PartialAcc + part * p.D, C.PartialAcc2 + part * p.D);
                return;
            }
            for (var j = it.Node0; j < it.Node1; j++)
                WriteKey(in C, h, j, dkAcc, dvAcc, KeyEdges(in C, h, j, C.Ptr[j], C.Ptr[j + 1], dkAcc, dvAcc));
        }
    }

    private struct KeyHubs : IParallelBody
    {
        public Context C;

        public readonly void Run(int index)
        {
            var p = C.P;
            var (h, node, first, count) = C.HubAt(index);
            var scratch = ScratchFor(in C);
            float* dkAcc = scratch.A, dvAcc = scratch.B;
            new Span<float>(dkAcc, p.D).Clear();
            new Span<float>(dvAcc, p.D).Clear();
            var dzSum = 0f;
            for (var s = first; s < first + count; s++)
            {
                var part = (nint)s * p.H + h;
                AddScaled(dkAcc, 1f, C.PartialAcc + part * p.D, p.D);
                AddScaled(dvAcc, 1f, C.PartialAcc2 + part * p.D, p.D);
                dzSum += C.PartialState[part];
            }
            WriteKey(in C, h, node, dkAcc, dvAcc, dzSum);
        }
    }

    // Over the transpose's edges [e0, e1) into key node j: dkAcc = sum dz_ij q_i, dvAcc = sum P_ij dO_i; returns sum dz_ij.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float KeyEdges(in Context c, int h, int j, int e0, int e1, float* dkAcc, float* dvAcc)
    {
        var p = c.P;
        var vj = c.V + ((nint)h * p.Nodes + j) * p.D;
        var brake = p.BrakeSlopes[h];
        new Span<float>(dkAcc, p.D).Clear();
        new Span<float>(dvAcc, p.D).Clear();
        var dzSum = 0f;
        var table = (nint)h * p.Nodes;
        for (var e = e0; e < e1; e++)
        {
            var i = c.Idx[e];
            if (e + PrefetchAhead < e1)
            {
                var ahead = (table + c.Idx[e + PrefetchAhead]) * p.D;
                Prefetch(c.Q + ahead, p.D);
                Prefetch(c.DOut + ahead, p.D);
            }
            var row = h * p.Nodes + i;
            var dO = c.DOut + (nint)row * p.D;
            var prob = Probability(in c, row, EdgeScore(in c, h, i, j, brake));
            var dz = prob * (Dot(dO, vj, p.D) - c.Delta[row]);
            dzSum += dz;
            AddScaled(dkAcc, dz, c.Q + (nint)row * p.D, p.D);
            AddScaled(dvAcc, prob, dO, p.D);
        }
        return dzSum;
    }

    // dk'_j = s (sum dz q - [Distance] (sum dz) k'_j); dv_j as summed.
    private static void WriteKey(in Context c, int h, int j, float* dkAcc, float* dvAcc, float dzSum)
    {
        var p = c.P;
        var off = ((nint)h * p.Nodes + j) * p.D;
        if (c.HasBias) AddScaled(dkAcc, -dzSum, c.Keys + off, p.D);
        StoreScaled(c.DK + off, dkAcc, p.Scale, p.D);
        StoreScaled(c.DV + off, dvAcc, 1f, p.D);
    }

    // ---- SIMD over the head dimension ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        var acc = Vector<float>.Zero;
        var d = 0;
        for (; d <= n - Vector<float>.Count; d += Vector<float>.Count)
            acc = Vector.MultiplyAddEstimate(Vector.Load(a + d), Vector.Load(b + d), acc);
        var sum = Vector.Sum(acc);
        for (; d < n; d++) sum += a[d] * b[d];
        return sum;
    }

    // acc += w x.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled(float* acc, float w, float* x, int n)
    {
        var vw = new Vector<float>(w);
        var d = 0;
        for (; d <= n - Vector<float>.Count; d += Vector<float>.Count)
            Vector.MultiplyAddEstimate(vw, Vector.Load(x + d), Vector.Load(acc + d)).Store(acc + d);
        for (; d < n; d++) acc[d] += w * x[d];
    }

    private static void StoreScaled(float* dst, float* src, float scale, int n)
    {
        for (var d = 0; d < n; d++) dst[d] = scale * src[d];
    }
}
