// Attention on the Managed backend: a fused FlashAttention-2 style forward and a deterministic two-pass backward, on
// width-generic SIMD (ManagedKernels.cs, specialised to Vector512, Vector256 or Vector128 by SimdWidth.ActiveBits once
// per call) and ManagedParallel.For. Extra memory is O(B Hkv M D) for the prepared keys plus one
// small tile set per worker, all kept per thread between calls (no allocation once warm): never an N x M buffer.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; g = H / Hkv query heads per kv
// head; Dp = D rounded up to 16 floats; KB = 64 keys per key block, Mb = ceil(M / KB) blocks, Mp = Mb KB.
//
// The score variants never reach the hot loop: once per call the keys are prepared as s k' (k' normalised or not) and a
// per-key bias (-(s/2)|k'|^2 for Distance, 0 for Dot, -inf for the padding past M), so every variant runs the same
// z = q . (s k'_j) + bias_j kernel and Distance or NormalizeKeys cost only the O(M D) preparation.
//
// Versions (time with `dotnet run -c Release --project perf -- attention-managed`):
//   v1 (2026-11-28) forward: work item = (b, h, 64 queries); per key block and 4-row group S = Q K^T by the 4 x 64
//                   micro-kernel, online softmax in registers with a polynomial exp, O += P V by the same micro-kernel.
//                   Backward: pass 1 per (b, kv head, key block) over every query of its g heads accumulates dV and dK';
//                   pass 2 per (b, h, 64 queries) accumulates dQ; both recompute P from Lse, so no atomics and bitwise
//                   repeatable results.
//   v2 (2026-11-28) every hot method carries AggressiveOptimization: under tiered compilation the backward's helpers
//                   ran as unoptimised tier-0 code (Exp and Vector512.Load not inlined) for the whole of a short run.
//                   One core, N = M = 2048, D = 64: backward 46 -> 138 GFLOP/s, forward 143 -> 170 GFLOP/s with
//                   KeyRange inlined too (FMA peak of that core: ~280 GFLOP/s).
//   v3 (2026-11-28) forward softmax of a 4-row group in one loop (16 independent exp chains); alpha only when the
//                   running max moves. One core, N = M = 4096, D = 64: forward 160 -> 185 GFLOP/s. Both cores, CPU
//                   time: forward 60-75% of the FMA peak at N >= 2048, backward ~50% (it runs 7 GEMMs for the 5 that
//                   FlashAttention's 2.5x count credits); see perf/results/managed-attention-2026-11-28.md.
//   v4 (2026-11-28) backward: P and dz without a branch per row (masked rows carry Lse = +inf), the column sums of dz
//                   in registers. One core, N = M = 4096, D = 64: backward 147 -> 151 GFLOP/s.
//   v6 (2026-12-02) every SIMD loop written once over ISimdWidth (SimdWidth.cs) and dispatched per call on
//                   SimdWidth.ActiveBits: off AVX-512 the Vector512 code ran in .NET's software fallback (AVX2 only:
//                   forward 43 GFLOP/s vs 230; 128-bit only: 0.7). The backward's column sums of dz now run column
//                   chunk by column chunk (the same per-lane order over rows, so bit for bit the v5 sums).
//   v5 (2026-12-02) backward: P = exp((z - m) - log l) from the forward's saved statistics (AttentionOutput.Stats)
//                   instead of exp(z - (Lse - BiasShift)). Lse is stored in float32 in the absolute frame: with Distance
//                   and key norms in the hundreds it is of order 1e4 and rounded by ~1e-3, which every probability of
//                   the row carried (dV errors 230-5200x the naive float32 reference's, B1 H2 N37 M61 D64/128).
//                   m is exactly a score the backward recomputes bit for bit, so the two passes now agree to an ulp.
//
// Numerics at 1e3-scale logits (the 2x rule against naive float32): scores are summed in chunks of 16 head dimensions
// (Scores4x64), the Distance bias is stored minus its largest value (Lse adds it back in float64), Delta_i is summed in
// the same order as dO . v_j, and the entropy is accumulated relative to the running max.
using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class AttentionManaged
{
    /// <summary>Keys per key block: the micro-kernel's width.</summary>
    private const int KeyBlock = ManagedKernels.Width;

    /// <summary>Queries per forward work item and per backward tile: 16 row groups share each K and V block from L1/L2.</summary>
    private const int QueryBlock = 64;

    private const int Rows = ManagedKernels.Rows;

    internal static void Forward(AttentionParams p, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, Span<float> o,
        Span<float> lse, Span<float> stats, Span<float> entropy, Span<float> sinkMass, Span<float> maxProb)
    {
        if (p.N == 0 || p.B * p.H == 0) return;
        var keys = PreparedKeys.Create(p, k, v, backward: false);
        var queryBlocks = (p.N + QueryBlock - 1) / QueryBlock;
        var dp = PaddedDim(p.D);
        fixed (float* qp = q, op = o, lp = lse, stp = stats, ep = entropy, sp = sinkMass, mp = maxProb)
        {
            var ctx = ForwardContext.ForThisThread();
            ctx.Set(p, keys, qp, op, lp, stp, ep, sp, mp);
            try
            {
                switch (SimdWidth.ActiveBits)
                {
                    case 512: RunForward<Simd512, Vector512<float>>(ctx, queryBlocks, dp); break;
                    case 256: RunForward<Simd256, Vector256<float>>(ctx, queryBlocks, dp); break;
                    default: RunForward<Simd128, Vector128<float>>(ctx, queryBlocks, dp); break;
                }
            }
            finally
            {
                ctx.Clear();
            }
        }
    }

    private static void RunForward<TS, TV>(ForwardContext ctx, int queryBlocks, int dp) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var body = new ForwardItems<TS, TV> { Ctx = ctx, QueryBlocks = queryBlocks, Dp = dp };
        ManagedParallel.For(ctx.P.B * ctx.P.H * queryBlocks, ref body);
    }

    private struct ForwardItems<TS, TV> : IParallelBody where TS : struct, ISimdWidth<TV> where TV : struct
    {
        public ForwardContext Ctx;
        public int QueryBlocks, Dp;

        public readonly void Run(int item) => ForwardBlock<TS, TV>(Ctx, item / QueryBlocks, item % QueryBlocks, Tile.ForThisWorker(Dp));
    }

    internal static void Backward(AttentionParams p, ReadOnlySpan<float> dOut, ReadOnlySpan<float> q, ReadOnlySpan<float> k,
        ReadOnlySpan<float> v, ReadOnlySpan<float> o, ReadOnlySpan<float> stats, Span<float> dq, Span<float> dk, Span<float> dv)
    {
        if (p.B * p.Hkv == 0) return;
        var keys = PreparedKeys.Create(p, k, v, backward: true);
        var dp = PaddedDim(p.D);
        var deltaP = AlignedBuffer.Delta((long)p.B * p.H * p.N); // [B, H, N] dO_i . O_i
        fixed (float* dOutP = dOut, qp = q, kp = k, op = o, sp = stats, dqp = dq, dkp = dk, dvp = dv)
        {
            var ctx = BackwardContext.ForThisThread();
            ctx.Set(p, keys, dOutP, qp, kp, sp, deltaP, dqp, dkp, dvp);
            try
            {
                var deltas = new DeltaRows { P = p, DOut = dOutP, O = op, Delta = deltaP };
                ManagedParallel.For(p.B * p.H, ref deltas);
                switch (SimdWidth.ActiveBits)
                {
                    case 512: RunBackward<Simd512, Vector512<float>>(ctx, dp); break;
                    case 256: RunBackward<Simd256, Vector256<float>>(ctx, dp); break;
                    default: RunBackward<Simd128, Vector128<float>>(ctx, dp); break;
                }
            }
            finally
            {
                ctx.Clear();
            }
        }
    }

    private struct DeltaRows : IParallelBody
    {
        public AttentionParams P;
        public float* DOut, O, Delta;

        public readonly void Run(int row) => RowDeltas(P, DOut, O, Delta, row);
    }

    // Pass 1 per (b, kv head, key block): dV and dK'; pass 2 per (b, h, query block): dQ.
    private static void RunBackward<TS, TV>(BackwardContext ctx, int dp) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var p = ctx.P;
        var keyBlocks = ctx.Keys.Blocks;
        var keyValue = new KeyValueItems<TS, TV> { Ctx = ctx, KeyBlocks = keyBlocks, Dp = dp };
        ManagedParallel.For(p.B * p.Hkv * keyBlocks, ref keyValue);
        var queryBlocks = (p.N + QueryBlock - 1) / QueryBlock;
        var query = new QueryItems<TS, TV> { Ctx = ctx, QueryBlocks = queryBlocks, Dp = dp };
        ManagedParallel.For(p.B * p.H * queryBlocks, ref query);
    }

    private struct KeyValueItems<TS, TV> : IParallelBody where TS : struct, ISimdWidth<TV> where TV : struct
    {
        public BackwardContext Ctx;
        public int KeyBlocks, Dp;

        public readonly void Run(int item) => KeyValueGradientBlock<TS, TV>(Ctx, item / KeyBlocks, item % KeyBlocks, Tile.ForThisWorker(Dp));
    }

    private struct QueryItems<TS, TV> : IParallelBody where TS : struct, ISimdWidth<TV> where TV : struct
    {
        public BackwardContext Ctx;
        public int QueryBlocks, Dp;

        public readonly void Run(int item) => QueryGradientBlock<TS, TV>(Ctx, item / QueryBlocks, item % QueryBlocks, Tile.ForThisWorker(Dp));
    }

    // Delta_i = dO_i . O_i for the rows of one (b, h): the same chunked multiply-add chains in the same order as
    // Scores4x64's dO . v, so that where O_i = v_j exactly (a single visible key) dO . v_j - Delta_i is exactly 0, as in
    // the reference. The scalar multiply-add is MultiplyAddEstimate like the vector one (ISimdWidth.MultiplyAdd): fused
    // where the hardware has FMA, a multiply then an add where it does not (x86 with AVX2 off), never one of each.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowDeltas(AttentionParams p, float* dOut, float* o, float* delta, int row)
    {
        int n = p.N, d = p.D;
        var dO = dOut + (nint)row * n * d; // [N, D]
        var oo = o + (nint)row * n * d; // [N, D]
        var dl = delta + (nint)row * n; // [N]
        for (var i = 0; i < n; i++)
        {
            var total = 0f;
            for (var e0 = 0; e0 < d; e0 += ManagedKernels.ScoreChunk)
            {
                var part = 0f;
                for (var e = e0; e < Math.Min(d, e0 + ManagedKernels.ScoreChunk); e++)
                    part = float.MultiplyAddEstimate(dO[(nint)i * d + e], oo[(nint)i * d + e], part);
                total = e0 == 0 ? part : part + total;
            }
            dl[i] = total;
        }
    }

    private static int PaddedDim(int d) => (d + ManagedKernels.Lanes - 1) / ManagedKernels.Lanes * ManagedKernels.Lanes;

    // z = S + bias - brake, masked to [lo, hi] unless the whole block is visible; overwrites row[0..64) with z and
    // returns its largest entry.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Scores<TS, TV>(float* row, float* bias, int jb, int ip, float slope, bool full, int lo, int hi)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var max = TS.Broadcast(float.NegativeInfinity);
        var negSlope = TS.Broadcast(-slope);
        var ipf = TS.Broadcast(ip);
        var lof = TS.Broadcast(lo);
        var hif = TS.Broadcast(hi);
        for (var c = 0; c < KeyBlock; c += TS.Lanes)
        {
            var z = TS.Add(TS.Load(row + c), TS.Load(bias + c));
            var j = TS.Add(TS.Broadcast(jb + c), TS.Indices);
            if (slope != 0f) z = TS.MultiplyAdd(negSlope, TS.Abs(TS.Subtract(ipf, j)), z);
            if (!full) z = TS.Select(TS.Or(TS.LessThan(j, lof), TS.GreaterThan(j, hif)), TS.Broadcast(float.NegativeInfinity), z);
            TS.Store(z, row + c);
            max = TS.Max(max, z);
        }
        return TS.MaxAcross(max);
    }

    private static float Shift(float max) => float.IsNegativeInfinity(max) ? 0f : max;

    // row[0..16) <- exp(row - shift); sum += it; with diagnostics also pz += it (row - shift), the -inf entries clamped
    // so that 0 * -inf does not make a NaN.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ExpInPlace<TS, TV>(float* row, TV shift, ref TV sum, ref TV pz, bool diagnostics)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var x = TS.Subtract(TS.Load(row), shift);
        var e = ManagedKernels.Exp<TS, TV>(x);
        TS.Store(e, row);
        sum = TS.Add(sum, e);
        if (diagnostics) pz = TS.MultiplyAdd(e, TS.Max(x, TS.Broadcast(-256f)), pz);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ForwardBlock<TS, TV>(ForwardContext ctx, int bh, int qb, Tile tile) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var p = ctx.P;
        int b = bh / p.H, h = bh % p.H, hk = h / p.Group;
        int d = p.D, dp = tile.Dp;
        var i0 = qb * QueryBlock;
        var rows = Math.Min(QueryBlock, p.N - i0);
        var groups = (rows + Rows - 1) / Rows;
        var slope = p.BrakeSlopes[h];
        var diagnostics = ctx.Entropy != null;

        var qTile = tile.Q; // [QueryBlock, Dp] q rows, zero padded
        var oTile = tile.O; // [QueryBlock, Dp] unnormalised output
        var s = tile.S; // [Rows, KB] scores, then probabilities
        var qSrc = ctx.Q + ((nint)bh * p.N + i0) * d; // [rows, D]
        new Span<float>(qTile, QueryBlock * dp).Clear();
        new Span<float>(oTile, QueryBlock * dp).Clear();
        for (var r = 0; r < rows; r++)
            new ReadOnlySpan<float>(qSrc + (nint)r * d, d).CopyTo(new Span<float>(qTile + (nint)r * dp, d));
        var m = tile.RowMax;
        var l = tile.RowSum;
        var ent = tile.RowEntropy;
        var sink = tile.RowSink;
        var newMax = stackalloc float[Rows];
        var rowSum = stackalloc float[Rows];
        var rowPz = stackalloc float[Rows];
        for (var r = 0; r < QueryBlock; r++)
        {
            m[r] = float.NegativeInfinity;
            l[r] = ent[r] = sink[r] = 0f;
        }

        var (jLo, _) = p.KeyRange(b, i0);
        var (_, jHi) = p.KeyRange(b, i0 + rows - 1);
        var kvBase = (nint)(b * p.Hkv + hk) * ctx.Keys.Blocks;
        for (var kb = Math.Max(jLo, 0) / KeyBlock; jHi >= jLo && kb <= jHi / KeyBlock; kb++)
        {
            var jb = kb * KeyBlock;
            var kt = ctx.Keys.KeysT + (kvBase + kb) * KeyBlock * d; // [D, KB]
            var vb = ctx.Keys.Values + (kvBase + kb) * KeyBlock * dp; // [KB, Dp]
            var bias = ctx.Keys.Bias + (kvBase + kb) * KeyBlock; // [KB]
            for (var g = 0; g < groups; g++)
            {
                var r0 = g * Rows;
                var rLast = Math.Min(r0 + Rows, rows) - 1;
                var (firstLo, firstHi) = p.KeyRange(b, i0 + r0);
                var (lastLo, lastHi) = p.KeyRange(b, i0 + rLast);
                if (jb > lastHi || jb + KeyBlock - 1 < firstLo) continue;
                var full = jb >= lastLo && jb + KeyBlock - 1 <= firstHi;
                ManagedKernels.Scores4x64<TS, TV>(qTile + (nint)r0 * dp, dp, kt, d, s);
                for (var rr = 0; rr < Rows; rr++)
                {
                    var (lo, hi) = p.KeyRange(b, i0 + r0 + rr);
                    newMax[rr] = MathF.Max(m[r0 + rr], Scores<TS, TV>(s + rr * KeyBlock, bias, jb, i0 + r0 + rr + p.Offset, slope, full, lo, hi));
                }
                // The four rows' exps run in one loop: 16 independent polynomial chains keep the FMA pipes busy where
                // one row's 4 chains left them waiting on latency (2026-11-28, one core, N = M = 4096, D = 64: the
                // softmax was 25% of the forward's time; forward 160 -> 185 GFLOP/s).
                // A row that has seen no visible key yet (max -inf) shifts by 0, so its -inf scores give exactly 0.
                var sh0 = TS.Broadcast(Shift(newMax[0]));
                var sh1 = TS.Broadcast(Shift(newMax[1]));
                var sh2 = TS.Broadcast(Shift(newMax[2]));
                var sh3 = TS.Broadcast(Shift(newMax[3]));
                TV sum0 = TS.Zero, sum1 = TS.Zero, sum2 = TS.Zero, sum3 = TS.Zero;
                TV pz0 = TS.Zero, pz1 = TS.Zero, pz2 = TS.Zero, pz3 = TS.Zero;
                for (var c = 0; c < KeyBlock; c += TS.Lanes)
                {
                    ExpInPlace<TS, TV>(s + c, sh0, ref sum0, ref pz0, diagnostics);
                    ExpInPlace<TS, TV>(s + KeyBlock + c, sh1, ref sum1, ref pz1, diagnostics);
                    ExpInPlace<TS, TV>(s + 2 * KeyBlock + c, sh2, ref sum2, ref pz2, diagnostics);
                    ExpInPlace<TS, TV>(s + 3 * KeyBlock + c, sh3, ref sum3, ref pz3, diagnostics);
                }
                rowSum[0] = TS.Sum(sum0);
                rowSum[1] = TS.Sum(sum1);
                rowSum[2] = TS.Sum(sum2);
                rowSum[3] = TS.Sum(sum3);
                if (diagnostics)
                {
                    rowPz[0] = TS.Sum(pz0);
                    rowPz[1] = TS.Sum(pz1);
                    rowPz[2] = TS.Sum(pz2);
                    rowPz[3] = TS.Sum(pz3);
                }
                for (var rr = 0; rr < Rows; rr++)
                {
                    var r = r0 + rr;
                    var mOld = m[r];
                    var mNew = newMax[rr];
                    var alpha = mOld == mNew ? 1f : MathF.Exp(mOld - mNew);
                    if (diagnostics)
                    {
                        // Entropy accumulates sum e^(z - m) (z - m) relative to the running max m, rescaled as m grows,
                        // so it never subtracts two O(|z|) numbers (logits reach 1e3).
                        var carried = l[r] > 0f ? ent[r] + (mOld - mNew) * l[r] : 0f;
                        ent[r] = alpha * carried + rowPz[rr];
                        var row = s + rr * KeyBlock;
                        var blockSink = 0f;
                        for (var jj = 0; jj < Math.Min(KeyBlock, p.SinkTokens - jb); jj++) blockSink += row[jj];
                        sink[r] = alpha * sink[r] + blockSink;
                    }
                    l[r] = alpha * l[r] + rowSum[rr];
                    m[r] = mNew;
                    if (alpha != 1f)
                    {
                        var orow = oTile + (nint)r * dp;
                        var va = TS.Broadcast(alpha);
                        for (var c = 0; c < dp; c += TS.Lanes) TS.Store(TS.Multiply(TS.Load(orow + c), va), orow + c);
                    }
                }
                ManagedKernels.Gemm4<TS, TV>(s, KeyBlock, 1, vb, dp, KeyBlock, oTile + (nint)r0 * dp, dp, dp, accumulate: true);
            }
        }

        var rowBase = (nint)bh * p.N + i0;
        for (var r = 0; r < rows; r++)
        {
            var dst = new Span<float>(ctx.O + (rowBase + r) * d, d);
            if (l[r] == 0f)
            {
                dst.Clear();
                ctx.Lse[rowBase + r] = float.NegativeInfinity;
                ctx.Stats[2 * (rowBase + r)] = float.NegativeInfinity;
                ctx.Stats[2 * (rowBase + r) + 1] = 0f;
                if (!diagnostics) continue;
                ctx.Entropy[rowBase + r] = ctx.SinkMass[rowBase + r] = ctx.MaxProb[rowBase + r] = 0f;
                continue;
            }
            var inv = 1f / l[r];
            var orow = oTile + (nint)r * dp;
            for (var c = 0; c < d; c++) dst[c] = orow[c] * inv;
            var logSum = MathF.Log(l[r]);
            ctx.Lse[rowBase + r] = (float)(m[r] + ctx.Keys.BiasShift[b * p.Hkv + hk] + logSum);
            // The backward's P = exp((z - m) - log l): m is exactly one of the scores it recomputes (in this frame,
            // less BiasShift), so no rounding of the absolute Lse reaches the probabilities.
            ctx.Stats[2 * (rowBase + r)] = m[r];
            ctx.Stats[2 * (rowBase + r) + 1] = logSum;
            if (!diagnostics) continue;
            ctx.Entropy[rowBase + r] = logSum - ent[r] * inv;
            ctx.SinkMass[rowBase + r] = sink[r] * inv;
            ctx.MaxProb[rowBase + r] = inv;
        }
    }

    // Loads q and dO rows [t0, t0 + QueryBlock) of one (b, h) into the tile (zero rows past N) with their saved row max,
    // log-sum and Delta; a padding or fully masked row gets max = +inf so its recomputed P is exactly 0.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int LoadQueryTile(BackwardContext ctx, int bh, int t0, Tile tile)
    {
        var p = ctx.P;
        int d = p.D, dp = tile.Dp;
        var rows = Math.Min(QueryBlock, p.N - t0);
        new Span<float>(tile.Q, QueryBlock * dp).Clear();
        new Span<float>(tile.DO, QueryBlock * dp).Clear();
        var rowBase = (nint)bh * p.N + t0;
        for (var r = 0; r < QueryBlock; r++)
        {
            if (r >= rows)
            {
                tile.RowMax[r] = float.PositiveInfinity;
                tile.RowSum[r] = 0f;
                tile.Delta[r] = 0f;
                continue;
            }
            new ReadOnlySpan<float>(ctx.Q + (rowBase + r) * d, d).CopyTo(new Span<float>(tile.Q + (nint)r * dp, d));
            new ReadOnlySpan<float>(ctx.DOut + (rowBase + r) * d, d).CopyTo(new Span<float>(tile.DO + (nint)r * dp, d));
            var max = ctx.Stats[2 * (rowBase + r)];
            tile.RowMax[r] = float.IsNegativeInfinity(max) ? float.PositiveInfinity : max;
            tile.RowSum[r] = ctx.Stats[2 * (rowBase + r) + 1];
            tile.Delta[r] = ctx.Delta[rowBase + r];
        }
        return rows;
    }

    // For the tile's query rows against key block kb: P (into tile.P) and dz = P (dO . v - Delta) (into tile.DZ);
    // returns false when no row sees the block. Adds each key's sum over rows of dz to colSum when it is given.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool ProbabilitiesAndScoreGradients<TS, TV>(BackwardContext ctx, int h, int hk, int b, int t0, int rows, int kb,
        Tile tile, float* colSum) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var p = ctx.P;
        int d = p.D, dp = tile.Dp;
        var jb = kb * KeyBlock;
        var (firstLo, firstHi) = p.KeyRange(b, t0);
        var (lastLo, lastHi) = p.KeyRange(b, t0 + rows - 1);
        if (jb > lastHi || jb + KeyBlock - 1 < firstLo || lastHi < firstLo) return false;
        var full = jb >= lastLo && jb + KeyBlock - 1 <= firstHi;
        var block = (nint)(b * p.Hkv + hk) * ctx.Keys.Blocks + kb;
        var kt = ctx.Keys.KeysT + block * KeyBlock * d; // [D, KB]
        var vt = ctx.Keys.ValuesT + block * KeyBlock * d; // [D, KB]
        var bias = ctx.Keys.Bias + block * KeyBlock; // [KB]
        var groups = (rows + Rows - 1) / Rows;
        var slope = p.BrakeSlopes[h];
        for (var g = 0; g < groups; g++)
        {
            var r0 = g * Rows;
            ManagedKernels.Scores4x64<TS, TV>(tile.Q + (nint)r0 * dp, dp, kt, d, tile.P + r0 * KeyBlock);
            ManagedKernels.Scores4x64<TS, TV>(tile.DO + (nint)r0 * dp, dp, vt, d, tile.DZ + r0 * KeyBlock);
        }
        var tileRows = groups * Rows;
        for (var r = 0; r < tileRows; r++)
        {
            var (lo, hi) = p.KeyRange(b, t0 + r);
            Scores<TS, TV>(tile.P + r * KeyBlock, bias, jb, t0 + r + p.Offset, slope, full, lo, hi);
        }
        // Padded and fully masked rows carry max = +inf, so they come out as exact zeros without a branch. One column
        // chunk at a time over every row, so its sum of dz over the rows stays in a register (in row order, as before).
        for (var c = 0; c < KeyBlock; c += TS.Lanes)
        {
            var sum = TS.Zero;
            for (var r = 0; r < tileRows; r++)
                sum = TS.Add(sum, ScoreGradient<TS, TV>(tile.P + r * KeyBlock + c, tile.DZ + r * KeyBlock + c,
                    TS.Broadcast(tile.RowMax[r]), TS.Broadcast(tile.RowSum[r]), TS.Broadcast(tile.Delta[r])));
            if (colSum != null) TS.Store(TS.Add(TS.Load(colSum + c), sum), colSum + c);
        }
        return true;
    }

    // p = exp((z - m) - log l) over z in prow[0..16), dz = p (dO . v - Delta) over dO . v in dzrow[0..16); both in
    // place. z - m is exact near the row max (z is bit for bit the forward's score, m one of them).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV ScoreGradient<TS, TV>(float* prow, float* dzrow, TV max, TV logSum, TV delta)
        where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var pr = ManagedKernels.Exp<TS, TV>(TS.Subtract(TS.Subtract(TS.Load(prow), max), logSum));
        TS.Store(pr, prow);
        var dz = TS.Multiply(pr, TS.Subtract(TS.Load(dzrow), delta));
        TS.Store(dz, dzrow);
        return dz;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KeyValueGradientBlock<TS, TV>(BackwardContext ctx, int bhk, int kb, Tile tile) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var p = ctx.P;
        int b = bhk / p.Hkv, hk = bhk % p.Hkv;
        int d = p.D, dp = tile.Dp;
        var jb = kb * KeyBlock;
        var dvAcc = tile.KeyAccA; // [KB, Dp] sum_i P_ij dO_i
        var gAcc = tile.KeyAccB; // [KB, Dp] sum_i dz_ij q_i
        var colSum = tile.ColSum; // [KB] sum_i dz_ij
        new Span<float>(dvAcc, KeyBlock * dp).Clear();
        new Span<float>(gAcc, KeyBlock * dp).Clear();
        new Span<float>(colSum, KeyBlock).Clear();

        // Queries that can see some key of the block: i' in [jb, ...] when causal, within W of the block with a window.
        long first = 0, last = p.N - 1L;
        if (p.Causal) first = Math.Max(first, (long)jb - p.Offset);
        if (p.Window >= 0)
        {
            first = Math.Max(first, (long)jb - p.Window - p.Offset);
            last = Math.Min(last, (long)jb + KeyBlock - 1 + p.Window - p.Offset);
        }
        if (jb >= p.KeyLength(b)) last = first - 1; // a block of padding keys only: dK = dV = 0
        for (var h = hk * p.Group; h < (hk + 1) * p.Group; h++)
        {
            var bh = b * p.H + h;
            for (var t0 = first; t0 <= last; t0 += QueryBlock)
            {
                var rows = LoadQueryTile(ctx, bh, (int)t0, tile);
                if (!ProbabilitiesAndScoreGradients<TS, TV>(ctx, h, hk, b, (int)t0, rows, kb, tile, colSum)) continue;
                var kLen = (rows + Rows - 1) / Rows * Rows;
                for (var g = 0; g < KeyBlock; g += Rows)
                {
                    ManagedKernels.Gemm4<TS, TV>(tile.P + g, 1, KeyBlock, tile.DO, dp, kLen, dvAcc + (nint)g * dp, dp, dp, accumulate: true);
                    ManagedKernels.Gemm4<TS, TV>(tile.DZ + g, 1, KeyBlock, tile.Q, dp, kLen, gAcc + (nint)g * dp, dp, dp, accumulate: true);
                }
            }
        }

        var keyRow = (nint)(b * p.Hkv + hk) * p.M;
        var ks = ctx.Keys.ScaledKeys + ((nint)(b * p.Hkv + hk) * ctx.Keys.Blocks + kb) * KeyBlock * dp; // [KB, Dp] s k'
        var distance = p.Score == Score.Distance;
        for (var jj = 0; jj < KeyBlock && jb + jj < p.M; jj++)
        {
            var off = (keyRow + jb + jj) * d;
            new ReadOnlySpan<float>(dvAcc + (nint)jj * dp, d).CopyTo(new Span<float>(ctx.DV + off, d));
            // dk' = s sum_i dz_ij q_i - s (sum_i dz_ij) k'_j, and s k'_j is what ScaledKeys holds.
            var dkRow = ctx.DK + off;
            var c = distance ? colSum[jj] : 0f;
            for (var e = 0; e < d; e++) dkRow[e] = p.Scale * gAcc[(nint)jj * dp + e] - c * ks[(nint)jj * dp + e];
            if (p.NormalizeKeys) ChainThroughNormalisation(p, ctx.K + off, dkRow);
        }
    }

    // dk = (rho / |k|)(dk' - u (u . dk')), u = k / |k|, or (rho / eps) dk' when |k| <= eps; in place, in float64.
    // Shared with DepthRouterManaged (which passes DepthRouterParams.KeyRows).
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ChainThroughNormalisation(AttentionParams p, float* k, float* dk)
    {
        double sq = 0, kdk = 0;
        for (var e = 0; e < p.D; e++)
        {
            sq += (double)k[e] * k[e];
            kdk += (double)k[e] * dk[e];
        }
        var norm = Math.Sqrt(sq);
        if (norm <= p.KeyEpsilon)
        {
            var f = (double)p.KeyRadius / p.KeyEpsilon;
            for (var e = 0; e < p.D; e++) dk[e] = (float)(f * dk[e]);
            return;
        }
        var scale = p.KeyRadius / norm;
        var proj = kdk / sq;
        for (var e = 0; e < p.D; e++) dk[e] = (float)(scale * (dk[e] - k[e] * proj));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QueryGradientBlock<TS, TV>(BackwardContext ctx, int bh, int qb, Tile tile) where TS : struct, ISimdWidth<TV> where TV : struct
    {
        var p = ctx.P;
        int b = bh / p.H, h = bh % p.H, hk = h / p.Group;
        int d = p.D, dp = tile.Dp;
        var t0 = qb * QueryBlock;
        var rows = LoadQueryTile(ctx, bh, t0, tile);
        var dqAcc = tile.O; // [QueryBlock, Dp] sum_j dz_ij s k'_j
        new Span<float>(dqAcc, QueryBlock * dp).Clear();
        var (jLo, _) = p.KeyRange(b, t0);
        var (_, jHi) = p.KeyRange(b, t0 + rows - 1);
        var groups = (rows + Rows - 1) / Rows;
        for (var kb = Math.Max(jLo, 0) / KeyBlock; jHi >= jLo && kb <= jHi / KeyBlock; kb++)
        {
            if (!ProbabilitiesAndScoreGradients<TS, TV>(ctx, h, hk, b, t0, rows, kb, tile, null)) continue;
            var ks = ctx.Keys.ScaledKeys + ((nint)(b * p.Hkv + hk) * ctx.Keys.Blocks + kb) * KeyBlock * dp; // [KB, Dp]
            for (var g = 0; g < groups; g++)
                ManagedKernels.Gemm4<TS, TV>(tile.DZ + g * Rows * KeyBlock, KeyBlock, 1, ks, dp, KeyBlock, dqAcc + (nint)g * Rows * dp, dp, dp,
                    accumulate: true);
        }
        var rowBase = (nint)bh * p.N + t0;
        for (var r = 0; r < rows; r++)
            new ReadOnlySpan<float>(dqAcc + (nint)r * dp, d).CopyTo(new Span<float>(ctx.DQ + (rowBase + r) * d, d));
    }

    /// <summary>
    /// 64-byte aligned float storage (so every Vector512 load is one cache line) on the pinned heap, grown on demand and
    /// kept between calls by its owner (one per thread), so a training loop does not allocate it again.
    /// </summary>
    private sealed class AlignedBuffer
    {
        [ThreadStatic] private static AlignedBuffer? delta;

        private float[]? storage;

        /// <summary>Valid until the next <see cref="Ensure"/> that grows the buffer.</summary>
        public float* Pointer { get; private set; }

        /// <summary>Makes room for <paramref name="length"/> floats (at least one) and returns the aligned start.</summary>
        public float* Ensure(long length)
        {
            var needed = checked((int)Math.Max(length, 1) + 16);
            if (storage is null || storage.Length < needed)
            {
                storage = GC.AllocateUninitializedArray<float>(needed, pinned: true);
                var address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(storage));
                Pointer = (float*)((address + 63) & ~(nint)63);
            }
            return Pointer;
        }

        /// <summary>This thread's buffer for the backward's row deltas.</summary>
        public static float* Delta(long length) => (delta ??= new AlignedBuffer()).Ensure(length);
    }

    /// <summary>
    /// The keys and values as the kernels read them, built once per call in O(B Hkv M D): every score variant is folded
    /// into s k' and the per-key bias here.
    /// </summary>
    private sealed class PreparedKeys
    {
        [ThreadStatic] private static PreparedKeys? current;

        private readonly AlignedBuffer keysT = new(), bias = new(), values = new(), scaledKeys = new(), valuesT = new();
        private double[] biasShift = [];
        private double[] exactBias = [];

        // Sizes the buffers for p (growing them when needed; a thread's keys are reused call after call).
        private void Size(AttentionParams p, bool backward)
        {
            Blocks = (p.M + KeyBlock - 1) / KeyBlock;
            var blocks = (long)p.B * p.Hkv * Blocks;
            var dp = PaddedDim(p.D);
            if (biasShift.Length < p.B * p.Hkv) biasShift = new double[p.B * p.Hkv];
            if (exactBias.Length < blocks * KeyBlock) exactBias = new double[checked((int)(blocks * KeyBlock))];
            keysT.Ensure(blocks * p.D * KeyBlock);
            bias.Ensure(blocks * KeyBlock);
            values.Ensure(backward ? 0 : blocks * KeyBlock * dp);
            scaledKeys.Ensure(backward ? blocks * KeyBlock * dp : 0);
            valuesT.Ensure(backward ? blocks * p.D * KeyBlock : 0);
        }

        /// <summary>Key blocks per (b, kv head), Mb.</summary>
        public int Blocks { get; private set; }

        /// <summary>s k' per key block, transposed: [B, Hkv, Mb, D, KB].</summary>
        public float* KeysT => keysT.Pointer;
        /// <summary>-(s/2)|k'|^2 - BiasShift for Distance, 0 for Dot, -inf past M: [B, Hkv, Mp].</summary>
        public float* Bias => bias.Pointer;
        /// <summary>
        /// The largest Distance bias of each (b, kv head), [B, Hkv], taken out of Bias: softmax ignores a constant, and
        /// near 1e3-scale logits -(s/2)|k'|^2 is several times larger than z, so keeping it in z would cost its rounding
        /// error (ulp of |k'|^2) on every score. Lse adds it back in float64.
        /// </summary>
        public double[] BiasShift => biasShift;
        /// <summary>v zero padded (forward only): [B, Hkv, Mp, Dp].</summary>
        public float* Values => values.Pointer;
        /// <summary>s k' zero padded (backward only): [B, Hkv, Mp, Dp].</summary>
        public float* ScaledKeys => scaledKeys.Pointer;
        /// <summary>v per key block, transposed (backward only): [B, Hkv, Mb, D, KB].</summary>
        public float* ValuesT => valuesT.Pointer;

        /// <summary>This thread's prepared keys, filled for p from k and v (valid until this thread's next call).</summary>
        public static PreparedKeys Create(AttentionParams p, ReadOnlySpan<float> k, ReadOnlySpan<float> v, bool backward)
        {
            var keys = current ??= new PreparedKeys();
            keys.Size(p, backward);
            var perHead = keys.Blocks * KeyBlock;
            var exactBias = keys.exactBias; // [B, Hkv, Mp]
            fixed (float* kp = k, vp = v)
            fixed (double* eb = exactBias)
            {
                var body = new PrepareBlocks { Keys = keys, P = p, K = kp, V = vp, Backward = backward, ExactBias = eb };
                ManagedParallel.For(p.B * p.Hkv * keys.Blocks, ref body);
            }
            for (var bhk = 0; bhk < p.B * p.Hkv; bhk++)
            {
                var row = exactBias.AsSpan(bhk * perHead, perHead);
                var shift = p.M > 0 ? System.Numerics.Tensors.TensorPrimitives.Max<double>(row[..p.M]) : 0.0;
                keys.BiasShift[bhk] = shift;
                for (var j = 0; j < perHead; j++) keys.Bias[(nint)bhk * perHead + j] = (float)(row[j] - shift);
            }
            return keys;
        }

        private struct PrepareBlocks : IParallelBody
        {
            public PreparedKeys Keys;
            public AttentionParams P;
            public float* K, V;
            public double* ExactBias;
            public bool Backward;

            public readonly void Run(int block) => Keys.PrepareBlock(P, K, V, block, Backward, ExactBias);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void PrepareBlock(AttentionParams p, float* k, float* v, int block, bool backward, double* exactBias)
        {
            int d = p.D, dp = PaddedDim(d);
            var bhk = block / Blocks;
            var jb = block % Blocks * KeyBlock;
            var kt = KeysT + (nint)block * d * KeyBlock; // [D, KB]
            var vt = ValuesT + (nint)block * d * KeyBlock; // [D, KB]
            var vRows = Values + (nint)block * KeyBlock * dp; // [KB, Dp]
            var kRows = ScaledKeys + (nint)block * KeyBlock * dp; // [KB, Dp]
            var biasRow = new Span<double>(exactBias + (nint)block * KeyBlock, KeyBlock); // [KB]
            for (var jj = 0; jj < KeyBlock; jj++)
            {
                var j = jb + jj;
                var rowK = backward ? new Span<float>(kRows + (nint)jj * dp, dp) : default;
                var rowV = backward ? default : new Span<float>(vRows + (nint)jj * dp, dp);
                rowK.Clear();
                rowV.Clear();
                if (j >= p.M)
                {
                    biasRow[jj] = float.NegativeInfinity;
                    for (var e = 0; e < d; e++)
                    {
                        kt[e * KeyBlock + jj] = 0f;
                        if (backward) vt[e * KeyBlock + jj] = 0f;
                    }
                    continue;
                }
                var kj = k + ((nint)bhk * p.M + j) * d;
                var vj = v + ((nint)bhk * p.M + j) * d;
                double sq = 0;
                for (var e = 0; e < d; e++) sq += (double)kj[e] * kj[e];
                var f = p.NormalizeKeys ? p.KeyRadius / Math.Max(Math.Sqrt(sq), p.KeyEpsilon) : 1.0;
                double sqScored = 0;
                for (var e = 0; e < d; e++)
                {
                    var scored = kj[e] * f;
                    sqScored += scored * scored;
                    var ks = (float)(p.Scale * scored);
                    kt[e * KeyBlock + jj] = ks;
                    if (backward)
                    {
                        rowK[e] = ks;
                        vt[e * KeyBlock + jj] = vj[e];
                    }
                    else
                    {
                        rowV[e] = vj[e];
                    }
                }
                biasRow[jj] = p.Score == Score.Distance ? -0.5 * p.Scale * sqScored : 0.0;
            }
        }
    }

    /// <summary>
    /// One worker's tiles (a few hundred KB at most), kept per worker slot between calls (ManagedParallel.WorkerLocal) and
    /// grown on demand: a slot runs one work item at a time, and keeping them means a training loop does not allocate
    /// them on every call.
    /// </summary>
    private sealed class Tile
    {
        private float[] storage = [];

        // Lays the tiles out for head dimension padded to dp, growing the storage when it is too small.
        private void Layout(int dp)
        {
            Dp = dp;
            long rowsDp = (long)QueryBlock * dp, square = (long)QueryBlock * KeyBlock;
            var needed = checked((int)(5 * rowsDp + 2 * square + Rows * KeyBlock + KeyBlock + 5 * QueryBlock + 16));
            if (storage.Length < needed) storage = GC.AllocateUninitializedArray<float>(needed, pinned: true);
            var address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(storage));
            var at = (float*)((address + 63) & ~(nint)63);
            Q = at; at += rowsDp;
            O = at; at += rowsDp;
            DO = at; at += rowsDp;
            KeyAccA = at; at += rowsDp;
            KeyAccB = at; at += rowsDp;
            P = at; at += square;
            DZ = at; at += square;
            S = at; at += Rows * KeyBlock;
            ColSum = at; at += KeyBlock;
            RowMax = at; at += QueryBlock;
            RowSum = at; at += QueryBlock;
            RowEntropy = at; at += QueryBlock;
            RowSink = at; at += QueryBlock;
            Delta = at;
        }

        /// <summary>This worker's tiles for head dimension padded to <paramref name="dp"/> (the pinned heap never moves them).</summary>
        public static Tile ForThisWorker(int dp)
        {
            var tile = ManagedParallel.WorkerLocal<Tile>();
            if (tile.Dp != dp) tile.Layout(dp);
            return tile;
        }

        public int Dp { get; private set; }
        public float* Q { get; private set; } // [QueryBlock, Dp]
        public float* O { get; private set; } // [QueryBlock, Dp] forward output, or dQ in the backward
        public float* DO { get; private set; } // [QueryBlock, Dp]
        public float* KeyAccA { get; private set; } // [KB, Dp]
        public float* KeyAccB { get; private set; } // [KB, Dp]
        public float* P { get; private set; } // [QueryBlock, KB]
        public float* DZ { get; private set; } // [QueryBlock, KB]
        public float* S { get; private set; } // [Rows, KB]
        public float* ColSum { get; private set; } // [KB]
        public float* RowMax { get; private set; } // [QueryBlock] running max (forward), saved m_i (backward)
        public float* RowSum { get; private set; } // [QueryBlock] running l (forward), saved log l_i (backward)
        public float* RowEntropy { get; private set; } // [QueryBlock]
        public float* RowSink { get; private set; } // [QueryBlock]
        public float* Delta { get; private set; } // [QueryBlock]
    }

    /// <summary>What every forward work item reads and writes (pointers into spans pinned for the call); one per calling
    /// thread, refilled on every call so calls do not allocate.</summary>
    private sealed class ForwardContext
    {
        [ThreadStatic] private static ForwardContext? current;

        public static ForwardContext ForThisThread() => current ??= new ForwardContext();

        public void Set(AttentionParams p, PreparedKeys keys, float* q, float* o, float* lse, float* stats,
            float* entropy, float* sinkMass, float* maxProb)
        {
            P = p; Keys = keys; Q = q; O = o; Lse = lse; Stats = stats; Entropy = entropy; SinkMass = sinkMass; MaxProb = maxProb;
        }

        /// <summary>Drops the pointers once the call is over.</summary>
        public void Clear() => Set(null!, null!, null, null, null, null, null, null, null);

        public AttentionParams P { get; private set; } = null!;
        public PreparedKeys Keys { get; private set; } = null!;
        public float* Q { get; private set; } // [B, H, N, D]
        public float* O { get; private set; } // [B, H, N, D]
        public float* Lse { get; private set; } // [B, H, N]
        public float* Stats { get; private set; } // [B, H, N, 2] (m_i less BiasShift, log l_i)
        public float* Entropy { get; private set; } // [B, H, N] or null
        public float* SinkMass { get; private set; } // [B, H, N] or null
        public float* MaxProb { get; private set; } // [B, H, N] or null
    }

    /// <summary>What every backward work item reads and writes (pointers into spans pinned for the call); one per calling
    /// thread, as <see cref="ForwardContext"/>.</summary>
    private sealed class BackwardContext
    {
        [ThreadStatic] private static BackwardContext? current;

        public static BackwardContext ForThisThread() => current ??= new BackwardContext();

        public void Set(AttentionParams p, PreparedKeys keys, float* dOut, float* q, float* k, float* stats, float* delta, float* dq,
            float* dk, float* dv)
        {
            P = p; Keys = keys; DOut = dOut; Q = q; K = k; Stats = stats; Delta = delta; DQ = dq; DK = dk; DV = dv;
        }

        /// <summary>Drops the pointers once the call is over.</summary>
        public void Clear() => Set(null!, null!, null, null, null, null, null, null, null, null);

        public AttentionParams P { get; private set; } = null!;
        public PreparedKeys Keys { get; private set; } = null!;
        public float* DOut { get; private set; } // [B, H, N, D]
        public float* Q { get; private set; } // [B, H, N, D]
        public float* K { get; private set; } // [B, Hkv, M, D]
        public float* Stats { get; private set; } // [B, H, N, 2] the forward's (m_i less BiasShift, log l_i)
        public float* Delta { get; private set; } // [B, H, N]
        public float* DQ { get; private set; } // [B, H, N, D]
        public float* DK { get; private set; } // [B, Hkv, M, D]
        public float* DV { get; private set; } // [B, Hkv, M, D]
    }
}
