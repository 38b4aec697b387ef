// The RG-LRU gate, the executable spec (DESIGN.md section 9; Griffin, De et al. 2024). Generic so the same code gives
// the float64 reference and the naive float32 result of the 2x rule; plain sequential loops, readable first.
// Shapes: B batch, T steps, C channels; gr, gi, x, dgr, dgi, dx [B, T, C]; lambda, dlambda [C]; a, gx, da, dgx [B, C, T].
//
// The formulas are the numerically careful ones the kernels use (softplus as max(l, 0) + log1p(exp(-|l|)),
// 1 - a^2 as -expm1(2 log a), both log1p and expm1 by the rounding-compensated tricks of Goldberg and Kahan, since
// .NET's LogP1 and ExpM1 are log(1 + u) and exp(z) - 1 as written), with the same floor on 1 - a^2.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive RG-LRU gate forward and backward.</summary>
public static class RgLruGateReference
{
    /// <summary>
    /// a = exp(-c softplus(lambda) sigmoid(gr)) and gx = sqrt(1 - a^2) sigmoid(gi) x, both returned as [B, C, T].
    /// </summary>
    public static (T[] A, T[] GatedX) Forward<T>(T[] gr, T[] gi, T[] x, T[] lambda, int batch, int steps, int channels, T brake)
        where T : IFloatingPointIeee754<T>
    {
        T[] a = new T[gr.Length], gx = new T[gr.Length]; // [B, C, T]
        for (var b = 0; b < batch; b++)
        for (var t = 0; t < steps; t++)
        for (var c = 0; c < channels; c++)
        {
            var i = (b * steps + t) * channels + c;
            var o = (b * channels + c) * steps + t;
            var logA = -brake * Softplus(lambda[c]) * Sigmoid(gr[i]);
            a[o] = T.Exp(logA);
            gx[o] = Gain(logA) * Sigmoid(gi[i]) * x[i];
        }
        return (a, gx);
    }

    /// <summary>
    /// Gradients for da, dgx [B, C, T]: dgr, dgi, dx [B, T, C] and dlambda [C] (summed over b, then t, in order).
    /// </summary>
    public static (T[] DGr, T[] DGi, T[] DX, T[] DLambda) Backward<T>(T[] da, T[] dgx, T[] gr, T[] gi, T[] x, T[] lambda,
        int batch, int steps, int channels, T brake) where T : IFloatingPointIeee754<T>
    {
        T[] dgr = new T[gr.Length], dgi = new T[gr.Length], dx = new T[gr.Length]; // [B, T, C]
        var dlambda = new T[channels];
        for (var b = 0; b < batch; b++)
        for (var t = 0; t < steps; t++)
        for (var c = 0; c < channels; c++)
        {
            var i = (b * steps + t) * channels + c;
            var o = (b * channels + c) * steps + t;
            var r = Sigmoid(gr[i]);
            var ig = Sigmoid(gi[i]);
            var sp = Softplus(lambda[c]);
            var logA = -brake * sp * r;
            var a = T.Exp(logA);
            var m = Gain(logA);
            var dLogA = a * da[o] - dgx[o] * ig * x[i] * (a * a) / m;
            dgr[i] = dLogA * (-brake * sp) * (r * (T.One - r));
            dgi[i] = dgx[o] * m * x[i] * (ig * (T.One - ig));
            dx[i] = dgx[o] * m * ig;
            dlambda[c] += dLogA * (-brake * r) * Sigmoid(lambda[c]);
        }
        return (dgr, dgi, dx, dlambda);
    }

    /// <summary>sigmoid(v), written so that neither side overflows.</summary>
    public static T Sigmoid<T>(T v) where T : IFloatingPointIeee754<T>
    {
        var e = T.Exp(-T.Abs(v));
        return v >= T.Zero ? T.One / (T.One + e) : e / (T.One + e);
    }

    /// <summary>softplus(l) = max(l, 0) + log1p(exp(-|l|)).</summary>
    public static T Softplus<T>(T l) where T : IFloatingPointIeee754<T> => T.Max(l, T.Zero) + Log1P(T.Exp(-T.Abs(l)));

    /// <summary>sqrt(max(-expm1(2 log a), 1e-30)), the input gain m = sqrt(1 - a^2) with the kernels' floor.</summary>
    public static T Gain<T>(T logA) where T : IFloatingPointIeee754<T> =>
        T.Sqrt(T.Max(-ExpM1(T.CreateChecked(2) * logA), T.CreateChecked(1e-30)));

    private static T Log1P<T>(T u) where T : IFloatingPointIeee754<T>
    {
        var w = T.One + u;
        return w == T.One ? u : T.Log(w) * u / (w - T.One);
    }

    private static T ExpM1<T>(T z) where T : IFloatingPointIeee754<T>
    {
        var u = T.Exp(z);
        if (z <= -T.One) return u - T.One;
        return u == T.One ? z : (u - T.One) * z / T.Log(u);
    }
}
