// Fused softmax cross-entropy, the executable spec. Generic so the same code gives the float64 reference and the naive
// float32 results of the 2x rule. Shapes: T rows, V classes; logits [T, V], targets [T], losses [T], dlogits [T, V].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Per-row losses, their mean over non-ignored rows, and the gradient of that mean.</summary>
public sealed record CrossEntropyReferenceOutput<T>(T[] Losses, T Mean, T[] DLogits);

/// <summary>Naive softmax cross-entropy with an ignore index.</summary>
public static class CrossEntropyReference
{
    /// <summary>
    /// losses[t] = logsumexp(logits[t]) - logits[t, target[t]] (0 where target[t] == ignore); mean = sum losses / count
    /// over the count non-ignored rows (0 when count = 0); dlogits[t] = (softmax(logits[t]) - onehot(target[t])) / count
    /// (zero rows where ignored, all zero when count = 0).
    /// </summary>
    public static CrossEntropyReferenceOutput<T> Forward<T>(T[] logits, int[] targets, int rows, int classes, int ignore)
        where T : IFloatingPointIeee754<T>
    {
        var losses = new T[rows];
        var dlogits = new T[rows * classes];
        var count = 0;
        foreach (var t in targets) if (t != ignore) count++;
        var total = T.Zero;
        for (var r = 0; r < rows; r++)
        {
            if (targets[r] == ignore) continue;
            var m = T.NegativeInfinity;
            for (var c = 0; c < classes; c++) m = T.Max(m, logits[r * classes + c]);
            var s = T.Zero;
            for (var c = 0; c < classes; c++) s += T.Exp(logits[r * classes + c] - m);
            losses[r] = T.Log(s) - (logits[r * classes + targets[r]] - m);
            total += losses[r];
            for (var c = 0; c < classes; c++)
            {
                var p = T.Exp(logits[r * classes + c] - m) / s;
                dlogits[r * classes + c] = ((c == targets[r] ? p - T.One : p)) / T.CreateChecked(count);
            }
        }
        return new CrossEntropyReferenceOutput<T>(losses, count > 0 ? total / T.CreateChecked(count) : T.Zero, dlogits);
    }
}
