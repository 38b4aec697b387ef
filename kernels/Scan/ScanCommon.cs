// Scans, shared device pieces: the combine functor of a first-order linear recurrence, the warp-level inclusive
// scans (forward and reverse in time) every scan kernel is built from, the delta activation variants and the plain
// params struct the selective-scan kernels take.
//
// Shapes: B batch, Dc channels, L time steps, Nst states per channel, G groups of B and C; Chunks = ceil(L / 32).
//
// The chunked scan (Mamba's): h_l = a_l h_{l-1} + b_l is the composition of affine maps x -> a_l x + b_l, and
// composition is associative: applying (a0, b0) then (a1, b1) is (a1 a0, a1 b0 + b1). One warp owns one row (one
// (batch, channel)); a chunk is 32 consecutive time steps, one per lane. The lanes' pairs are combined by five
// shuffle steps (Hillis-Steele), the chunk's incoming state is applied with the same combine, and lane 31's result
// is the next chunk's incoming state. Lanes past the end of the sequence hold the identity (1, 0), so any L works.
// The backward runs the same scan in reverse time on (a_{l+1}, dL/dh_l from the output), as Mamba's does.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Scan;

/// <summary>
/// An associative combine of scan elements (a, b): <c>Combine(earlier, later)</c> returns the element equivalent
/// to applying the earlier element first.
/// </summary>
public interface IScanOp
{
    /// <summary>Replaces (a, b) by the combination of (aEarlier, bEarlier) followed by (a, b).</summary>
    void Combine(float aEarlier, float bEarlier, ref float a, ref float b);
}

/// <summary>The first-order linear recurrence <c>h = a h_prev + b</c>: <c>(a1 a0, a1 b0 + b1)</c>.</summary>
public struct AffineScanOp : IScanOp
{
    /// <inheritdoc />
    public readonly void Combine(float aEarlier, float bEarlier, ref float a, ref float b)
    {
        b = a * bEarlier + b;
        a *= aEarlier;
    }
}

/// <summary>How the raw <c>delta + deltaBias</c> becomes the step dt.</summary>
public interface IDeltaActivation
{
    /// <summary>dt from the raw value x.</summary>
    float Apply(float x);

    /// <summary>d dt / dx at the raw value x.</summary>
    float Derivative(float x);
}

/// <summary>dt = x.</summary>
public struct DeltaIdentity : IDeltaActivation
{
    /// <inheritdoc />
    public readonly float Apply(float x) => x;

    /// <inheritdoc />
    public readonly float Derivative(float x) => 1f;
}

/// <summary>dt = softplus(x) = log(1 + e^x), with PyTorch's threshold: x itself above 20.</summary>
public struct DeltaSoftplus : IDeltaActivation
{
    /// <inheritdoc />
    public readonly float Apply(float x) => ScanMath.Softplus(x);

    /// <inheritdoc />
    public readonly float Derivative(float x) => x > ScanMath.SoftplusThreshold ? 1f : ScanMath.Sigmoid(x);
}

/// <summary>
/// Where the backward puts one row's contributions to dB and dC, which sum over the channels of a group: the target
/// is either a partial buffer <c>[B, Dc, Nst, L]</c> (one slot per row) or dB/dC <c>[B, G, Nst, L]</c> themselves.
/// </summary>
public interface IGradientSink
{
    /// <summary>Stores or adds <paramref name="value"/> for time step l of state n of this row.</summary>
    void Add(ArrayView1D<float, Stride1D.Dense> target, long partialIndex, long directIndex, float value);
}

/// <summary>Deterministic: every row writes its own partials, a second kernel sums them in channel order.</summary>
public struct PartialSink : IGradientSink
{
    /// <inheritdoc />
    public readonly void Add(ArrayView1D<float, Stride1D.Dense> target, long partialIndex, long directIndex, float value) =>
        target[partialIndex] = value;
}

/// <summary>Fast and not bitwise repeatable: float atomics straight into dB and dC (Mamba's choice).</summary>
public struct AtomicSink : IGradientSink
{
    /// <inheritdoc />
    public readonly void Add(ArrayView1D<float, Stride1D.Dense> target, long partialIndex, long directIndex, float value) =>
        Atomic.Add(ref target[directIndex], value);
}

/// <summary>
/// Scalar maths of the scan kernels, evaluated in float64 and rounded once to float32 (so exp, softplus and sigmoid
/// are correctly rounded for all but rare arguments, on every ILGPU backend alike).
/// </summary>
/// <remarks>
/// Why not XMath.Exp: on PTX it is ex2.approx.f32 (about 2 ulps, not correctly rounded), and a scan accumulates its
/// decay's rounding: over L steps of a decay near 1, a one-ulp bias becomes an L-ulp drift of the state (measured
/// with the Managed path's float exp on 2026-11-28: 2.5x the naive float32 loop's error at L = 4099, A dt = -1e-4).
/// float64 costs little here: the kernels are bound by loads of B and C, and an H100 runs float64 at half the float32
/// rate. The algorithms are written with plain arithmetic and bit casts, so the CPU simulator computes bitwise the
/// same values as a GPU, and the simulator tests cover the precision the GPU delivers. OpenCL devices without
/// cl_khr_fp64 (e.g. Intel Arc) cannot run these kernels; the launcher says so.
/// </remarks>
public static class ScanMath
{
    /// <summary>Above this, softplus(x) is x (PyTorch's default threshold).</summary>
    public const float SoftplusThreshold = 20f;

    /// <summary>Below this, softplus(x) is e^x to float32 precision (log(1 + e^x) would round 1 + e^x first).</summary>
    public const float SoftplusSmall = -15f;

    // exp's clamp keeps 2^k a normal float64; float32 still gets its 0, subnormals and infinity from the narrowing.
    private const double ExpLow = -160, ExpHigh = 100;
    private const double Log2E = 1.4426950408889634;
    // fdlibm's split of ln 2: the high part has 21 trailing zero bits, so k Ln2High is exact for |k| < 2^20.
    private const double Ln2High = 6.93147180369123816490e-01, Ln2Low = 1.90821492927058770002e-10;
    private const double Sqrt2 = 1.4142135623730951;

    /// <summary>e^x, evaluated in float64 and rounded once.</summary>
    public static float Exp(float x) => (float)ExpDouble(x);

    /// <summary>
    /// e^x in float64 to about 1e-11 relative (plenty for a float32 result): x = k ln2 + r with |r| &lt;= ln2 / 2,
    /// Taylor to r^9 (truncation 7e-12), then 2^k added to the exponent bits.
    /// </summary>
    public static double ExpDouble(double x)
    {
        x = x < ExpLow ? ExpLow : x > ExpHigh ? ExpHigh : x;
        var k = (double)(int)(x * Log2E + (x < 0 ? -0.5 : 0.5));
        var r = x - k * Ln2High - k * Ln2Low;
        var p = 1.0 / 362880;
        p = p * r + 1.0 / 40320;
        p = p * r + 1.0 / 5040;
        p = p * r + 1.0 / 720;
        p = p * r + 1.0 / 120;
        p = p * r + 1.0 / 24;
        p = p * r + 1.0 / 6;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        return Interop.IntAsFloat(Interop.FloatAsInt(p) + ((ulong)(long)k << 52));
    }

    /// <summary>
    /// ln y for a positive normal float64 y, to about 1e-12 relative: y = m 2^e with m in [sqrt(1/2), sqrt(2)), then
    /// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| &lt;= 0.172, by its series to s^13.
    /// </summary>
    public static double LogDouble(double y)
    {
        var bits = Interop.FloatAsInt(y);
        var e = (int)((bits >> 52) & 0x7FF) - 1023;
        var m = Interop.IntAsFloat((bits & 0x000FFFFFFFFFFFFFUL) | 0x3FF0000000000000UL); // [1, 2)
        if (m >= Sqrt2)
        {
            m *= 0.5;
            e += 1;
        }
        var s = (m - 1.0) / (m + 1.0);
        var s2 = s * s;
        var series = 1.0 / 13;
        series = series * s2 + 1.0 / 11;
        series = series * s2 + 1.0 / 9;
        series = series * s2 + 1.0 / 7;
        series = series * s2 + 1.0 / 5;
        series = series * s2 + 1.0 / 3;
        series = series * s2 + 1.0;
        return e * Ln2High + (e * Ln2Low + 2.0 * s * series);
    }

    /// <summary>log(1 + e^x), with x itself above 20 and e^x below -15.</summary>
    public static float Softplus(float x) =>
        x > SoftplusThreshold ? x : x < SoftplusSmall ? Exp(x) : (float)LogDouble(1.0 + ExpDouble(x));

    /// <summary>1 / (1 + e^-x), rounded once.</summary>
    public static float Sigmoid(float x) => (float)(1.0 / (1.0 + ExpDouble(-x)));

    /// <summary>x sigmoid(x).</summary>
    public static float Silu(float x) => x * Sigmoid(x);

    /// <summary>d silu / dx = sigmoid(x) (1 + x (1 - sigmoid(x))).</summary>
    public static float SiluDerivative(float x)
    {
        var s = Sigmoid(x);
        return s * (1f + x * (1f - s));
    }
}

/// <summary>Warp-level scans over the 32 lanes of a warp (lane 0 is the earliest time step of a chunk).</summary>
public static class WarpScan
{
    /// <summary>Time steps per chunk: one per lane of a 32-wide warp.</summary>
    public const int ChunkLength = 32;

    /// <summary>
    /// Inclusive scan in time order: lane i ends with the combination of lanes 0..i. Every lane of the warp must call
    /// it. Hand-unrolled (ILGPU 1.5.3 does not unroll loops): five shuffle-up steps.
    /// </summary>
    public static void Forward<TOp>(ref float a, ref float b) where TOp : struct, IScanOp
    {
        var lane = Warp.LaneIdx;
        ForwardStep<TOp>(ref a, ref b, lane, 1);
        ForwardStep<TOp>(ref a, ref b, lane, 2);
        ForwardStep<TOp>(ref a, ref b, lane, 4);
        ForwardStep<TOp>(ref a, ref b, lane, 8);
        ForwardStep<TOp>(ref a, ref b, lane, 16);
    }

    /// <summary>
    /// Inclusive scan in reverse time: lane i ends with the combination of lanes 31..i (lane 31 applied first).
    /// Every lane of the warp must call it.
    /// </summary>
    public static void Reverse<TOp>(ref float a, ref float b) where TOp : struct, IScanOp
    {
        var lane = Warp.LaneIdx;
        ReverseStep<TOp>(ref a, ref b, lane, 1);
        ReverseStep<TOp>(ref a, ref b, lane, 2);
        ReverseStep<TOp>(ref a, ref b, lane, 4);
        ReverseStep<TOp>(ref a, ref b, lane, 8);
        ReverseStep<TOp>(ref a, ref b, lane, 16);
    }

    /// <summary>Sum over the warp by a butterfly of shuffles (a fixed order, so bitwise repeatable); every lane gets it.</summary>
    public static float Sum(float x)
    {
        x += Warp.ShuffleXor(x, 16);
        x += Warp.ShuffleXor(x, 8);
        x += Warp.ShuffleXor(x, 4);
        x += Warp.ShuffleXor(x, 2);
        x += Warp.ShuffleXor(x, 1);
        return x;
    }

    private static void ForwardStep<TOp>(ref float a, ref float b, int lane, int offset) where TOp : struct, IScanOp
    {
        var aEarlier = Warp.ShuffleUp(a, offset);
        var bEarlier = Warp.ShuffleUp(b, offset);
        if (lane >= offset) default(TOp).Combine(aEarlier, bEarlier, ref a, ref b);
    }

    private static void ReverseStep<TOp>(ref float a, ref float b, int lane, int offset) where TOp : struct, IScanOp
    {
        var aLater = Warp.ShuffleDown(a, offset);
        var bLater = Warp.ShuffleDown(b, offset);
        if (lane + offset < ChunkLength) default(TOp).Combine(aLater, bLater, ref a, ref b);
    }
}

/// <summary>
/// The scalars of one selective-scan launch, built once by the launcher from the validated problem; kernels read
/// nothing else.
/// </summary>
public struct ScanKernelParams
{
    /// <summary>Batch.</summary>
    public int B;
    /// <summary>Channels.</summary>
    public int Dc;
    /// <summary>Time steps.</summary>
    public int L;
    /// <summary>States per channel.</summary>
    public int Nst;
    /// <summary>Groups of B and C (1 when ungrouped).</summary>
    public int G;
    /// <summary>Channels per group, Dc / G.</summary>
    public int ChannelsPerGroup;
    /// <summary>ceil(L / ChunkLength).</summary>
    public int Chunks;
    /// <summary>B Dc: rows, one per warp.</summary>
    public int Rows;
    /// <summary>1 when D is given.</summary>
    public int HasD;
    /// <summary>1 when z is given.</summary>
    public int HasZ;
    /// <summary>1 when deltaBias is given.</summary>
    public int HasDeltaBias;
    /// <summary>1 when an initial state is given.</summary>
    public int HasInitialState;
}

/// <summary>The inputs of one selective scan, as device views (optional ones point at any buffer when absent).</summary>
public struct SelectiveScanViews
{
    /// <summary>u <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> U;
    /// <summary>delta <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> Delta;
    /// <summary>A <c>[Dc, Nst]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> A;
    /// <summary>B <c>[B, G, Nst, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> B;
    /// <summary>C <c>[B, G, Nst, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> C;
    /// <summary>D <c>[Dc]</c>, read only with HasD.</summary>
    public ArrayView1D<float, Stride1D.Dense> D;
    /// <summary>z <c>[B, Dc, L]</c>, read only with HasZ.</summary>
    public ArrayView1D<float, Stride1D.Dense> Z;
    /// <summary>deltaBias <c>[Dc]</c>, read only with HasDeltaBias.</summary>
    public ArrayView1D<float, Stride1D.Dense> DeltaBias;
    /// <summary>Initial state <c>[B, Dc, Nst]</c>, read only with HasInitialState.</summary>
    public ArrayView1D<float, Stride1D.Dense> InitialState;
}

/// <summary>What the selective-scan forward writes.</summary>
public struct SelectiveScanForwardViews
{
    /// <summary>out <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> Output;
    /// <summary>y + D u before the gate <c>[B, Dc, L]</c>, written only with HasZ (the backward's dz needs it).</summary>
    public ArrayView1D<float, Stride1D.Dense> PreGate;
    /// <summary>h_{L-1} <c>[B, Dc, Nst]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> LastState;
    /// <summary>The state entering each chunk <c>[B, Dc, Chunks, Nst]</c>, for the backward.</summary>
    public ArrayView1D<float, Stride1D.Dense> ChunkStates;
}

/// <summary>What the selective-scan backward kernel reads from the forward and writes.</summary>
public struct SelectiveScanBackwardViews
{
    /// <summary>dL/dout <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> DOut;
    /// <summary>The forward's pre-gate y <c>[B, Dc, L]</c>, read only with HasZ.</summary>
    public ArrayView1D<float, Stride1D.Dense> PreGate;
    /// <summary>The forward's chunk states <c>[B, Dc, Chunks, Nst]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> ChunkStates;
    /// <summary>du <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> DU;
    /// <summary>ddelta <c>[B, Dc, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> DDelta;
    /// <summary>dz <c>[B, Dc, L]</c>, written only with HasZ.</summary>
    public ArrayView1D<float, Stride1D.Dense> DZ;
    /// <summary>dB partials <c>[B, Dc, Nst, L]</c> or dB <c>[B, G, Nst, L]</c> (see <see cref="IGradientSink"/>).</summary>
    public ArrayView1D<float, Stride1D.Dense> DBTarget;
    /// <summary>dC partials <c>[B, Dc, Nst, L]</c> or dC <c>[B, G, Nst, L]</c>.</summary>
    public ArrayView1D<float, Stride1D.Dense> DCTarget;
    /// <summary>Per-row sums over time <c>[B, Dc, Nst + 2]</c>: dA (Nst), dD, ddeltaBias; summed over B afterwards.</summary>
    public ArrayView1D<float, Stride1D.Dense> RowPartials;
    /// <summary>dL/dh0 <c>[B, Dc, Nst]</c>, written only with HasInitialState.</summary>
    public ArrayView1D<float, Stride1D.Dense> DInitialState;
}
