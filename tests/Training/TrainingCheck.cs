using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>Helpers of the training-op tests: inputs, and the 2x rule with its floor carried to each output's scale.</summary>
internal static class TrainingCheck
{
    /// <summary>
    /// The 2x rule with the 1e-6 floor scaled by the output's largest |reference| (8 float32 ulps of its scale): an
    /// output of scale 1e-15 (rstd of rows of 1e15) would pass anything under an absolute 1e-6.
    /// </summary>
    /// <remarks>
    /// <paramref name="termScale"/>, when given, is the size of the terms the output was summed from, for outputs that
    /// cancel (RMSNorm's dx at C = 1 is exactly 0 in float64 from terms of rstd w dy): the floor is then 1e-6 of it.
    /// </remarks>
    public static void Assert2x(string what, float[] actual, double[] reference, float[] naive, double termScale = 0)
    {
        var max = termScale;
        foreach (var r in reference)
            if (double.IsFinite(r)) max = Math.Max(max, Math.Abs(r));
        ErrorRule.Assert2x(what, actual, reference, naive, Math.Max(1e-6 * max, double.Epsilon));
    }

    /// <summary>n normal floats times <paramref name="scale"/> plus <paramref name="offset"/>.</summary>
    public static float[] Normal(int n, int seed, float scale = 1f, float offset = 0f) =>
        Array.ConvertAll(TestData.Normal(n, seed, scale), v => v + offset);

    public static double[] D(float[] x) => TestData.ToDouble(x);
}
