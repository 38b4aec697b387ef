// The lane types of the Managed scans (selective scan, linear recurrence): a block of channels runs one recurrence per
// lane, 8 lanes of Vector256 where AVX2 (or AVX-512) is there, 4 lanes of Vector128 on SSE and Arm NEON. A scan is
// written once over IScanLanes and specialised per width; so no machine runs an emulated width (Vector256 code on a
// 128-bit machine ran about 30x slower than this, slower than the sequential loop: 2026-12-02, B1 Dc256 L2048).
// The scans stay at 8 lanes on AVX-512 machines: their time goes to the recurrence's latency chain and the float64 exp,
// which already use Vector512 for the eight lanes' float64 values there.
//
// exp and softplus are evaluated in float64 lanes and rounded once to float32 (see AccurateMath), so the decays are
// correctly rounded almost always: a long scan accumulates the decay's rounding, and Vector256.Exp on float lanes is
// off by an ulp for 77% of A dt in [-5e5, -1e-4] (2026-11-28), which broke the 2x rule at L = 4099.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

/// <summary>A float vector width the scans run on, with the scans' float64-accurate functions.</summary>
internal interface IScanLanes<TVector> : ISimdWidth<TVector> where TVector : struct
{
    /// <summary>a / b.</summary>
    static abstract TVector Divide(TVector a, TVector b);

    /// <summary>Lane <paramref name="index"/>.</summary>
    static abstract float GetElement(TVector v, int index);

    /// <summary>exp per lane, evaluated in float64 and rounded once.</summary>
    static abstract TVector ExpAccurate(TVector x);

    /// <summary>log(1 + e^x) per lane with PyTorch's threshold, evaluated in float64 and rounded once.</summary>
    static abstract TVector SoftplusAccurate(TVector x);

    /// <summary>sum_j x_j y_j over the lanes, products and sum in float64, rounded once.</summary>
    static abstract float ChannelSum(TVector x, TVector y);
}

/// <summary>One width of float64 lanes, for <see cref="AccurateMath"/>.</summary>
internal interface IDoubleLanes<TD> where TD : struct
{
    static abstract TD Broadcast(double value);
    static abstract TD Min(TD a, TD b);
    static abstract TD Max(TD a, TD b);
    static abstract TD Round(TD v);
    static abstract TD Add(TD a, TD b);
    static abstract TD Multiply(TD a, TD b);

    /// <summary>a b + c, fused where the hardware has FMA (never the software-emulated fused operation).</summary>
    static abstract TD MultiplyAdd(TD a, TD b, TD c);

    /// <summary>p 2^k for integral k with p 2^k normal: k added to p's exponent bits.</summary>
    static abstract TD TimesPow2(TD p, TD k);

    static abstract TD Log(TD v);
    static abstract TD LessThan(TD a, TD b);
    static abstract TD GreaterThan(TD a, TD b);
    static abstract TD Select(TD mask, TD whenTrue, TD whenFalse);
}

/// <summary>exp and softplus on float64 lanes, once for every width.</summary>
internal static class AccurateMath
{
    private const double ExpHigh = 100, ExpLow = -160;
    private const double Log2E = 1.4426950408889634;
    private const double Ln2High = 0.6931471805599453, Ln2Low = 2.3190468138462996e-17;

    /// <summary>
    /// Cody-Waite reduction x = k ln2 + r, |r| &lt;= ln2/2, Taylor to r^9 (truncation 7e-12 relative, far below float32's
    /// 6e-8 ulp), then 2^k added to the exponent bits. Clamping to [-160, 100] keeps 2^k a normal double; narrowing to
    /// float32 then gives float32's 0, subnormals and infinity exactly where MathF.Exp does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TD Exp<TD, TL>(TD x) where TD : struct where TL : struct, IDoubleLanes<TD>
    {
        x = TL.Max(TL.Min(x, TL.Broadcast(ExpHigh)), TL.Broadcast(ExpLow));
        var k = TL.Round(TL.Multiply(x, TL.Broadcast(Log2E)));
        var r = TL.MultiplyAdd(k, TL.Broadcast(-Ln2High), x);
        r = TL.MultiplyAdd(k, TL.Broadcast(-Ln2Low), r);
        var p = TL.MultiplyAdd(TL.Broadcast(1.0 / 362880), r, TL.Broadcast(1.0 / 40320));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0 / 5040));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0 / 720));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0 / 120));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0 / 24));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0 / 6));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(0.5));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0));
        p = TL.MultiplyAdd(p, r, TL.Broadcast(1.0));
        return TL.TimesPow2(p, k);
    }

    /// <summary>softplus(x) = log(1 + e^x), x itself above 20 (PyTorch's threshold) and e^x below -15 (where 1 + e^x rounds to 1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TD Softplus<TD, TL>(TD x) where TD : struct where TL : struct, IDoubleLanes<TD>
    {
        var e = Exp<TD, TL>(x);
        var mid = TL.Log(TL.Add(TL.Broadcast(1.0), e));
        var result = TL.Select(TL.LessThan(x, TL.Broadcast(-15.0)), e, mid);
        return TL.Select(TL.GreaterThan(x, TL.Broadcast(20.0)), x, result);
    }
}

internal readonly struct Double128 : IDoubleLanes<Vector128<double>>
{
    public static Vector128<double> Broadcast(double value) => Vector128.Create(value);
    public static Vector128<double> Min(Vector128<double> a, Vector128<double> b) => Vector128.Min(a, b);
    public static Vector128<double> Max(Vector128<double> a, Vector128<double> b) => Vector128.Max(a, b);
    public static Vector128<double> Round(Vector128<double> v) => Vector128.Round(v);
    public static Vector128<double> Add(Vector128<double> a, Vector128<double> b) => a + b;
    public static Vector128<double> Multiply(Vector128<double> a, Vector128<double> b) => a * b;
    public static Vector128<double> MultiplyAdd(Vector128<double> a, Vector128<double> b, Vector128<double> c) => Vector128.MultiplyAddEstimate(a, b, c);
    public static Vector128<double> TimesPow2(Vector128<double> p, Vector128<double> k) => (p.AsInt64() + (Vector128.ConvertToInt64(k) << 52)).AsDouble();
    public static Vector128<double> Log(Vector128<double> v) => Vector128.Log(v);
    public static Vector128<double> LessThan(Vector128<double> a, Vector128<double> b) => Vector128.LessThan(a, b);
    public static Vector128<double> GreaterThan(Vector128<double> a, Vector128<double> b) => Vector128.GreaterThan(a, b);
    public static Vector128<double> Select(Vector128<double> mask, Vector128<double> whenTrue, Vector128<double> whenFalse) =>
        Vector128.ConditionalSelect(mask, whenTrue, whenFalse);
}

internal readonly struct Double256 : IDoubleLanes<Vector256<double>>
{
    public static Vector256<double> Broadcast(double value) => Vector256.Create(value);
    public static Vector256<double> Min(Vector256<double> a, Vector256<double> b) => Vector256.Min(a, b);
    public static Vector256<double> Max(Vector256<double> a, Vector256<double> b) => Vector256.Max(a, b);
    public static Vector256<double> Round(Vector256<double> v) => Vector256.Round(v);
    public static Vector256<double> Add(Vector256<double> a, Vector256<double> b) => a + b;
    public static Vector256<double> Multiply(Vector256<double> a, Vector256<double> b) => a * b;
    public static Vector256<double> MultiplyAdd(Vector256<double> a, Vector256<double> b, Vector256<double> c) => Vector256.MultiplyAddEstimate(a, b, c);
    public static Vector256<double> TimesPow2(Vector256<double> p, Vector256<double> k) => (p.AsInt64() + (Vector256.ConvertToInt64(k) << 52)).AsDouble();
    public static Vector256<double> Log(Vector256<double> v) => Vector256.Log(v);
    public static Vector256<double> LessThan(Vector256<double> a, Vector256<double> b) => Vector256.LessThan(a, b);
    public static Vector256<double> GreaterThan(Vector256<double> a, Vector256<double> b) => Vector256.GreaterThan(a, b);
    public static Vector256<double> Select(Vector256<double> mask, Vector256<double> whenTrue, Vector256<double> whenFalse) =>
        Vector256.ConditionalSelect(mask, whenTrue, whenFalse);
}

internal readonly struct Double512 : IDoubleLanes<Vector512<double>>
{
    public static Vector512<double> Broadcast(double value) => Vector512.Create(value);
    public static Vector512<double> Min(Vector512<double> a, Vector512<double> b) => Vector512.Min(a, b);
    public static Vector512<double> Max(Vector512<double> a, Vector512<double> b) => Vector512.Max(a, b);
    public static Vector512<double> Round(Vector512<double> v) => Vector512.Round(v);
    public static Vector512<double> Add(Vector512<double> a, Vector512<double> b) => a + b;
    public static Vector512<double> Multiply(Vector512<double> a, Vector512<double> b) => a * b;
    public static Vector512<double> MultiplyAdd(Vector512<double> a, Vector512<double> b, Vector512<double> c) => Vector512.MultiplyAddEstimate(a, b, c);
    public static Vector512<double> TimesPow2(Vector512<double> p, Vector512<double> k) => (p.AsInt64() + (Vector512.ConvertToInt64(k) << 52)).AsDouble();
    public static Vector512<double> Log(Vector512<double> v) => Vector512.Log(v);
    public static Vector512<double> LessThan(Vector512<double> a, Vector512<double> b) => Vector512.LessThan(a, b);
    public static Vector512<double> GreaterThan(Vector512<double> a, Vector512<double> b) => Vector512.GreaterThan(a, b);
    public static Vector512<double> Select(Vector512<double> mask, Vector512<double> whenTrue, Vector512<double> whenFalse) =>
        Vector512.ConditionalSelect(mask, whenTrue, whenFalse);
}

/// <summary>4 scan lanes on Vector128 (SSE, Arm NEON): float64 math on two Vector128&lt;double&gt;.</summary>
internal readonly partial struct Simd128 : IScanLanes<Vector128<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float GetElement(Vector128<float> v, int index) => v.GetElement(index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ExpAccurate(Vector128<float> x)
    {
        var (lower, upper) = Vector128.Widen(x);
        return Vector128.Narrow(AccurateMath.Exp<Vector128<double>, Double128>(lower), AccurateMath.Exp<Vector128<double>, Double128>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> SoftplusAccurate(Vector128<float> x)
    {
        var (lower, upper) = Vector128.Widen(x);
        return Vector128.Narrow(AccurateMath.Softplus<Vector128<double>, Double128>(lower), AccurateMath.Softplus<Vector128<double>, Double128>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ChannelSum(Vector128<float> x, Vector128<float> y)
    {
        var (xLower, xUpper) = Vector128.Widen(x);
        var (yLower, yUpper) = Vector128.Widen(y);
        return (float)Vector128.Sum(Vector128.MultiplyAddEstimate(xLower, yLower, xUpper * yUpper));
    }
}

/// <summary>8 scan lanes on Vector256 (AVX2, AVX-512): float64 exp on one Vector512&lt;double&gt; where accelerated, else two Vector256&lt;double&gt;.</summary>
internal readonly partial struct Simd256 : IScanLanes<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float GetElement(Vector256<float> v, int index) => v.GetElement(index);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> ExpAccurate(Vector256<float> x)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var e = AccurateMath.Exp<Vector512<double>, Double512>(Vector512.Create(Vector256.WidenLower(x), Vector256.WidenUpper(x)));
            return Vector256.Narrow(e.GetLower(), e.GetUpper());
        }
        var (lower, upper) = Vector256.Widen(x);
        return Vector256.Narrow(AccurateMath.Exp<Vector256<double>, Double256>(lower), AccurateMath.Exp<Vector256<double>, Double256>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> SoftplusAccurate(Vector256<float> x)
    {
        var (lower, upper) = Vector256.Widen(x);
        return Vector256.Narrow(AccurateMath.Softplus<Vector256<double>, Double256>(lower), AccurateMath.Softplus<Vector256<double>, Double256>(upper));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ChannelSum(Vector256<float> x, Vector256<float> y)
    {
        var (xLower, xUpper) = Vector256.Widen(x);
        var (yLower, yUpper) = Vector256.Widen(y);
        return (float)Vector256.Sum(Vector256.MultiplyAddEstimate(xLower, yLower, xUpper * yUpper));
    }
}
