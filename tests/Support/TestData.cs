namespace RouteKit.Tests.Support;

/// <summary>Seeded test inputs: the same seed gives the same tensors on every machine.</summary>
public static class TestData
{
    /// <summary>n standard-normal floats (Box-Muller over a seeded <see cref="Random"/>), times <paramref name="scale"/>.</summary>
    public static float[] Normal(int n, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (var i = 0; i < n; i++)
        {
            var u1 = 1.0 - rng.NextDouble();
            var u2 = rng.NextDouble();
            x[i] = (float)(scale * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    /// <summary>Widens to float64 exactly.</summary>
    public static double[] ToDouble(float[] x) => Array.ConvertAll(x, v => (double)v);

    /// <summary>
    /// x with every entry multiplied by (1 + u 2^-23), u uniform in [-1, 1], then rounded to float32: inputs moved by
    /// about one ulp, the uncertainty float32 data already carries. A naive float32 reference run on such inputs is
    /// another sample of the error a float32 implementation is entitled to (see <see cref="ErrorRule.WorstNaive"/>).
    /// </summary>
    public static float[] PerturbUlp(float[] x, int seed)
    {
        var rng = new Random(seed);
        var y = new float[x.Length];
        for (var i = 0; i < x.Length; i++)
            y[i] = (float)(x[i] * (1.0 + (2.0 * rng.NextDouble() - 1.0) * Math.Pow(2, -23)));
        return y;
    }

    /// <summary><see cref="PerturbUlp"/> of an optional array.</summary>
    public static float[]? PerturbUlpOrNull(float[]? x, int seed) => x is null ? null : PerturbUlp(x, seed);
}
