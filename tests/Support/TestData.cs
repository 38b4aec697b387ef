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
}
