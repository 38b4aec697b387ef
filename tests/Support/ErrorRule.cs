using NUnit.Framework;

namespace RouteKit.Tests.Support;

/// <summary>
/// FlashAttention's acceptance rule (DESIGN.md section 7): <c>maxErr(backend) &lt;= 2 maxErr(naive float32) + 1e-6</c>,
/// both against the float64 reference. Non-finite reference entries (masked rows' -inf Lse) must be matched exactly.
/// </summary>
public static class ErrorRule
{
    /// <summary>Largest |a - ref| over entries whose reference is finite.</summary>
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

    /// <summary>Asserts the 2x rule and that non-finite references are reproduced exactly.</summary>
    public static void Assert2x(string what, float[] actual, double[] reference, float[] naive, double atol = 1e-6)
    {
        Assert.That(actual, Has.Length.EqualTo(reference.Length), $"{what}: length");
        for (var i = 0; i < reference.Length; i++)
        {
            if (double.IsFinite(reference[i])) continue;
            if (!actual[i].Equals((float)reference[i]))
                Assert.Fail($"{what}[{i}]: reference is {reference[i]}, backend gave {actual[i]}.");
        }
        var err = MaxError(actual, reference);
        var naiveErr = MaxError(naive, reference);
        var bound = 2 * naiveErr + atol;
        if (err > bound)
        {
            var worst = 0;
            for (var i = 0; i < reference.Length; i++)
                if (double.IsFinite(reference[i]) && Math.Abs(actual[i] - reference[i]) >= err) { worst = i; break; }
            Assert.Fail($"{what}: maxErr {err:E3} > 2 x naive-float32 maxErr {naiveErr:E3} + {atol:E0} = {bound:E3}; " +
                        $"worst at [{worst}]: backend {actual[worst]}, reference {reference[worst]}, naive {naive[worst]}.");
        }
    }
}
