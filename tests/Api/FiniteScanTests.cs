using NUnit.Framework;

namespace RouteKit.Tests.Api;

/// <summary>The Managed NaN/Inf scan finds every non-finite value at every position (vector body, tail, parallel
/// chunks) and never flags a finite one (float.MaxValue, subnormals, -0).</summary>
public sealed class FiniteScanTests
{
    [Test]
    public void FindsEveryNonFiniteValueAnywhere()
    {
        foreach (var n in new[] { 1, 7, 15, 16, 17, 63, 64, 65, 129, 1000, (1 << 18) + 37, (1 << 20) + 5 })
        {
            var data = new float[n];
            for (var i = 0; i < n; i++) data[i] = i % 3 == 0 ? float.MaxValue : i % 3 == 1 ? -float.Epsilon : -0f;
            Assert.That(FiniteScan.AllFinite(data), Is.True, $"n {n}: all finite");
            var positions = n < 2000 ? Enumerable.Range(0, n) : new[] { 0, 1, n / 3, (1 << 16) - 1, 1 << 16, n - 2, n - 1 };
            foreach (var at in positions)
                foreach (var bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                {
                    var keep = data[at];
                    data[at] = bad;
                    Assert.That(FiniteScan.AllFinite(data), Is.False, $"n {n}: {bad} at {at}");
                    data[at] = keep;
                }
        }
    }

    [Test]
    public void OpsStillNameTheFirstBadElement()
    {
        using var device = Device.Create(Backend.Managed);
        var data = Enumerable.Range(0, 300_001).Select(i => (float)i).ToArray();
        data[299_999] = float.NegativeInfinity;
        data[123_457] = float.NaN;
        using var x = device.FromArray(data, data.Length);
        Assert.That(() => Relu.Forward(x), Throws.ArgumentException.With.Message.Contains("NaN at flat index 123457"));
    }
}
