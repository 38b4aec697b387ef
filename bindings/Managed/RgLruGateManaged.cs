// The RG-LRU gate on the Managed backend (maths in kernels/Training/RgLruGateKernels.cs). Shapes: B batch, T steps,
// C channels; gr, gi, x, dgr, dgi, dx [B, T, C]; lambda, dlambda [C]; a, gx, da, dgx [B, C, T].
// Work is cut into tiles of 16 steps x 64 channels: the token-major side is computed along C with Vector<float> (any
// width; 64 is a multiple of every width), the channel-major side goes through a stack tile so it is read and written
// in runs of 16 steps. ManagedParallel.For over tiles once the input is large. dlambda: each tile sums its 16 steps'
// terms per channel in t order into its own row of a [B ceil(T/16), C] buffer (the calling thread's ThreadScratch),
// whose rows are then added in order, so the result does not depend on scheduling (no atomics).
//
// Versions:
//   1  (2026-12-03) as above. Not timed yet.
//   2  (2026-12-03) no allocation per call (issue 11): ManagedParallel.For over struct bodies instead of Parallel.For
//      and lambdas, the [C] tables and the partials in a per-thread ThreadScratch instead of ArrayPool rentals. Same
//      tiles and sums: results bitwise equal. Before: ~2.1 KB per forward, ~2.6 KB per backward ([2, 128, 130]).
using System.Numerics;
using System.Numerics.Tensors;
using RouteKit.Kernels.Training;

namespace RouteKit;

internal static class RgLruGateManaged
{
    private const int TileSteps = 16;
    private const int TileChannels = 64;
    private const int ParallelThreshold = 1 << 14;

    // This thread's scratch: -c softplus(lambda) [C], then (backward) -c sigmoid(lambda) [C] and the dlambda partials.
    [ThreadStatic] private static ThreadScratch? scratch;

    public static unsafe void Forward(ReadOnlySpan<float> gr, ReadOnlySpan<float> gi, ReadOnlySpan<float> x, ReadOnlySpan<float> lambda,
        Span<float> a, Span<float> gx, int batch, int steps, int channels, float brake)
    {
        var negCsp = (scratch ??= new ThreadScratch()).Ensure(channels); // [C], -c softplus(lambda)
        NegBrakeSoftplus(lambda, new Span<float>(negCsp, channels), brake);
        fixed (float* pgr = gr, pgi = gi, px = x, pa = a, pgx = gx)
        {
            var body = new ForwardTiles { P = new Pointers(pgr, pgi, px, negCsp, pa, pgx), Tiles = new Tiles(batch, steps, channels) };
            ForEach(ref body, body.Tiles.Count, gr.Length);
        }
    }

    public static unsafe void Backward(ReadOnlySpan<float> da, ReadOnlySpan<float> dgx, ReadOnlySpan<float> gr, ReadOnlySpan<float> gi,
        ReadOnlySpan<float> x, ReadOnlySpan<float> lambda, Span<float> dgr, Span<float> dgi, Span<float> dx, Span<float> dlambda,
        int batch, int steps, int channels, float brake)
    {
        var tiles = new Tiles(batch, steps, channels);
        var partialRows = batch * tiles.StepBlocks;
        var negCsp = (scratch ??= new ThreadScratch()).Ensure((2L + partialRows) * channels); // [C], -c softplus(lambda)
        var lambdaSlope = negCsp + channels;                                                   // [C], -c sigmoid(lambda)
        var partials = lambdaSlope + channels;                                                 // [B ceil(T/16), C]
        NegBrakeSoftplus(lambda, new Span<float>(negCsp, channels), brake);
        for (var c = 0; c < channels; c++)
        {
            var e = MathF.Exp(-MathF.Abs(lambda[c]));
            lambdaSlope[c] = -brake * ((lambda[c] >= 0f ? 1f : e) / (1f + e));
        }
        fixed (float* pda = da, pdgx = dgx, pgr = gr, pgi = gi, px = x, pdgr = dgr, pdgi = dgi, pdx = dx)
        {
            var body = new BackwardTiles
            {
                P = new BackwardPointers(pda, pdgx, pgr, pgi, px, negCsp, lambdaSlope, pdgr, pdgi, pdx, partials),
                Tiles = tiles,
            };
            ForEach(ref body, tiles.Count, gr.Length);
        }
        dlambda.Clear();
        for (var row = 0; row < partialRows; row++)
            TensorPrimitives.Add(dlambda, new ReadOnlySpan<float>(partials + (long)row * channels, channels), dlambda);
    }

    private struct ForwardTiles : IParallelBody
    {
        public Pointers P;
        public Tiles Tiles;

        public readonly void Run(int k) => ForwardTile(P, Tiles, k);
    }

    private struct BackwardTiles : IParallelBody
    {
        public BackwardPointers P;
        public Tiles Tiles;

        public readonly void Run(int k) => BackwardTile(P, Tiles, k);
    }

    /// <summary>The tiling of [B, T, C] into 16-step, 64-channel tiles, numbered ((b StepBlocks) + tb) ChannelBlocks + cb.</summary>
    private readonly record struct Tiles(int Batch, int Steps, int Channels)
    {
        public int StepBlocks => (Steps + TileSteps - 1) / TileSteps;
        public int ChannelBlocks => (Channels + TileChannels - 1) / TileChannels;
        public int Count => Batch * StepBlocks * ChannelBlocks;

        public (int B, int T0, int Tw, int C0, int Cw, int PartialRow) Of(int k)
        {
            var cb = k % ChannelBlocks;
            var row = k / ChannelBlocks;
            int t0 = row % StepBlocks * TileSteps, c0 = cb * TileChannels;
            return (row / StepBlocks, t0, Math.Min(TileSteps, Steps - t0), c0, Math.Min(TileChannels, Channels - c0), row);
        }
    }

    // The pinned buffers of one call (spans cannot enter the parallel body).
    private readonly unsafe struct Pointers(float* gr, float* gi, float* x, float* negCsp, float* a, float* gx)
    {
        public readonly float* Gr = gr, Gi = gi, X = x, NegCsp = negCsp, A = a, Gx = gx;
    }

    private readonly unsafe struct BackwardPointers(float* da, float* dgx, float* gr, float* gi, float* x, float* negCsp,
        float* lambdaSlope, float* dgr, float* dgi, float* dx, float* partials)
    {
        public readonly float* Da = da, Dgx = dgx, Gr = gr, Gi = gi, X = x, NegCsp = negCsp, LambdaSlope = lambdaSlope,
            Dgr = dgr, Dgi = dgi, Dx = dx, Partials = partials;
    }

    private static void ForEach<TBody>(ref TBody body, int tiles, int elements) where TBody : struct, IParallelBody
    {
        if (elements < ParallelThreshold)
            for (var k = 0; k < tiles; k++) body.Run(k);
        else
            ManagedParallel.For(tiles, ref body);
    }

    private static void NegBrakeSoftplus(ReadOnlySpan<float> lambda, Span<float> negCsp, float brake)
    {
        // softplus(l) = max(l, 0) + log1p(exp(-|l|)), log1p by Goldberg's w = 1 + u trick (MathF has no log1p).
        for (var c = 0; c < lambda.Length; c++)
        {
            var u = MathF.Exp(-MathF.Abs(lambda[c]));
            var w = 1f + u;
            negCsp[c] = -brake * (MathF.Max(lambda[c], 0f) + (w == 1f ? u : MathF.Log(w) * u / (w - 1f)));
        }
    }

    private static unsafe void ForwardTile(Pointers p, Tiles tiles, int k)
    {
        var (b, t0, tw, c0, cw, _) = tiles.Of(k);
        var width = Vector<float>.Count;
        var aTile = stackalloc float[TileSteps * TileChannels];  // [16 steps][64 channels]
        var gxTile = stackalloc float[TileSteps * TileChannels]; // [16 steps][64 channels]
        for (var tt = 0; tt < tw; tt++)
        {
            var row = ((long)b * tiles.Steps + t0 + tt) * tiles.Channels + c0;
            for (var cc = 0; cc < cw; cc += width)
            {
                var n = Math.Min(width, cw - cc);
                var r = Sigmoid(Load(p.Gr + row + cc, n), out _);
                var i = Sigmoid(Load(p.Gi + row + cc, n), out _);
                var logA = Load(p.NegCsp + c0 + cc, n) * r;
                Decay(logA).Store(aTile + tt * TileChannels + cc);
                (Gain(logA) * i * Load(p.X + row + cc, n)).Store(gxTile + tt * TileChannels + cc);
            }
        }
        for (var cc = 0; cc < cw; cc++)
        {
            var o = ((long)b * tiles.Channels + c0 + cc) * tiles.Steps + t0;
            for (var tt = 0; tt < tw; tt++)
            {
                p.A[o + tt] = aTile[tt * TileChannels + cc];
                p.Gx[o + tt] = gxTile[tt * TileChannels + cc];
            }
        }
    }

    private static unsafe void BackwardTile(BackwardPointers p, Tiles tiles, int k)
    {
        var (b, t0, tw, c0, cw, partialRow) = tiles.Of(k);
        var width = Vector<float>.Count;
        var daTile = stackalloc float[TileSteps * TileChannels];  // [16 steps][64 channels]
        var dgxTile = stackalloc float[TileSteps * TileChannels]; // [16 steps][64 channels]
        var sums = stackalloc float[TileChannels];                // dlambda terms of this tile, [64 channels]
        for (var cc = 0; cc < cw; cc++)
        {
            var o = ((long)b * tiles.Channels + c0 + cc) * tiles.Steps + t0;
            for (var tt = 0; tt < tw; tt++)
            {
                daTile[tt * TileChannels + cc] = p.Da[o + tt];
                dgxTile[tt * TileChannels + cc] = p.Dgx[o + tt];
            }
        }
        for (var cc = 0; cc < cw; cc += width)
        {
            var n = Math.Min(width, cw - cc);
            var negCsp = Load(p.NegCsp + c0 + cc, n);
            var lambdaSlope = Load(p.LambdaSlope + c0 + cc, n);
            var sum = Vector<float>.Zero;
            for (var tt = 0; tt < tw; tt++)
            {
                var at = ((long)b * tiles.Steps + t0 + tt) * tiles.Channels + c0 + cc;
                var r = Sigmoid(Load(p.Gr + at, n), out var rSlope);
                var i = Sigmoid(Load(p.Gi + at, n), out var iSlope);
                var x = Load(p.X + at, n);
                var logA = negCsp * r;
                var a = Decay(logA);
                var m = Gain(logA);
                var g = Vector.Load(dgxTile + tt * TileChannels + cc);
                var dLogA = a * Vector.Load(daTile + tt * TileChannels + cc) - g * i * x * (a * a) / m;
                Store(dLogA * negCsp * rSlope, p.Dgr + at, n);
                Store(g * m * x * iSlope, p.Dgi + at, n);
                Store(g * m * i, p.Dx + at, n);
                sum += dLogA * r * lambdaSlope;
            }
            sum.Store(sums + cc);
        }
        new Span<float>(sums, cw).CopyTo(new Span<float>(p.Partials + (long)partialRow * tiles.Channels + c0, cw));
    }

    // n <= width floats from p, zero-padded.
    private static unsafe Vector<float> Load(float* p, int n)
    {
        if (n == Vector<float>.Count) return Vector.Load(p);
        var pad = stackalloc float[Vector<float>.Count];
        new Span<float>(p, n).CopyTo(new Span<float>(pad, Vector<float>.Count));
        return Vector.Load(pad);
    }

    private static unsafe void Store(Vector<float> v, float* p, int n)
    {
        if (n == Vector<float>.Count)
        {
            v.Store(p);
            return;
        }
        var pad = stackalloc float[Vector<float>.Count];
        v.Store(pad);
        new Span<float>(pad, n).CopyTo(new Span<float>(p, n));
    }

    // a = exp(log a) <= 1. Vector.Exp is not exact at 0: it gave 1.0000001 for log a = -0 (2026-12-03, .NET 10, AVX2),
    // which would make the recurrence grow, so the bound that holds in exact arithmetic is imposed.
    private static Vector<float> Decay(Vector<float> logA) => Vector.Min(Vector.Exp(logA), Vector<float>.One);

    // The kernels' scalar formulas lane by lane (RgLruGateKernels.Sigmoid, ExpM1, Gain).
    private static Vector<float> Sigmoid(Vector<float> v, out Vector<float> slope)
    {
        var e = Vector.Exp(-Vector.Abs(v));
        var r = Vector<float>.One / (Vector<float>.One + e);
        slope = e * r * r;
        return Vector.ConditionalSelect(Vector.GreaterThanOrEqual(v, Vector<float>.Zero), r, e * r);
    }

    private static Vector<float> Gain(Vector<float> logA)
    {
        var z = logA + logA;
        var u = Vector.Exp(z);
        // Kahan's expm1: (u - 1) z / log u near 0 (the lanes where u == 1 or z <= -1 are replaced, so their NaN is harmless).
        var near = Vector.ConditionalSelect(Vector.Equals(u, Vector<float>.One), z, (u - Vector<float>.One) * z / Vector.Log(u));
        var expm1 = Vector.ConditionalSelect(Vector.LessThanOrEqual(z, new Vector<float>(-1f)), u - Vector<float>.One, near);
        return Vector.SquareRoot(Vector.Max(-expm1, new Vector<float>(RgLruGateKernels.MinOneMinusASquared)));
    }
}
