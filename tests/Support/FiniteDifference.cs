using NUnit.Framework;

namespace RouteKit.Tests.Support;

/// <summary>Central finite differences of float64 reference losses, shared by the reference-gradient tests.</summary>
internal static class FiniteDifference
{
    /// <summary>The step the reference tests use (float64 losses of O(1) values).</summary>
    public const double H = 1e-5;

    /// <summary>Central difference of loss() in every entry of p, which loss() reads; p is restored.</summary>
    public static double[] Numeric(double[] p, Func<double> loss, double h = H)
    {
        var g = new double[p.Length];
        for (var i = 0; i < p.Length; i++)
        {
            var keep = p[i];
            p[i] = keep + h;
            var plus = loss();
            p[i] = keep - h;
            var minus = loss();
            p[i] = keep;
            g[i] = (plus - minus) / (2 * h);
        }
        return g;
    }

    /// <summary>Every analytic entry within 1e-6 (1 + |numeric|) of the numeric one.</summary>
    public static void AssertClose(string what, double[] analytic, double[] numeric)
    {
        for (var i = 0; i < analytic.Length; i++)
            Assert.That(analytic[i], Is.EqualTo(numeric[i]).Within(1e-6 * (1 + Math.Abs(numeric[i]))), $"{what}[{i}]");
    }
}
