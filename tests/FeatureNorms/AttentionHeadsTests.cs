using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>Per-head aggregation of attention diagnostics, on hand-built inputs.</summary>
public sealed class AttentionHeadsTests
{
    [Test]
    public void VisibleKeysFollowTheMasks()
    {
        var p = AttentionParams.Resolve([1, 1, 4, 8], [1, 1, 6, 8], [1, 1, 6, 8], new AttentionOptions { Causal = true, Window = 1 });
        // Offset M - N = 2: i' = 2..5; causal keeps j <= i', window keeps j >= i' - 1.
        Assert.That(Enumerable.Range(0, 4).Select(i => Collapse.VisibleKeys(p, i)), Is.EqualTo(new[] { 2, 2, 2, 2 }));
        var q = AttentionParams.Resolve([1, 1, 5, 8], [1, 1, 2, 8], [1, 1, 2, 8], new AttentionOptions { Causal = true });
        Assert.That(Enumerable.Range(0, 5).Select(i => Collapse.VisibleKeys(q, i)), Is.EqualTo(new[] { 0, 0, 0, 1, 2 }));
    }

    [Test]
    public void MeansSkipRowsThatSeeNothingAndNormaliseEntropy()
    {
        using var device = Device.Create(Backend.Managed);
        var p = AttentionParams.Resolve([1, 2, 5, 4], [1, 1, 2, 4], [1, 1, 2, 4], new AttentionOptions { Causal = true, Diagnostics = true });
        // Rows 0..2 see no key, row 3 sees one, row 4 sees two.
        float[] entropy = [9, 9, 9, 0, (float)Math.Log(2), 9, 9, 9, 0, 0.5f * (float)Math.Log(2)];
        float[] sink = [9, 9, 9, 1, 0.5f, 9, 9, 9, 1, 0.25f];
        float[] maxProb = [9, 9, 9, 1, 0.5f, 9, 9, 9, 1, 0.75f];
        using var diag = new AttentionDiagnostics(device.FromArray(entropy, 1, 2, 5), device.FromArray(sink, 1, 2, 5), device.FromArray(maxProb, 1, 2, 5));
        var heads = Collapse.AttentionHeads(diag, p);
        Assert.That(heads[0], Is.EqualTo(new HeadRouting(0, 0.75, 1.0, 0.75, 2)).Using<HeadRouting>(Close));
        Assert.That(heads[1], Is.EqualTo(new HeadRouting(1, 0.625, 0.5, 0.875, 2)).Using<HeadRouting>(Close));
        using var wrong = new AttentionDiagnostics(device.Zeros(1, 2, 4), device.Zeros(1, 2, 5), device.Zeros(1, 2, 5));
        Assert.Throws<ArgumentException>(() => Collapse.AttentionHeads(wrong, p));
    }

    private static bool Close(HeadRouting a, HeadRouting b) =>
        a.Head == b.Head && a.Rows == b.Rows && Math.Abs(a.MeanSinkMass - b.MeanSinkMass) < 1e-6 &&
        Math.Abs(a.MeanNormalizedEntropy - b.MeanNormalizedEntropy) < 1e-6 && Math.Abs(a.MeanMaxProb - b.MeanMaxProb) < 1e-6;
}
