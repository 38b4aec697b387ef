// Selective scan on the Managed backend: Vector256 SIMD across 8 channels of one group (they share B and C, so each
// step broadcasts one B and one C value), Parallel.For across (batch, group, channel block). Time runs in tiles of
// SelectiveScan.ChunkLength steps: a tile's u, dt (and in the backward the gate) are transposed into time-major
// vectors once, then each state n runs the recurrence over the tile. The state entering each tile is the saved
// chunk state, so the forward's ChunkStates mean the same thing on every backend.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups; a block is up to 8 channels of one group.
// The backward walks tiles last to first, recomputes the tile's states from the saved chunk state, then runs the
// reverse recurrence. dB and dC sum over a group's channels: lanes by Vector256.Sum, blocks in block order after the
// parallel loop, so results are bitwise repeatable for any thread count.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static class SelectiveScanManaged
{
    private const int Lanes = 8; // Vector256<float>.Count
    private const int Tile = SelectiveScan.ChunkLength;

    private readonly record struct Block(int B, int G, int D0, int Width);

    private static int BlocksPerGroup(SelectiveScanParams p) => (p.ChannelsPerGroup + Lanes - 1) / Lanes;

    private static Block BlockAt(SelectiveScanParams p, int index)
    {
        var perGroup = BlocksPerGroup(p);
        var bg = index / perGroup; // b G + g
        var k = index - bg * perGroup;
        var g = bg % p.G;
        var d0 = g * p.ChannelsPerGroup + k * Lanes;
        return new Block(bg / p.G, g, d0, Math.Min(Lanes, p.ChannelsPerGroup - k * Lanes));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Softplus(float x) =>
        x > 20f ? x : x < -15f ? MathF.Exp(x) : MathF.Log(1f + MathF.Exp(x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    // exp in float64 lanes, rounded once to float32: Vector256.Exp on float lanes is off by an ulp for most arguments
    // (77% of A dt in [-5e5, -1e-4], measured 2026-11-28), and the decay's rounding is what a long scan accumulates
    // (L steps of a 1-ulp-biased decay drift by L ulps). Correctly rounded here, like MathF.Exp, for 1.3x the cost.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Exp(Vector256<float> x)
    {
        var (lower, upper) = Vector256.Widen(x);
        return Vector256.Narrow(Vector256.Exp(lower), Vector256.Exp(upper));
    }

    private static float Dt(SelectiveScanParams p, float raw) => p.DeltaSoftplus ? Softplus(raw) : raw;

    // One value per channel of the block (zeros in padding lanes).
    private static Vector256<float> Gather(float[]? source, Block blk, long start, long stride)
    {
        if (source is null) return Vector256<float>.Zero;
        Span<float> lanes = stackalloc float[Lanes];
        lanes.Clear();
        for (var j = 0; j < blk.Width; j++) lanes[j] = source[start + j * stride];
        return Vector256.Create<float>(lanes);
    }

    private sealed class Scratch(int states)
    {
        public readonly Vector256<float>[] Dt = new Vector256<float>[Tile];       // [Tile] x 8 channels
        public readonly Vector256<float>[] U = new Vector256<float>[Tile];        // [Tile]
        public readonly Vector256<float>[] Y = new Vector256<float>[Tile];        // [Tile]
        public readonly Vector256<float>[] Raw = new Vector256<float>[Tile];      // [Tile]
        public readonly Vector256<float>[] Gate = new Vector256<float>[Tile];     // [Tile]
        public readonly Vector256<float>[] DtGrad = new Vector256<float>[Tile];   // [Tile]
        public readonly Vector256<float>[] A = new Vector256<float>[states];      // [Nst]
        public readonly Vector256<float>[] H = new Vector256<float>[states];      // [Nst]
        public readonly double[] DA = new double[states * Lanes];                 // [Nst, 8] dA summed over time
        public readonly Vector256<float>[] Tiles = new Vector256<float>[states * Tile]; // [Nst, Tile] states of a tile
    }

    public static void Forward(SelectiveScanParams p, SelectiveScanHostInputs x, float[] output, float[]? preGate,
        float[] lastState, float[] chunkStates)
    {
        var blocks = p.B * p.G * BlocksPerGroup(p);
        Parallel.For(0, blocks, () => new Scratch(p.Nst), (index, _, s) =>
        {
            ForwardBlock(p, x, BlockAt(p, index), s, output, preGate, lastState, chunkStates);
            return s;
        }, static _ => { });
    }

    private static void ForwardBlock(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, Scratch s,
        float[] output, float[]? preGate, float[] lastState, float[] chunkStates)
    {
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = Gather(x.InitialState, blk, (long)row0 * p.Nst + n, p.Nst);
        }
        var bias = Gather(x.DeltaBias, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        Span<float> lanes = stackalloc float[Lanes];
        for (var chunk = 0; chunk < p.Chunks; chunk++)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            for (var t = 0; t < len; t++)
            {
                var u = Gather(x.U, blk, (long)row0 * p.L + l0 + t, p.L);
                var raw = Gather(x.Delta, blk, (long)row0 * p.L + l0 + t, p.L) + bias;
                lanes.Clear();
                for (var j = 0; j < blk.Width; j++) lanes[j] = Dt(p, raw[j]);
                var dt = Vector256.Create<float>(lanes);
                s.Dt[t] = dt;
                s.U[t] = dt * u; // dt u, the input's scale
                s.Y[t] = Vector256<float>.Zero;
            }
            for (var n = 0; n < p.Nst; n++)
            {
                var h = s.H[n];
                for (var j = 0; j < blk.Width; j++)
                    chunkStates[(((long)row0 + j) * p.Chunks + chunk) * p.Nst + n] = h[j];
                var a = s.A[n];
                var bRow = x.B.AsSpan((int)(bcBase + (long)n * p.L + l0), len);
                var cRow = x.C.AsSpan((int)(bcBase + (long)n * p.L + l0), len);
                for (var t = 0; t < len; t++)
                {
                    h = Exp(s.Dt[t] * a) * h + s.U[t] * bRow[t];
                    s.Y[t] += cRow[t] * h;
                }
                s.H[n] = h;
            }
            for (var j = 0; j < blk.Width; j++)
            {
                var d = blk.D0 + j;
                var skip = x.D?[d] ?? 0f;
                var rowBase = ((long)row0 + j) * p.L + l0;
                for (var t = 0; t < len; t++)
                {
                    var i = rowBase + t;
                    var pre = s.Y[t][j] + skip * x.U[i];
                    if (x.Z is null)
                    {
                        output[i] = pre;
                        continue;
                    }
                    var zv = x.Z[i];
                    preGate![i] = pre;
                    output[i] = pre * zv * Sigmoid(zv);
                }
            }
        }
        for (var n = 0; n < p.Nst; n++)
            for (var j = 0; j < blk.Width; j++)
                lastState[((long)row0 + j) * p.Nst + n] = s.H[n][j];
    }

    public static void Backward(SelectiveScanParams p, SelectiveScanHostInputs x, float[] dOut, float[] chunkStates,
        float[]? preGate, float[] du, float[] dDelta, float[] dA, float[] dB, float[] dC,
        float[]? dD, float[]? dz, float[]? dDeltaBias, float[]? dInitialState)
    {
        var perGroup = BlocksPerGroup(p);
        var blocks = p.B * p.G * perGroup;
        var stateTimes = (long)p.Nst * p.L;
        // With one block per group a block's sums are dB and dC themselves; otherwise per-block partials.
        var direct = perGroup == 1;
        var partialB = direct ? dB : new float[blocks * stateTimes]; // [B, G, blocks per group, Nst, L]
        var partialC = direct ? dC : new float[blocks * stateTimes]; // [B, G, blocks per group, Nst, L]
        var rowSums = new double[(long)p.B * p.Dc * (p.Nst + 2)];     // [B, Dc, Nst + 2]: dA, dD, ddeltaBias
        Parallel.For(0, blocks, () => new Scratch(p.Nst), (index, _, s) =>
        {
            BackwardBlock(p, x, BlockAt(p, index), s, dOut, chunkStates, preGate, du, dDelta, dz, dInitialState,
                partialB, partialC, index * stateTimes, rowSums);
            return s;
        }, static _ => { });

        if (!direct)
        {
            for (var bg = 0; bg < p.B * p.G; bg++)
            {
                var targetB = dB.AsSpan((int)(bg * stateTimes), (int)stateTimes);
                var targetC = dC.AsSpan((int)(bg * stateTimes), (int)stateTimes);
                targetB.Clear();
                targetC.Clear();
                for (var k = 0; k < perGroup; k++)
                {
                    var offset = (int)((bg * perGroup + k) * stateTimes);
                    System.Numerics.Tensors.TensorPrimitives.Add(targetB, partialB.AsSpan(offset, (int)stateTimes), targetB);
                    System.Numerics.Tensors.TensorPrimitives.Add(targetC, partialC.AsSpan(offset, (int)stateTimes), targetC);
                }
            }
        }
        for (var d = 0; d < p.Dc; d++)
        for (var k = 0; k < p.Nst + 2; k++)
        {
            var sum = 0.0;
            for (var b = 0; b < p.B; b++) sum += rowSums[((long)b * p.Dc + d) * (p.Nst + 2) + k];
            if (k < p.Nst) dA[d * p.Nst + k] = (float)sum;
            else if (k == p.Nst && dD is not null) dD[d] = (float)sum;
            else if (k == p.Nst + 1 && dDeltaBias is not null) dDeltaBias[d] = (float)sum;
        }
    }

    private static void BackwardBlock(SelectiveScanParams p, SelectiveScanHostInputs x, Block blk, Scratch s,
        float[] dOut, float[] chunkStates, float[]? preGate, float[] du, float[] dDelta, float[]? dz,
        float[]? dInitialState, float[] partialB, float[] partialC, long partialBase, double[] rowSums)
    {
        var row0 = blk.B * p.Dc + blk.D0;
        for (var n = 0; n < p.Nst; n++)
        {
            s.A[n] = Gather(x.A, blk, (long)blk.D0 * p.Nst + n, p.Nst);
            s.H[n] = Vector256<float>.Zero; // the dh carry: a_{l+1} dh_{l+1} for the step after the current tile
        }
        Array.Clear(s.DA);
        var bias = Gather(x.DeltaBias, blk, blk.D0, 1);
        var skip = Gather(x.D, blk, blk.D0, 1);
        var bcBase = ((long)blk.B * p.G + blk.G) * p.Nst * p.L;
        // Sums over time: float within a tile, float64 across tiles, so their error does not grow with L.
        Span<double> sumSkip = stackalloc double[Lanes];
        Span<double> sumBias = stackalloc double[Lanes];
        sumSkip.Clear();
        sumBias.Clear();
        Span<float> lanes = stackalloc float[Lanes];
        Span<float> act = stackalloc float[Lanes];
        for (var chunk = p.Chunks - 1; chunk >= 0; chunk--)
        {
            var l0 = chunk * Tile;
            var len = Math.Min(Tile, p.L - l0);
            var tileSkip = Vector256<float>.Zero;
            var tileBias = Vector256<float>.Zero;
            for (var t = 0; t < len; t++)
            {
                var seq = (long)row0 * p.L + l0 + t;
                var u = Gather(x.U, blk, seq, p.L);
                var raw = Gather(x.Delta, blk, seq, p.L) + bias;
                lanes.Clear();
                for (var j = 0; j < blk.Width; j++) lanes[j] = Dt(p, raw[j]);
                s.Dt[t] = Vector256.Create<float>(lanes);
                s.U[t] = u;
                s.Raw[t] = raw;
                lanes.Clear();
                for (var j = 0; j < blk.Width; j++)
                {
                    var i = seq + (long)j * p.L;
                    var g = dOut[i];
                    if (x.Z is not null)
                    {
                        var zv = x.Z[i];
                        var sig = Sigmoid(zv);
                        dz![i] = g * preGate![i] * sig * (1f + zv * (1f - sig));
                        g *= zv * sig;
                    }
                    lanes[j] = g;
                }
                s.Gate[t] = Vector256.Create<float>(lanes);
                s.Y[t] = s.Gate[t] * skip; // du accumulates here
                s.DtGrad[t] = Vector256<float>.Zero;
            }
            // Recompute the tile's states from the state saved at its start.
            for (var n = 0; n < p.Nst; n++)
            {
                var h = Gather(chunkStates, blk, ((long)row0 * p.Chunks + chunk) * p.Nst + n, (long)p.Chunks * p.Nst);
                var start = h;
                var a = s.A[n];
                var bRow = x.B.AsSpan((int)(bcBase + (long)n * p.L + l0), len);
                for (var t = 0; t < len; t++)
                {
                    h = Exp(s.Dt[t] * a) * h + s.Dt[t] * s.U[t] * bRow[t];
                    s.Tiles[n * Tile + t] = h;
                }
                Reverse(p, s, n, len, start, x.B.AsSpan((int)(bcBase + (long)n * p.L + l0), len),
                    x.C.AsSpan((int)(bcBase + (long)n * p.L + l0), len),
                    partialB.AsSpan((int)(partialBase + (long)n * p.L + l0), len),
                    partialC.AsSpan((int)(partialBase + (long)n * p.L + l0), len));
            }
            for (var t = 0; t < len; t++)
            {
                lanes.Clear();
                act.Clear();
                var raw = s.Raw[t];
                for (var j = 0; j < blk.Width; j++)
                    act[j] = p.DeltaSoftplus ? (raw[j] > 20f ? 1f : Sigmoid(raw[j])) : 1f;
                var ddelta = s.DtGrad[t] * Vector256.Create<float>(act);
                tileSkip += s.Gate[t] * s.U[t];
                tileBias += ddelta;
                for (var j = 0; j < blk.Width; j++)
                {
                    var i = ((long)row0 + j) * p.L + l0 + t;
                    du[i] = s.Y[t][j];
                    dDelta[i] = ddelta[j];
                }
            }
            for (var j = 0; j < Lanes; j++)
            {
                sumSkip[j] += tileSkip[j];
                sumBias[j] += tileBias[j];
            }
        }
        for (var j = 0; j < blk.Width; j++)
        {
            var row = (long)row0 + j;
            for (var n = 0; n < p.Nst; n++)
            {
                rowSums[row * (p.Nst + 2) + n] = s.DA[n * Lanes + j];
                if (dInitialState is not null) dInitialState[row * p.Nst + n] = s.H[n][j];
            }
            rowSums[row * (p.Nst + 2) + p.Nst] = sumSkip[j];
            rowSums[row * (p.Nst + 2) + p.Nst + 1] = sumBias[j];
        }
    }

    // Reverse recurrence of state n over one tile: dh_l = g_l C_l + carry, then carry = a_l dh_l.
    private static void Reverse(SelectiveScanParams p, Scratch s, int n, int len, Vector256<float> start,
        ReadOnlySpan<float> bRow, ReadOnlySpan<float> cRow, Span<float> dBRow, Span<float> dCRow)
    {
        var a = s.A[n];
        var dh = s.H[n];
        var dAn = Vector256<float>.Zero;
        for (var t = len - 1; t >= 0; t--)
        {
            var dt = s.Dt[t];
            var h = s.Tiles[n * Tile + t];
            var hPrev = t > 0 ? s.Tiles[n * Tile + t - 1] : start;
            dh += s.Gate[t] * cRow[t];
            var decay = Exp(dt * a);
            var dDecay = dh * hPrev * decay; // dL/d(dt A)
            dAn += dDecay * dt;
            s.DtGrad[t] += dDecay * a + dh * s.U[t] * bRow[t];
            s.Y[t] += dh * dt * bRow[t];
            dBRow[t] = Vector256.Sum(dh * dt * s.U[t]);
            dCRow[t] = Vector256.Sum(s.Gate[t] * h);
            dh = decay * dh;
        }
        s.H[n] = dh;
        for (var j = 0; j < Lanes; j++) s.DA[n * Lanes + j] += dAn[j];
    }
}
