// RG-LRU gate (Griffin, De et al. 2024): the content-based decay and gated input that feed LinearRecurrence.
// Shapes: B batch, T steps, C channels; gr, gi, x, dgr, dgi, dx [B, T, C] (token-major, as a linear layer writes them);
// lambda, dlambda [C]; a, gx, da, dgx [B, C, T] (channel-major, what LinearRecurrence takes); terms [B T, C].
//
//   r = sigmoid(gr), i = sigmoid(gi), sp = softplus(lambda), log a = -c sp r, a = exp(log a),
//   m = sqrt(1 - a^2) = sqrt(-expm1(2 log a)), gx = m i x.
//   Backward: dlog a = a da - dgx i x a^2 / m; dgr = dlog a (-c sp) r (1 - r); dgi = dgx m x i (1 - i);
//   dx = dgx m i; dlambda = sum over b, t of dlog a (-c r) sigmoid(lambda).
//
// 1 - a^2 is clamped below at MinOneMinusASquared (1e-30, a normal float): it is 0 only where c sp r underflows to 0
// (lambda below about -103, or gr below about -88), where a = 1 exactly and d m / d log a is infinite; the clamp keeps
// m >= 1e-15 and the backward finite there (a^2 / m <= 1e15).
//
// Versions:
//   1  (2026-12-03) Forward and Backward: one thread per [B, T, C] element, so the reads of the three inputs are
//      coalesced and the writes of the channel-major outputs are strided by T. The backward writes each element's
//      dlambda term to terms [B T, C]; LinearKernels.ColumnSums then sums each channel in t order (deterministic, no
//      atomics). Not yet timed on a GPU; a tiled variant through shared memory (as PermuteKernels.Transpose32) would
//      coalesce the channel-major side too.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Sizes and the brake of one RG-LRU gate launch.</summary>
public struct RgLruGateShape
{
    /// <summary>T, time steps.</summary>
    public int Steps;
    /// <summary>C, channels.</summary>
    public int Channels;
    /// <summary>c, the brake (&gt; 0).</summary>
    public float Brake;
}

/// <summary>Device code of the RG-LRU gate, and its scalar maths shared with the Managed backend's tails.</summary>
public static class RgLruGateKernels
{
    /// <summary>The floor of 1 - a^2 (see the file header).</summary>
    public const float MinOneMinusASquared = 1e-30f;

    /// <summary>sigmoid(v) and sigmoid(v)(1 - sigmoid(v)), from e = exp(-|v|): no overflow, no cancellation.</summary>
    public static float Sigmoid(float v, out float slope)
    {
        var e = XMath.Exp(-IntrinsicMath.Abs(v));
        var r = 1f / (1f + e);
        slope = e * r * r;
        return v >= 0f ? r : e * r;
    }

    /// <summary>log(1 + u) for u &gt;= 0, accurate for tiny u (Goldberg: log(w) u / (w - 1), w = 1 + u rounded).</summary>
    public static float Log1P(float u)
    {
        var w = 1f + u;
        return w == 1f ? u : XMath.Log(w) * u / (w - 1f);
    }

    /// <summary>softplus(l) = max(l, 0) + log1p(exp(-|l|)), finite for every finite l.</summary>
    public static float Softplus(float l) => IntrinsicMath.Max(l, 0f) + Log1P(XMath.Exp(-IntrinsicMath.Abs(l)));

    /// <summary>exp(z) - 1 for z &lt;= 0, accurate near 0 (Kahan: (u - 1) z / log u, u = exp(z) rounded).</summary>
    public static float ExpM1(float z)
    {
        var u = XMath.Exp(z);
        if (z <= -1f) return u - 1f;
        return u == 1f ? z : (u - 1f) * z / XMath.Log(u);
    }

    /// <summary>m = sqrt(max(1 - a^2, MinOneMinusASquared)) from log a.</summary>
    public static float Gain(float logA) =>
        XMath.Sqrt(IntrinsicMath.Max(-ExpM1(2f * logA), MinOneMinusASquared));

    // Element i of a token-major [B, T, C] tensor: its channel c and its index in the channel-major [B, C, T] outputs.
    private static long ChannelMajor(long i, RgLruGateShape shape, out int c)
    {
        c = (int)(i % shape.Channels);
        var bt = i / shape.Channels;
        return (bt / shape.Steps * shape.Channels + c) * shape.Steps + bt % shape.Steps;
    }

    /// <summary>Forward: one thread per element of gr [B, T, C]; a and gx are written at [b, c, t].</summary>
    public static void Forward(
        Index1D index,
        ArrayView1D<float, Stride1D.Dense> gr,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> gi,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> x,      // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> lambda, // [C]
        ArrayView1D<float, Stride1D.Dense> a,      // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> gx,     // [B, C, T]
        RgLruGateShape shape)
    {
        long i = index;
        var o = ChannelMajor(i, shape, out var c);
        var r = Sigmoid(gr[i], out _);
        var ig = Sigmoid(gi[i], out _);
        var logA = -shape.Brake * Softplus(lambda[c]) * r;
        a[o] = XMath.Exp(logA);
        gx[o] = Gain(logA) * ig * x[i];
    }

    /// <summary>
    /// Backward: one thread per element of gr [B, T, C]; writes dgr, dgi, dx there and the element's dlambda term to
    /// terms [B T, C], which LinearKernels.ColumnSums reduces to dlambda.
    /// </summary>
    public static void Backward(
        Index1D index,
        ArrayView1D<float, Stride1D.Dense> da,     // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> dgx,    // [B, C, T]
        ArrayView1D<float, Stride1D.Dense> gr,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> gi,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> x,      // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> lambda, // [C]
        ArrayView1D<float, Stride1D.Dense> dgr,    // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> dgi,    // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> dx,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> terms,  // [B T, C]
        RgLruGateShape shape)
    {
        long i = index;
        var o = ChannelMajor(i, shape, out var c);
        var l = lambda[c];
        var r = Sigmoid(gr[i], out var rSlope);
        var ig = Sigmoid(gi[i], out var iSlope);
        var sigmoidL = Sigmoid(l, out _);
        var negCsp = -shape.Brake * Softplus(l);
        var logA = negCsp * r;
        var av = XMath.Exp(logA);
        var m = Gain(logA);
        var g = dgx[o];
        var xv = x[i];
        var dLogA = av * da[o] - g * ig * xv * (av * av) / m;
        dgr[i] = dLogA * negCsp * rSlope;
        dgi[i] = g * m * xv * iSlope;
        dx[i] = g * m * ig;
        terms[i] = dLogA * (-shape.Brake * r) * sigmoidL;
    }
}
