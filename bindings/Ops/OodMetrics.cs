// Out-of-distribution detection metrics (DESIGN.md section 4): in-distribution samples are the positives and a higher
// score means "more in-distribution" (as a feature norm or NAN is used). Host-side, exact, O(n log n).
namespace RouteKit;

/// <summary>AUROC and FPR at a fixed TPR, exact, with ties handled as the definitions below state.</summary>
public static class OodMetrics
{
    /// <summary>
    /// Area under the ROC curve: the probability that a random in-distribution sample scores above a random OOD sample,
    /// ties counting one half (the Mann-Whitney U statistic with average ranks).
    /// </summary>
    /// <param name="scores">One score per sample.</param>
    /// <param name="inDistribution">True for in-distribution (positive) samples.</param>
    public static double Auroc(ReadOnlySpan<double> scores, ReadOnlySpan<bool> inDistribution)
    {
        var (nPos, nNeg) = Validate(scores, inDistribution);
        var order = SortedIndices(scores);
        double rankSumPos = 0;
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && scores[order[end + 1]] == scores[order[start]]) end++;
            var averageRank = 0.5 * (start + end) + 1; // ranks are 1-based; a tie block shares its mean rank
            for (var i = start; i <= end; i++)
                if (inDistribution[order[i]]) rankSumPos += averageRank;
            start = end + 1;
        }
        return (rankSumPos - nPos * (nPos + 1.0) / 2) / ((double)nPos * nNeg);
    }

    /// <summary>
    /// False-positive rate at the highest threshold t that keeps at least <paramref name="tpr"/> of the in-distribution
    /// samples (score &gt;= t counts as in-distribution): the fraction of OOD samples with score &gt;= t.
    /// </summary>
    public static double FprAtTpr(ReadOnlySpan<double> scores, ReadOnlySpan<bool> inDistribution, double tpr = 0.95)
    {
        if (!(tpr > 0 && tpr <= 1))
            throw new ArgumentOutOfRangeException(nameof(tpr), tpr, "tpr must be in (0, 1].");
        var (nPos, nNeg) = Validate(scores, inDistribution);
        var positives = new double[nPos];
        var p = 0;
        for (var i = 0; i < scores.Length; i++)
            if (inDistribution[i]) positives[p++] = scores[i];
        Array.Sort(positives);
        Array.Reverse(positives);
        // The k-th largest positive score, k = ceil(tpr n): rounded to 9 digits first so 0.95 * 20 is 19, not 19.000000000000004.
        var k = (int)Math.Ceiling(Math.Round(tpr * nPos, 9));
        var threshold = positives[Math.Max(k, 1) - 1];
        var falsePositives = 0;
        for (var i = 0; i < scores.Length; i++)
            if (!inDistribution[i] && scores[i] >= threshold) falsePositives++;
        return (double)falsePositives / nNeg;
    }

    private static (int Positives, int Negatives) Validate(ReadOnlySpan<double> scores, ReadOnlySpan<bool> inDistribution)
    {
        if (scores.Length != inDistribution.Length)
            throw new ArgumentException(
                $"scores has {scores.Length} entries but inDistribution has {inDistribution.Length}; they must match.", nameof(inDistribution));
        if (scores.Length == 0)
            throw new ArgumentException("scores is empty.", nameof(scores));
        var pos = 0;
        for (var i = 0; i < scores.Length; i++)
        {
            if (!double.IsFinite(scores[i]))
                throw new ArgumentException($"scores[{i}] = {scores[i]}; every score must be finite.", nameof(scores));
            if (inDistribution[i]) pos++;
        }
        if (pos == 0 || pos == scores.Length)
            throw new ArgumentException(
                $"inDistribution has only one class ({pos} in-distribution of {scores.Length}); both are needed.", nameof(inDistribution));
        return (pos, scores.Length - pos);
    }

    private static int[] SortedIndices(ReadOnlySpan<double> scores)
    {
        var keys = scores.ToArray();
        var order = new int[keys.Length];
        for (var i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(keys, order);
        return order;
    }
}
