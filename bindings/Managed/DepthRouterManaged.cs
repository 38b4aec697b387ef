// DepthRouter on the Managed backend: one work item per block of (token, head) columns, each column's whole depth
// column (at most 64 layers) walked by one thread with its per-layer scalars on the stack, SIMD over the head
// dimension with System.Numerics.Vector<float> (whatever width the JIT picks: 512, 256 or 128 bits, never emulated), and
// ManagedParallel.For over the column blocks. A column's scores and key biases are stackalloc'd. With Lq > 1 its keys
// and values (and in the backward their gradients) are gathered into contiguous per-worker [L, D] buffers
// (ManagedParallel.WorkerLocal, kept between calls), as each is used up to Lq times. With Lq = 1 (the training call)
// each is used once: the block's columns are walked layer by layer in place (per layer one contiguous run of 16 D
// floats), k' = f k formed in registers, and dK, dV written directly (ForwardSingleQueryBlock, BackwardSingleQueryBlock).
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim; q, O, dO [Lq, T, H, D]; k, v [L, T, H, D];
// stats [Lq, T, H, 2]; a column c = t H + h; layer j of column c starts at (j T H + c) D.
//
// Versions (time with `routekit-perf depth`):
//   v1 (2026-12-02) forward: per column, the keys as the score sees them, k'_j = f_j k_j with f_j = rho / max(|k_j|, eps)
//                   (k itself without NormalizeKeys), and the Distance biases -(s/2)|k'_j|^2 once, then per query layer the
//                   l + 1 scores z_j = s (q . k'_j) + bias_j - m (l - j),
//                   a two-pass softmax over them (L <= 64 scores fit on the stack) and O = sum P_j v_j by SIMD axpys.
//                   Backward: per column, query layers in ascending order, P recomputed from the saved (m, log l) with z
//                   formed in the forward's operation order; dq, dk', dv accumulated by the column's one thread, so the
//                   sums have a fixed order and no atomics; dk' chained through the normalisation (AttentionManaged's).
//                   Keys are read L (l + 1) / 2 times when Lq = L: the gathered column (2 L D floats, 32 KB at L = 64,
//                   D = 64) stays in L1/L2 while its queries run.
//                   Why k' is stored rather than folded into the score as s f_j (q . k_j): with D = 1 and normalised keys
//                   every k' is exactly +-1, so equal keys tie exactly; s f_j (q . k_j) rounds differently per key and
//                   split a 0.5/0.5 tie at logits of 435 by 6e-5, 4x the naive float32 reference's error (seeded
//                   random case, 2026-12-02).
//   v2 (2026-12-02) Lq = 1 (the training call: each key and value used once) no longer gathers: per block of 16 columns
//                   the forward walks the layers in place (one contiguous run of 16 D floats per layer and tensor),
//                   scores first (k' = f k formed in registers, one rounded multiply per element as the gather stored
//                   it, and the Distance bias's dot in the same pass, so scores are bitwise v1's and the exact-tie property
//                   holds), then the values; the backward is one pass over the layers writing dK, dV directly (each
//                   (layer, column) has one term and one owning thread: no [L, D] clears, no scatter) with dq in the
//                   output rows. dk' is chained through the key normalisation with Vector<double> (the scalar float64
//                   chain was ~59 of 71 ms of the L = 8 backward kernel). Lq > 1: SIMD gather, and the value mix holds O
//                   in registers across layers. Per element the operations and their order are v1's except the
//                   normalisation chain's float64 sums. `routekit-perf depth --allow-busy`, v1 then v2 back to back on a
//                   BUSY machine (load average 3.7 to 11.7 on 2 cores: another engineer's job held about one core;
//                   memory copy measured 23.4 and 29.1 GB/s in the two runs), T = 4096, H = 8, D = 64, Distance +
//                   NormalizeKeys, ms (v1 -> v2; "floor" = the op's minimum bytes at v2's run's copy rate):
//                     Lq  L   forward           backward
//                     8   8   62.5 ->  48.7     277.0 ->  148.4
//                     1   8   28.9 ->  30.6     163.0 ->   45.6   (floor 5.2, 10.4)
//                     24  24  408.1 -> 276.9    1114.1 ->  695.4
//                     1   24  121.7 ->  44.5    1056.6 ->   80.1   (floor 14.4, 28.8)
//                     64  64  2108.3 -> 711.4   2546.2 -> 2160.0
//                     1   64  214.5 -> 240.1     836.0 ->  372.0   (floor 37.5, 75.0)
//                   Figures are indicative only (the same v1 run's Lq = 1, L = 24 backward, 1057 ms, is out of line with
//                   its L = 64 one). The public op's time includes the launcher's finiteness scans of the inputs, about
//                   a third of the Lq = 1, L = 8 forward; the Lq = 1 forward kernel is not yet at 2-3x of its floor at
//                   L = 8 and L = 64.
using System.Numerics;
using System.Runtime.CompilerServices;

namespace RouteKit;

internal static unsafe class DepthRouterManaged
{
    /// <summary>(token, head) columns per work item: enough work to amortise the claim, small enough to balance.</summary>
    private const int ColumnsPerItem = 16;

    internal static void Forward(DepthRouterParams p, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        Span<float> o, Span<float> stats, Span<float> entropy, Span<float> maxProb, Span<float> embedding)
    {
        fixed (float* qp = q, kp = k, vp = v, op = o, sp = stats, ep = entropy, mp = maxProb, bp = embedding)
        {
            var body = new ForwardItems
            {
                P = p, Q = qp, K = kp, V = vp, O = op, Stats = sp, Entropy = ep, MaxProb = mp, Embedding = bp,
                Diagnostics = p.Diagnostics && !entropy.IsEmpty,
            };
            ManagedParallel.For((p.Columns + ColumnsPerItem - 1) / ColumnsPerItem, ref body);
        }
    }

    // keyRows: p.KeyRows, built once per problem by the caller (the property allocates a new record).
    internal static void Backward(DepthRouterParams p, AttentionParams keyRows, ReadOnlySpan<float> dOut, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, ReadOnlySpan<float> o, ReadOnlySpan<float> stats, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        fixed (float* dOutP = dOut, qp = q, kp = k, vp = v, op = o, sp = stats, dqp = dq, dkp = dk, dvp = dv)
        {
            var body = new BackwardItems
            {
                P = p, KeyRows = keyRows, DOut = dOutP, Q = qp, K = kp, V = vp, O = op, Stats = sp, DQ = dqp, DK = dkp, DV = dvp,
            };
            ManagedParallel.For((p.Columns + ColumnsPerItem - 1) / ColumnsPerItem, ref body);
        }
    }

    private struct ForwardItems : IParallelBody
    {
        public DepthRouterParams P;
        public float* Q, K, V, O, Stats, Entropy, MaxProb, Embedding;
        public bool Diagnostics;

        public readonly void Run(int item)
        {
            var end = Math.Min(P.Columns, (item + 1) * ColumnsPerItem);
            if (P.Lq == 1)
            {
                var block = stackalloc float[ColumnsPerItem * (DepthRouterParams.MaxLayers + 1)];
                ForwardSingleQueryBlock(this, item * ColumnsPerItem, end, block);
                return;
            }
            var scratch = stackalloc float[2 * DepthRouterParams.MaxLayers];
            var column = ColumnScratch.ForThisWorker(P, backward: false);
            fixed (float* keys = column.Keys, values = column.Values)
                for (var c = item * ColumnsPerItem; c < end; c++) ForwardColumn(this, c, scratch, keys, values);
        }
    }

    private struct BackwardItems : IParallelBody
    {
        public DepthRouterParams P;
        public AttentionParams KeyRows;
        public float* DOut, Q, K, V, O, Stats, DQ, DK, DV;

        public readonly void Run(int item)
        {
            var end = Math.Min(P.Columns, (item + 1) * ColumnsPerItem);
            if (P.Lq == 1)
            {
                var block = stackalloc float[ColumnsPerItem];
                BackwardSingleQueryBlock(this, item * ColumnsPerItem, end, block);
                return;
            }
            var scratch = stackalloc float[2 * DepthRouterParams.MaxLayers];
            var column = ColumnScratch.ForThisWorker(P, backward: true);
            fixed (float* keys = column.Keys, values = column.Values, dKeys = column.DKeys, dValues = column.DValues)
                for (var c = item * ColumnsPerItem; c < end; c++) BackwardColumn(this, c, scratch, keys, values, dKeys, dValues);
        }
    }

    // (Lq > 1 only.) Gathers column c's keys as the score sees them, k' = f k (f = rho / max(|k|, eps) with NormalizeKeys, else 1), and
    // its values into contiguous [L, D] scratch, and sets bias_j = -(s/2)|k'_j|^2 (0 for Dot). In the tensors a column's
    // layers sit T H D floats apart, a power of two at the shapes models use, so walking them in place maps every layer
    // onto the same cache sets. 2026-12-02, on a machine with a load average of ~480 on 2 cores (figures indicative only):
    // Lq = L = 64, T = 4096, H = 8, D = 64 went from 3.7% to 4.3% of the FMA peak per CPU-second, the Lq = 1, L = 64
    // forward from 939 to 495 ms. Both are far below what the arithmetic allows; quiet-machine figures are pending.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void GatherColumn(DepthRouterParams p, int c, float* k, float* v, float* keys, float* values, float* bias)
    {
        var stride = (nint)p.Columns * p.D;
        for (var j = 0; j < p.L; j++)
        {
            float* kj = k + j * stride + (nint)c * p.D, kn = keys + j * p.D;
            var f = KeyFactor(p, kj);
            Scale(kn, f, kj, p.D);
            new ReadOnlySpan<float>(v + j * stride + (nint)c * p.D, p.D).CopyTo(new Span<float>(values + j * p.D, p.D));
            bias[j] = p.Score == Score.Distance ? -0.5f * p.Scale * Dot(kn, kn, p.D) : 0f;
        }
    }

    // The score of layer j for query qi at depth l, in one operation order that the forward and backward share.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScoreOf(DepthRouterParams p, float* qi, float* kj, float bias, float slope, int l, int j) =>
        p.Scale * Dot(qi, kj, p.D) + bias - slope * (l - j);

    // f = rho / max(|k|, eps) with NormalizeKeys, else 1: k' = f k.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float KeyFactor(DepthRouterParams p, float* k) =>
        p.NormalizeKeys ? p.KeyRadius / MathF.Max(MathF.Sqrt(Dot(k, k, p.D)), p.KeyEpsilon) : 1f;

    // ScoreOf for a key read in place: k' = f k is formed element by element exactly as GatherColumn stores it (one
    // float multiply, rounded), and fed to the same dot products in the same order, so the score and the Distance bias
    // are bitwise those of the gathered key and the exact-tie property holds.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScoreInPlace(DepthRouterParams p, float* qi, float* k, float f, float slope, int l, int j)
    {
        if (p.Score != Score.Distance) return ScoreOf(p, qi, k, f, 0f, slope, l, j);
        // Both dots in one pass over k, each with DotScaled's accumulators and order (so bitwise the same).
        var n = p.D;
        var w = Vector<float>.Count;
        var vf = new Vector<float>(f);
        Vector<float> s0 = Vector<float>.Zero, s1 = Vector<float>.Zero, q0 = Vector<float>.Zero, q1 = Vector<float>.Zero;
        var e = 0;
        for (; e + 2 * w <= n; e += 2 * w)
        {
            Vector<float> x0 = vf * Vector.Load(k + e), x1 = vf * Vector.Load(k + e + w);
            s0 = Vector.MultiplyAddEstimate(x0, x0, s0);
            s1 = Vector.MultiplyAddEstimate(x1, x1, s1);
            q0 = Vector.MultiplyAddEstimate(Vector.Load(qi + e), x0, q0);
            q1 = Vector.MultiplyAddEstimate(Vector.Load(qi + e + w), x1, q1);
        }
        if (e + w <= n)
        {
            var x0 = vf * Vector.Load(k + e);
            s0 = Vector.MultiplyAddEstimate(x0, x0, s0);
            q0 = Vector.MultiplyAddEstimate(Vector.Load(qi + e), x0, q0);
            e += w;
        }
        float self = Vector.Sum(s0 + s1), dot = Vector.Sum(q0 + q1);
        for (; e < n; e++)
        {
            var y = f * k[e];
            self += y * y;
            dot += qi[e] * y;
        }
        var bias = -0.5f * p.Scale * self;
        return p.Scale * dot + bias - slope * (l - j);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float ScoreOf(DepthRouterParams p, float* qi, float* k, float f, float bias, float slope, int l, int j) =>
        p.Scale * DotScaled(qi, k, f, p.D) + bias - slope * (l - j);

    // Lq = 1 (a block's training call: one query layer at depth L - 1 reading all L layers), forward over columns
    // [c0, c1): each key and value is used once, so nothing is gathered. Pass 1 walks the layers and, within a layer, the
    // block's columns, whose keys are one contiguous run of (c1 - c0) D floats; it stores the scores [column, layer] on
    // the stack. Then each column's softmax, and pass 2 walks the values the same way, adding P_j v_j into the block's
    // outputs (also contiguous, L1-resident). Per column the operations and their order are ForwardColumn's: the results
    // are bitwise those of v1.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardSingleQueryBlock(in ForwardItems x, int c0, int c1, float* block)
    {
        var p = x.P;
        var d = p.D;
        var stride = (nint)p.Columns * d;
        const int m = DepthRouterParams.MaxLayers;
        float* z = block, inv = block + ColumnsPerItem * m; // z [column, layer]; inv: 1 / sum per column
        var l = p.Offset; // = L - 1: every layer is visible
        for (var j = 0; j <= l; j++)
        {
            var kj = x.K + j * stride;
            for (var c = c0; c < c1; c++)
            {
                var kc = kj + (nint)c * d;
                z[(c - c0) * m + j] = ScoreInPlace(p, x.Q + (nint)c * d, kc, KeyFactor(p, kc), p.BrakeSlopes[c % p.H], l, j);
            }
        }
        for (var c = c0; c < c1; c++)
        {
            var zc = z + (c - c0) * m;
            var max = float.NegativeInfinity;
            for (var j = 0; j <= l; j++) max = MathF.Max(max, zc[j]);
            float sum = 0f, shifted = 0f;
            for (var j = 0; j <= l; j++)
            {
                var w = MathF.Exp(zc[j] - max);
                shifted += w * (zc[j] - max);
                sum += w;
                zc[j] = w;
            }
            var r = 1f / sum;
            inv[c - c0] = r;
            var logSum = MathF.Log(sum);
            x.Stats[2 * c] = max;
            x.Stats[2 * c + 1] = logSum;
            if (x.Diagnostics)
            {
                x.Entropy[c] = l == 0 ? 0f : (logSum - shifted * r) / MathF.Log(l + 1);
                x.MaxProb[c] = r;
                x.Embedding[c] = zc[0] * r;
            }
        }
        new Span<float>(x.O + (nint)c0 * d, (c1 - c0) * d).Clear();
        for (var j = 0; j <= l; j++)
        {
            var vj = x.V + j * stride;
            for (var c = c0; c < c1; c++)
                Axpy(x.O + (nint)c * d, z[(c - c0) * m + j] * inv[c - c0], vj + (nint)c * d, d);
        }
    }

    // Lq = 1 backward over columns [c0, c1), one pass over the layers: delta = dO . O first, then per layer and column
    // P_j (recomputed as the forward formed it), dz_j = P_j (dO . v_j - delta), dq += s dz_j k'_j (into dQ, the block's
    // rows are L1-resident), and dk'_j, dv_j written straight into dK and dV: with one query layer each (layer, column)
    // gets exactly one term, so there is nothing to accumulate, clear or scatter, and each is written by the one thread
    // that owns the column (race-free, deterministic). Per column the operations and their order are BackwardColumn's
    // (0 + a b = a b exactly), so the gradients are bitwise those of v1.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardSingleQueryBlock(in BackwardItems x, int c0, int c1, float* delta)
    {
        var p = x.P;
        var d = p.D;
        var stride = (nint)p.Columns * d;
        var l = p.Offset;
        for (var c = c0; c < c1; c++) delta[c - c0] = Dot(x.DOut + (nint)c * d, x.O + (nint)c * d, d);
        new Span<float>(x.DQ + (nint)c0 * d, (c1 - c0) * d).Clear();
        for (var j = 0; j <= l; j++)
        {
            var off = j * stride;
            for (var c = c0; c < c1; c++)
            {
                var cd = (nint)c * d;
                float* qi = x.Q + cd, gi = x.DOut + cd, kc = x.K + off + cd, vc = x.V + off + cd;
                var f = KeyFactor(p, kc);
                var prob = MathF.Exp(ScoreInPlace(p, qi, kc, f, p.BrakeSlopes[c % p.H], l, j) - x.Stats[2 * c] - x.Stats[2 * c + 1]);
                var dz = prob * (Dot(gi, vc, d) - delta[c - c0]);
                var sdz = p.Scale * dz;
                AxpyScaled(x.DQ + cd, sdz, kc, f, d);
                var dkc = x.DK + off + cd;
                // dk' = s dz q - [Distance] s dz k'.
                if (p.Score == Score.Distance) ScaledMinusScaled(dkc, sdz, qi, kc, f, d);
                else Scale(dkc, sdz, qi, d);
                if (p.NormalizeKeys) ChainThroughNormalisation(x.KeyRows, kc, dkc);
                Scale(x.DV + off + cd, prob, gi, d);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardColumn(in ForwardItems x, int c, float* scratch, float* keys, float* values)
    {
        var p = x.P;
        var d = p.D;
        float* bias = scratch, z = scratch + DepthRouterParams.MaxLayers;
        GatherColumn(p, c, x.K, x.V, keys, values, bias);
        var slope = p.BrakeSlopes[c % p.H];
        for (var i = 0; i < p.Lq; i++)
        {
            var l = i + p.Offset;
            var row = (nint)i * p.Columns + c;
            var qi = x.Q + row * d;
            var max = float.NegativeInfinity;
            for (var j = 0; j <= l; j++)
            {
                z[j] = ScoreOf(p, qi, keys + j * d, bias[j], slope, l, j);
                max = MathF.Max(max, z[j]);
            }
            float sum = 0f, shifted = 0f;
            for (var j = 0; j <= l; j++)
            {
                var w = MathF.Exp(z[j] - max);
                shifted += w * (z[j] - max);
                sum += w;
                z[j] = w;
            }
            var inv = 1f / sum;
            var oi = x.O + row * d;
            Mix(oi, z, inv, values, l + 1, d);
            var logSum = MathF.Log(sum);
            x.Stats[2 * row] = max;
            x.Stats[2 * row + 1] = logSum;
            if (!x.Diagnostics) continue;
            // Entropy = log l - s1 / l with s1 = sum w (z - m): no cancellation of O(|z|) terms.
            x.Entropy[row] = l == 0 ? 0f : (logSum - shifted * inv) / MathF.Log(l + 1);
            x.MaxProb[row] = inv;
            x.Embedding[row] = z[0] * inv;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void BackwardColumn(in BackwardItems x, int c, float* scratch, float* keys, float* values, float* dKeys,
        float* dValues)
    {
        var p = x.P;
        var d = p.D;
        var stride = (nint)p.Columns * d;
        float* bias = scratch, dzSum = scratch + DepthRouterParams.MaxLayers;
        GatherColumn(p, c, x.K, x.V, keys, values, bias);
        new Span<float>(dKeys, p.L * d).Clear();
        new Span<float>(dValues, p.L * d).Clear();
        new Span<float>(dzSum, p.L).Clear();
        var slope = p.BrakeSlopes[c % p.H];
        for (var i = 0; i < p.Lq; i++)
        {
            var l = i + p.Offset;
            var row = (nint)i * p.Columns + c;
            float* qi = x.Q + row * d, gi = x.DOut + row * d, dqi = x.DQ + row * d;
            new Span<float>(dqi, d).Clear();
            float max = x.Stats[2 * row], logSum = x.Stats[2 * row + 1];
            var delta = Dot(gi, x.O + row * d, d);
            for (var j = 0; j <= l; j++)
            {
                float* kj = keys + j * d;
                var prob = MathF.Exp(ScoreOf(p, qi, kj, bias[j], slope, l, j) - max - logSum);
                var dz = prob * (Dot(gi, values + j * d, d) - delta);
                dzSum[j] += dz;
                Axpy(dqi, p.Scale * dz, kj, d);
                Axpy(dKeys + j * d, p.Scale * dz, qi, d);
                Axpy(dValues + j * d, prob, gi, d);
            }
        }
        for (var j = 0; j < p.L; j++)
        {
            var dkj = dKeys + j * d;
            // dk' = s sum_i dz q_i - [Distance] s (sum_i dz) k'_j.
            if (p.Score == Score.Distance) Axpy(dkj, -p.Scale * dzSum[j], keys + j * d, d);
            var off = j * stride + (nint)c * d;
            if (p.NormalizeKeys) ChainThroughNormalisation(x.KeyRows, x.K + off, dkj);
            new ReadOnlySpan<float>(dkj, d).CopyTo(new Span<float>(x.DK + off, d));
            new ReadOnlySpan<float>(dValues + j * d, d).CopyTo(new Span<float>(x.DV + off, d));
        }
    }

    // One worker's column scratch, [L, D] each: k', v and (backward) their gradients; grows to the largest seen.
    private sealed class ColumnScratch
    {
        public float[] Keys = [], Values = [], DKeys = [], DValues = [];

        public static ColumnScratch ForThisWorker(DepthRouterParams p, bool backward)
        {
            var s = ManagedParallel.WorkerLocal<ColumnScratch>();
            var need = p.L * p.D;
            if (s.Keys.Length < need) (s.Keys, s.Values) = (new float[need], new float[need]);
            if (backward && s.DKeys.Length < need) (s.DKeys, s.DValues) = (new float[need], new float[need]);
            return s;
        }
    }

    // a . b over n floats: Vector<float> multiply-adds (fused where the hardware has FMA), then the scalar tail (never
    // MathF.FusedMultiplyAdd, which is emulated in software where there is no FMA).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(float* a, float* b, int n)
    {
        var w = Vector<float>.Count;
        Vector<float> acc0 = Vector<float>.Zero, acc1 = Vector<float>.Zero;
        var e = 0;
        for (; e + 2 * w <= n; e += 2 * w)
        {
            acc0 = Vector.MultiplyAddEstimate(Vector.Load(a + e), Vector.Load(b + e), acc0);
            acc1 = Vector.MultiplyAddEstimate(Vector.Load(a + e + w), Vector.Load(b + e + w), acc1);
        }
        if (e + w <= n)
        {
            acc0 = Vector.MultiplyAddEstimate(Vector.Load(a + e), Vector.Load(b + e), acc0);
            e += w;
        }
        var sum = Vector.Sum(acc0 + acc1);
        for (; e < n; e++) sum += a[e] * b[e];
        return sum;
    }

    // y += a x over n floats.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Axpy(float* y, float a, float* x, int n)
    {
        var w = Vector<float>.Count;
        var va = new Vector<float>(a);
        var e = 0;
        for (; e + w <= n; e += w) Vector.Store(Vector.MultiplyAddEstimate(va, Vector.Load(x + e), Vector.Load(y + e)), y + e);
        for (; e < n; e++) y[e] += a * x[e];
    }
    // a . (f b) over n floats with Dot's operations and order, f b formed as one rounded multiply per element (so it is
    // bitwise Dot(a, k') for a stored k' = f b).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotScaled(float* a, float* b, float f, int n)
    {
        var w = Vector<float>.Count;
        var vf = new Vector<float>(f);
        Vector<float> acc0 = Vector<float>.Zero, acc1 = Vector<float>.Zero;
        var e = 0;
        if (b == a)
        {
            for (; e + 2 * w <= n; e += 2 * w)
            {
                Vector<float> x0 = vf * Vector.Load(b + e), x1 = vf * Vector.Load(b + e + w);
                acc0 = Vector.MultiplyAddEstimate(x0, x0, acc0);
                acc1 = Vector.MultiplyAddEstimate(x1, x1, acc1);
            }
            if (e + w <= n)
            {
                var x0 = vf * Vector.Load(b + e);
                acc0 = Vector.MultiplyAddEstimate(x0, x0, acc0);
                e += w;
            }
            var self = Vector.Sum(acc0 + acc1);
            for (; e < n; e++)
            {
                var y = f * b[e];
                self += y * y;
            }
            return self;
        }
        for (; e + 2 * w <= n; e += 2 * w)
        {
            acc0 = Vector.MultiplyAddEstimate(Vector.Load(a + e), vf * Vector.Load(b + e), acc0);
            acc1 = Vector.MultiplyAddEstimate(Vector.Load(a + e + w), vf * Vector.Load(b + e + w), acc1);
        }
        if (e + w <= n)
        {
            acc0 = Vector.MultiplyAddEstimate(Vector.Load(a + e), vf * Vector.Load(b + e), acc0);
            e += w;
        }
        var sum = Vector.Sum(acc0 + acc1);
        for (; e < n; e++) sum += a[e] * (f * b[e]);
        return sum;
    }

    // y = a x over n floats (SIMD).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale(float* y, float a, float* x, int n)
    {
        var w = Vector<float>.Count;
        var va = new Vector<float>(a);
        var e = 0;
        for (; e + w <= n; e += w) Vector.Store(va * Vector.Load(x + e), y + e);
        for (; e < n; e++) y[e] = a * x[e];
    }

    // y += a (f x) over n floats, f x rounded first: Axpy(y, a, k') for k' = f x.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AxpyScaled(float* y, float a, float* x, float f, int n)
    {
        var w = Vector<float>.Count;
        Vector<float> va = new(a), vf = new(f);
        var e = 0;
        for (; e + w <= n; e += w) Vector.Store(Vector.MultiplyAddEstimate(va, vf * Vector.Load(x + e), Vector.Load(y + e)), y + e);
        for (; e < n; e++) y[e] += a * (f * x[e]);
    }

    // y = a q - a (f k) over n floats, as Scale(y, a, q) then Axpy(y, -a, k') with k' = f k.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ScaledMinusScaled(float* y, float a, float* q, float* k, float f, int n)
    {
        var w = Vector<float>.Count;
        Vector<float> va = new(a), vn = new(-a), vf = new(f);
        var e = 0;
        for (; e + w <= n; e += w)
            Vector.Store(Vector.MultiplyAddEstimate(vn, vf * Vector.Load(k + e), va * Vector.Load(q + e)), y + e);
        for (; e < n; e++) y[e] = a * q[e] + -a * (f * k[e]);
    }
    // AttentionManaged.ChainThroughNormalisation with SIMD: dk = (rho / |k|)(dk' - u (u . dk')), u = k / |k|, or
    // (rho / eps) dk' when |k| <= eps; in place, in float64 (Vector<double> halves of each Vector<float>). The scalar
    // original was most of the Lq = 1 backward's time with NormalizeKeys (2026-12-02: 59 of 71 ms at L = 8). Its sums
    // are in a different order from the scalar one's, but in float64, far below float32 rounding.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ChainThroughNormalisation(AttentionParams p, float* k, float* dk)
    {
        var n = p.D;
        var w = Vector<float>.Count;
        Vector<double> sq0 = Vector<double>.Zero, sq1 = Vector<double>.Zero, kd0 = Vector<double>.Zero, kd1 = Vector<double>.Zero;
        var e = 0;
        for (; e + w <= n; e += w)
        {
            Vector.Widen(Vector.Load(k + e), out var k0, out var k1);
            Vector.Widen(Vector.Load(dk + e), out var d0, out var d1);
            sq0 += k0 * k0;
            sq1 += k1 * k1;
            kd0 += k0 * d0;
            kd1 += k1 * d1;
        }
        double sq = Vector.Sum(sq0 + sq1), kdk = Vector.Sum(kd0 + kd1);
        for (var r = e; r < n; r++)
        {
            sq += (double)k[r] * k[r];
            kdk += (double)k[r] * dk[r];
        }
        var norm = Math.Sqrt(sq);
        if (norm <= p.KeyEpsilon)
        {
            var f = (double)p.KeyRadius / p.KeyEpsilon;
            for (var r = 0; r < n; r++) dk[r] = (float)(f * dk[r]);
            return;
        }
        var scale = p.KeyRadius / norm;
        var proj = kdk / sq;
        Vector<double> vs = new(scale), vp = new(proj);
        e = 0;
        for (; e + w <= n; e += w)
        {
            Vector.Widen(Vector.Load(k + e), out var k0, out var k1);
            Vector.Widen(Vector.Load(dk + e), out var d0, out var d1);
            Vector.Store(Vector.Narrow(vs * (d0 - k0 * vp), vs * (d1 - k1 * vp)), dk + e);
        }
        for (; e < n; e++) dk[e] = (float)(scale * (dk[e] - k[e] * proj));
    }
    // o = sum_{j < count} (w_j inv) v_j over d floats (v_j = values + j d), in ascending j from 0: Axpy's operations
    // and order per element (0 + a x = a x), so bitwise the v1 loop of Axpys, but with o held in registers across the
    // layers, two vectors at a time, instead of loaded and stored once per layer.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mix(float* o, float* wts, float inv, float* values, int count, int d)
    {
        var w = Vector<float>.Count;
        var e = 0;
        for (; e + 2 * w <= d; e += 2 * w)
        {
            Vector<float> a0 = Vector<float>.Zero, a1 = Vector<float>.Zero;
            for (var j = 0; j < count; j++)
            {
                var c = new Vector<float>(wts[j] * inv);
                var vj = values + j * d + e;
                a0 = Vector.MultiplyAddEstimate(c, Vector.Load(vj), a0);
                a1 = Vector.MultiplyAddEstimate(c, Vector.Load(vj + w), a1);
            }
            Vector.Store(a0, o + e);
            Vector.Store(a1, o + e + w);
        }
        for (; e + w <= d; e += w)
        {
            var a0 = Vector<float>.Zero;
            for (var j = 0; j < count; j++) a0 = Vector.MultiplyAddEstimate(new Vector<float>(wts[j] * inv), Vector.Load(values + j * d + e), a0);
            Vector.Store(a0, o + e);
        }
        for (; e < d; e++)
        {
            var a0 = 0f;
            for (var j = 0; j < count; j++) a0 += wts[j] * inv * values[j * d + e];
            o[e] = a0;
        }
    }
}
