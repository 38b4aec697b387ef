using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The float64 reference's gradients against central finite differences of L = sum(dy * y).</summary>
[TestFixture]
public sealed class LinearReferenceTests
{
    [Test]
    public void GradientsMatchFiniteDifferences()
    {
        const int t = 3, i = 4, o = 5;
        const double h = 1e-5;
        var x = TestData.ToDouble(TestData.Normal(t * i, 1));
        var w = TestData.ToDouble(TestData.Normal(o * i, 2));
        var b = TestData.ToDouble(TestData.Normal(o, 3));
        var dy = TestData.ToDouble(TestData.Normal(t * o, 4));
        double Loss() => LinearReference.Forward(x, w, b, t, i, o).Zip(dy, (y, d) => y * d).Sum();
        double Central(double[] p, int k)
        {
            var v = p[k];
            p[k] = v + h;
            var up = Loss();
            p[k] = v - h;
            var down = Loss();
            p[k] = v;
            return (up - down) / (2 * h);
        }
        var g = LinearReference.Backward(dy, x, w, t, i, o);
        foreach (var (param, grad, name) in new[] { (x, g.DX, "dx"), (w, g.DW, "dW"), (b, g.DB, "db") })
            for (var k = 0; k < param.Length; k++)
                Assert.That(grad[k], Is.EqualTo(Central(param, k)).Within(1e-8 * Math.Max(1, Math.Abs(grad[k]))), $"{name}[{k}]");
    }

    /// <summary>Forward and backward on a hand-worked example, so the reference is not only self-consistent.</summary>
    [Test]
    public void ForwardIsTheMatrixProduct()
    {
        // x = [[1, 2]], W = [[3, 4], [5, 6], [7, 8]], b = [1, 0, -1]: y = [12, 17, 22].
        var y = LinearReference.Forward([1.0, 2], [3.0, 4, 5, 6, 7, 8], [1.0, 0, -1], 1, 2, 3);
        Assert.That(y, Is.EqualTo(new[] { 12.0, 17, 22 }));
        var g = LinearReference.Backward([1.0, 0, 2], [1.0, 2], [3.0, 4, 5, 6, 7, 8], 1, 2, 3);
        Assert.That(g.DX, Is.EqualTo(new[] { 17.0, 20 }));          // 1*[3,4] + 2*[7,8]
        Assert.That(g.DW, Is.EqualTo(new[] { 1.0, 2, 0, 0, 2, 4 })); // dy^T x
        Assert.That(g.DB, Is.EqualTo(new[] { 1.0, 0, 2 }));
    }
}
