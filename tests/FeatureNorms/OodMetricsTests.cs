using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>AUROC and FPR@95TPR against hand-worked cases and brute-force O(n^2) counts.</summary>
public sealed class OodMetricsTests
{
    [Test]
    public void HandWorkedCasesWithTies()
    {
        // ID {3, 2, 2}, OOD {2, 1}: pairs (3>2, 3>1, 2=2, 2>1, 2=2, 2>1) = (1+1+0.5+1+0.5+1)/6 = 5/6.
        double[] s = [3, 2, 2, 2, 1];
        bool[] id = [true, true, true, false, false];
        Assert.That(OodMetrics.Auroc(s, id), Is.EqualTo(5.0 / 6).Within(1e-15));
        // Keeping 95% of 3 ID samples needs all 3: threshold 2, which also admits the OOD 2: FPR 1/2.
        Assert.That(OodMetrics.FprAtTpr(s, id), Is.EqualTo(0.5));
        Assert.That(OodMetrics.Auroc([1, 1, 1, 1], [true, false, true, false]), Is.EqualTo(0.5), "all tied");
        Assert.That(OodMetrics.Auroc([0, 1], [false, true]), Is.EqualTo(1.0));
        Assert.That(OodMetrics.Auroc([0, 1], [true, false]), Is.EqualTo(0.0));
    }

    [Test]
    public void TwentyInDistributionSamplesNeedNineteen()
    {
        // 0.95 * 20 is 19.000000000000004 in binary floating point; the threshold must be the 19th largest, not the 20th.
        var scores = Enumerable.Range(1, 20).Select(i => (double)i).Concat([1.5, 0.5]).ToArray();
        var id = Enumerable.Repeat(true, 20).Concat([false, false]).ToArray();
        Assert.That(OodMetrics.FprAtTpr(scores, id), Is.EqualTo(0.0), "threshold 2 keeps 19 of 20 and admits no OOD");
    }

    [Test]
    public void MatchesBruteForceOnRandomScoresWithTies([Values(1, 2, 3, 4, 5)] int seed)
    {
        var rng = new Random(seed);
        var n = 50 + seed * 37;
        var id = Enumerable.Range(0, n).Select(_ => rng.NextDouble() < 0.6).ToArray();
        if (id.All(b => b) || id.All(b => !b)) id[0] = !id[0];
        var scores = id.Select(b => Math.Round(rng.NextDouble() * 10 + (b ? 1.5 : 0), 0)).ToArray(); // coarse: many ties
        double wins = 0;
        int pos = id.Count(b => b), neg = n - pos;
        for (var i = 0; i < n; i++)
        for (var j = 0; j < n; j++)
            if (id[i] && !id[j]) wins += scores[i] > scores[j] ? 1 : scores[i] == scores[j] ? 0.5 : 0;
        Assert.That(OodMetrics.Auroc(scores, id), Is.EqualTo(wins / (pos * (double)neg)).Within(1e-12));

        var best = double.NegativeInfinity;
        foreach (var t in scores.Distinct())
        {
            var tpr = Enumerable.Range(0, n).Count(i => id[i] && scores[i] >= t) / (double)pos;
            if (tpr >= 0.95 - 1e-12) best = Math.Max(best, t);
        }
        var fpr = Enumerable.Range(0, n).Count(i => !id[i] && scores[i] >= best) / (double)neg;
        Assert.That(OodMetrics.FprAtTpr(scores, id), Is.EqualTo(fpr));
    }

    [Test]
    public void BadInputIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => OodMetrics.Auroc([1, 2, 3], [true, false]))!;
        Assert.That(e.Message, Does.Contain("3").And.Contain("2"));
        Assert.Throws<ArgumentException>(() => OodMetrics.Auroc([], []));
        e = Assert.Throws<ArgumentException>(() => OodMetrics.Auroc([1, 2], [true, true]))!;
        Assert.That(e.Message, Does.Contain("one class"));
        e = Assert.Throws<ArgumentException>(() => OodMetrics.FprAtTpr([1, double.NaN], [true, false]))!;
        Assert.That(e.Message, Does.Contain("scores[1]"));
        Assert.Throws<ArgumentOutOfRangeException>(() => OodMetrics.FprAtTpr([1, 2], [true, false], 1.5));
    }
}
