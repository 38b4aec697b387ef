using NUnit.Framework;

namespace RouteKit.Tests.Support;

/// <summary>What one error-rule check found: whether it passed, and a message that says why (empty on a pass).</summary>
public sealed record ErrorVerdict(bool Passed, string Message, double Error, double Bound)
{
    internal static ErrorVerdict Pass(double error, double bound) => new(true, "", error, bound);
    internal static ErrorVerdict Fail(string message, double error = double.NaN, double bound = double.NaN) => new(false, message, error, bound);
}

/// <summary>
/// FlashAttention's acceptance rule (DESIGN.md section 7): <c>maxErr(backend) &lt;= 2 maxErr(naive float32) + 1e-6</c>,
/// both against the float64 reference. Non-finite reference entries (masked rows' -inf Lse) must be matched exactly.
/// The naive float32 error sets the bound, so it must itself be finite: a naive reference that overflows to inf or
/// NaN where float64 is finite would make the bound infinite and pass anything. Such a check fails; a caller whose
/// inputs push float32 past its range must say so, either with <c>expectOverflow</c> (the float64 answer itself does
/// not fit in float32, so the backend must give that infinity) or by comparing with <see cref="CheckRelative"/>.
/// The checks are pure functions returning an <see cref="ErrorVerdict"/>; the Assert methods are thin wrappers.
/// </summary>
public static class ErrorRule
{
    /// <summary>Largest |a - ref| over entries whose reference is finite (infinity when any such a is NaN).</summary>
    public static double MaxError(ReadOnlySpan<float> actual, ReadOnlySpan<double> reference)
    {
        var max = 0.0;
        for (var i = 0; i < reference.Length; i++)
        {
            if (!double.IsFinite(reference[i])) continue;
            var e = Math.Abs(actual[i] - reference[i]);
            if (double.IsNaN(e)) return double.PositiveInfinity;
            max = Math.Max(max, e);
        }
        return max;
    }

    /// <summary>
    /// The 2x rule. With <paramref name="expectOverflow"/> the case declares that some float64 answers exceed float32's
    /// range: there the backend must give the infinity float32 rounds them to, and those entries leave both error
    /// maxima. Without it, or anywhere the float64 answer fits float32, a non-finite naive error fails the check.
    /// </summary>
    public static ErrorVerdict Check2x(string what, float[] actual, double[] reference, float[] naive, double atol = 1e-6,
        bool expectOverflow = false)
    {
        if (actual.Length != reference.Length || naive.Length != reference.Length)
            return ErrorVerdict.Fail($"{what}: lengths differ: backend {actual.Length}, reference {reference.Length}, naive {naive.Length}.");
        if (Unrepresentable(what, actual, reference, expectOverflow) is { } refused) return refused;

        var err = 0.0;
        var naiveErr = 0.0;
        int worst = -1, naiveWorst = -1;
        for (var i = 0; i < reference.Length; i++)
        {
            if (!Comparable(reference[i], expectOverflow)) continue;
            var e = Distance(actual[i], reference[i]);
            if (worst < 0 || e > err) (err, worst) = (e, i);
            var ne = Distance(naive[i], reference[i]);
            if (naiveWorst < 0 || ne > naiveErr) (naiveErr, naiveWorst) = (ne, i);
        }
        if (!double.IsFinite(naiveErr))
            return ErrorVerdict.Fail(
                $"{what}: the naive float32 reference is unusable: at [{naiveWorst}] it gave {naive[naiveWorst]} where float64 gives " +
                $"{reference[naiveWorst]:R}, so the 2x bound would be infinite and pass anything. Use a relative tolerance against " +
                $"float64 (ErrorRule.CheckRelative){(expectOverflow ? "" : ", or expectOverflow when the float64 answer itself exceeds float32")}.",
                err, double.PositiveInfinity);
        var bound = 2 * naiveErr + atol;
        if (err <= bound) return ErrorVerdict.Pass(err, bound);
        return ErrorVerdict.Fail(
            $"{what}: maxErr {err:E3} > 2 x naive-float32 maxErr {naiveErr:E3} + {atol:E0} = {bound:E3} ({err / Math.Max(naiveErr, double.Epsilon):G3}x naive); " +
            $"worst at [{worst}]: backend {actual[worst]}, reference {reference[worst]:R}, naive {naive[worst]}.", err, bound);
    }

    /// <summary>
    /// Relative tolerance against float64, for cases whose naive float32 reference overflows though float64 does not:
    /// every entry within <c>rtol |ref| + atol</c>; entries whose float64 value exceeds float32's range must be the
    /// infinity it rounds to; non-finite references matched exactly.
    /// </summary>
    public static ErrorVerdict CheckRelative(string what, float[] actual, double[] reference, double rtol, double atol = 0)
    {
        if (actual.Length != reference.Length)
            return ErrorVerdict.Fail($"{what}: lengths differ: backend {actual.Length}, reference {reference.Length}.");
        if (Unrepresentable(what, actual, reference, expectOverflow: true) is { } refused) return refused;
        var worstRatio = 0.0;
        var worst = -1;
        for (var i = 0; i < reference.Length; i++)
        {
            if (!Comparable(reference[i], expectOverflow: true)) continue;
            var allowed = rtol * Math.Abs(reference[i]) + atol;
            var e = Distance(actual[i], reference[i]);
            var ratio = e <= allowed ? 0 : allowed > 0 ? e / allowed : double.PositiveInfinity;
            if (double.IsNaN(ratio)) ratio = double.PositiveInfinity;
            if (ratio > worstRatio) (worstRatio, worst) = (ratio, i);
        }
        if (worst < 0) return ErrorVerdict.Pass(0, rtol);
        var relErr = Distance(actual[worst], reference[worst]) / Math.Abs(reference[worst]);
        return ErrorVerdict.Fail(
            $"{what}: relative error {relErr:E3} > rtol {rtol:E1} (+ atol {atol:E0}) at [{worst}]: backend {actual[worst]}, " +
            $"reference {reference[worst]:R}.", relErr, rtol);
    }

    /// <summary>
    /// The 2x rule's 1e-6 floor carried to an output's own scale: <c>floor max(1, max |ref|)</c>. The floor is ~8 float32
    /// ulps of an O(1) output; an output of magnitude 2e3 (an Lse at 1e3-scale logits) has ulps of 2.4e-4, so there an
    /// unscaled floor fails a backend one ulp from the float64 answer whenever the few-entry naive result happens to
    /// round correctly. Scaling keeps the rule's meaning (8 ulps of the output's scale) at every magnitude.
    /// </summary>
    public static double ScaledFloor(double[] reference, double floor = 1e-6)
    {
        var max = 1.0;
        foreach (var r in reference)
            if (double.IsFinite(r)) max = Math.Max(max, Math.Abs(r));
        return floor * max;
    }

    /// <summary>
    /// Of several naive float32 results for the same reference (the plain one and runs on inputs moved by an ulp,
    /// <see cref="TestData.PerturbUlp"/>), the one with the largest error (a non-finite error counts as largest, so
    /// the guard of <see cref="Check2x"/> still sees it). One naive run is one sample of float32 rounding: where an
    /// output is ill-conditioned (a gradient projected out of a radial component 1e7 times its size, a sum whose terms
    /// cancel, logits of 1e3 in a near one-hot row) every float32 computation is off by a few ulps of the intermediate
    /// and the plain naive run can land near the answer by luck, 5-15x closer than an equally accurate backend
    /// (2026-12-02: Managed and IlgpuCpu dK at 6.3x and 4.7x a naive run whose error was 0.3 of one rounding quantum).
    /// The worst of a few samples is the error a backward-stable float32 implementation is entitled to. A defect that
    /// is not rounding, such as a misrounded statistic in a one-hot row (the naive P stays exactly 1 under any input
    /// perturbation), stays far outside the bound.
    /// </summary>
    public static float[] WorstNaive(double[] reference, params float[][] naives)
    {
        var worst = naives[0];
        var worstErr = MaxError(worst, reference);
        foreach (var n in naives.Skip(1))
        {
            var e = MaxError(n, reference);
            if (!(e > worstErr)) continue;
            (worst, worstErr) = (n, e);
        }
        return worst;
    }

    /// <summary>
    /// The 2x rule against <paramref name="naive"/>; when that fails and <paramref name="resample"/> is given, again
    /// against the worst of <paramref name="naive"/> and the naive runs it returns on ulp-perturbed inputs
    /// (<see cref="WorstNaive"/>). The resampling is lazy because a naive reference can cost as much as the whole
    /// check: most outputs pass against the first run.
    /// </summary>
    public static ErrorVerdict Check2xResampled(string what, float[] actual, double[] reference, float[] naive, double atol,
        Func<IEnumerable<float[]>>? resample)
    {
        var verdict = Check2x(what, actual, reference, naive, atol);
        if (verdict.Passed || resample is null) return verdict;
        float[][] runs = [naive, .. resample()];
        return Check2x($"{what} (worst of {runs.Length} naive float32 runs, inputs moved by an ulp)", actual, reference,
            WorstNaive(reference, runs), atol);
    }

    /// <summary>Asserts the 2x rule (see <see cref="Check2x"/>).</summary>
    public static void Assert2x(string what, float[] actual, double[] reference, float[] naive, double atol = 1e-6,
        bool expectOverflow = false)
    {
        var verdict = Check2x(what, actual, reference, naive, atol, expectOverflow);
        if (!verdict.Passed) Assert.Fail(verdict.Message);
    }

    /// <summary>Asserts a relative tolerance against float64 (see <see cref="CheckRelative"/>).</summary>
    public static void AssertRelative(string what, float[] actual, double[] reference, double rtol, double atol = 0)
    {
        var verdict = CheckRelative(what, actual, reference, rtol, atol);
        if (!verdict.Passed) Assert.Fail(verdict.Message);
    }

    // Non-finite references (and, when overflow is expected, finite ones beyond float32's range) must be reproduced
    // exactly as float32 rounds them; returns the failing verdict, or null.
    private static ErrorVerdict? Unrepresentable(string what, float[] actual, double[] reference, bool expectOverflow)
    {
        for (var i = 0; i < reference.Length; i++)
        {
            if (Comparable(reference[i], expectOverflow)) continue;
            if (!actual[i].Equals((float)reference[i]))
                return ErrorVerdict.Fail($"{what}[{i}]: reference is {reference[i]:R}{(double.IsFinite(reference[i]) ? " (beyond float32)" : "")}, " +
                                         $"backend gave {actual[i]}.");
        }
        return null;
    }

    private static bool Comparable(double reference, bool expectOverflow) =>
        double.IsFinite(reference) && (!expectOverflow || float.IsFinite((float)reference));

    private static double Distance(float value, double reference)
    {
        var e = Math.Abs(value - reference);
        return double.IsNaN(e) ? double.PositiveInfinity : e;
    }
}
