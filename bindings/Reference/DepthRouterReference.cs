// DepthRouter, the executable spec (DESIGN.md section 4): softmax over the depth column of one (token, head), written
// as the formulas read, generic so the same code runs in float64 (the reference) and float32 (the naive float32 of the
// 2x rule). Key normalisation and its gradient are attention's (AttentionReference over DepthRouterParams.KeyRows).
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim; q [Lq, T, H, D], k and v [L, T, H, D];
// query layer i sits at depth l = i + (L - Lq) and reads layers j <= l.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Forward results of the reference, flat row-major arrays ([Lq, T, H, D] and [Lq, T, H]).</summary>
public sealed record DepthRouterReferenceOutput<T>(T[] Output, T[] Lse, T[] NormalizedEntropy, T[] MaxProb, T[] EmbeddingMass);

/// <summary>Gradients of the reference ([Lq, T, H, D] and [L, T, H, D]).</summary>
public sealed record DepthRouterReferenceGradients<T>(T[] DQ, T[] DK, T[] DV);

/// <summary>Naive depth routing with the probabilities materialised per row: the spec every backend is tested against.</summary>
public static class DepthRouterReference
{
    /// <summary>Flat offset of (layer, token, head) in a [layers, T, H, D] array.</summary>
    public static int Offset(DepthRouterParams p, int layer, int column) => (layer * p.Columns + column) * p.D;

    /// <summary>
    /// The probabilities of query layer i in column (t H + h): <c>P_j</c> for j = 0..l, and the scores' log-sum-exp.
    /// </summary>
    public static (T[] P, T[] Z, T Lse) Probabilities<T>(DepthRouterParams p, T[] q, T[] keys, int i, int column)
        where T : IFloatingPointIeee754<T>
    {
        var l = i + p.Offset;
        var s = T.CreateChecked(p.Scale);
        var slope = T.CreateChecked(p.BrakeSlopes[column % p.H]);
        var qi = q.AsSpan(Offset(p, i, column), p.D);
        var z = new T[l + 1];
        for (var j = 0; j <= l; j++)
            z[j] = AttentionReference.PairScore<T>(qi, keys.AsSpan(Offset(p, j, column), p.D), s, p.Score) - slope * T.CreateChecked(l - j);
        var max = T.NegativeInfinity;
        foreach (var x in z) max = T.Max(max, x);
        var sum = T.Zero;
        foreach (var x in z) sum += T.Exp(x - max);
        var lse = max + T.Log(sum);
        var prob = new T[l + 1];
        for (var j = 0; j <= l; j++) prob[j] = T.Exp(z[j] - lse);
        return (prob, z, lse);
    }

    /// <summary>The forward pass: the routed mix, Lse and the diagnostics.</summary>
    public static DepthRouterReferenceOutput<T> Forward<T>(DepthRouterParams p, T[] q, T[] k, T[] v) where T : IFloatingPointIeee754<T>
    {
        var (keys, _) = AttentionReference.ScoredKeys(p.KeyRows, k);
        var o = new T[q.Length]; // [Lq, T, H, D]
        var rows = p.Lq * p.Columns;
        T[] lse = new T[rows], entropy = new T[rows], maxProb = new T[rows], embedding = new T[rows]; // [Lq, T, H]
        for (var i = 0; i < p.Lq; i++)
        for (var c = 0; c < p.Columns; c++)
        {
            var row = i * p.Columns + c;
            var (prob, z, rowLse) = Probabilities(p, q, keys, i, c);
            var oi = o.AsSpan(Offset(p, i, c), p.D);
            T pz = T.Zero, max = T.Zero;
            for (var j = 0; j < prob.Length; j++)
            {
                var vj = v.AsSpan(Offset(p, j, c), p.D);
                for (var d = 0; d < p.D; d++) oi[d] += prob[j] * vj[d];
                pz += prob[j] * z[j];
                max = T.Max(max, prob[j]);
            }
            lse[row] = rowLse;
            var depth = prob.Length; // l + 1 visible layers
            entropy[row] = depth == 1 ? T.Zero : (rowLse - pz) / T.Log(T.CreateChecked(depth));
            maxProb[row] = max;
            embedding[row] = prob[0];
        }
        return new DepthRouterReferenceOutput<T>(o, lse, entropy, maxProb, embedding);
    }

    /// <summary>
    /// The backward pass, attention's formulas over the depth column: <c>dv_j += P_j dO</c>,
    /// <c>dz_j = P_j (dO . v_j - dO . O)</c>, <c>dq = s sum_j dz_j k'_j</c>, <c>dk'_j += s dz_j q</c> (minus
    /// <c>s dz_j k'_j</c> for Distance), then through the key normalisation.
    /// </summary>
    public static DepthRouterReferenceGradients<T> Backward<T>(DepthRouterParams p, T[] dOut, T[] q, T[] k, T[] v)
        where T : IFloatingPointIeee754<T>
    {
        var keyRows = p.KeyRows;
        var (keys, norms) = AttentionReference.ScoredKeys(keyRows, k);
        var s = T.CreateChecked(p.Scale);
        var dq = new T[q.Length];
        var dkScored = new T[k.Length]; // dL/dk' [L, T, H, D]
        var dv = new T[v.Length];
        for (var i = 0; i < p.Lq; i++)
        for (var c = 0; c < p.Columns; c++)
        {
            var (prob, _, _) = Probabilities(p, q, keys, i, c);
            var qOff = Offset(p, i, c);
            var oi = new T[p.D];
            for (var j = 0; j < prob.Length; j++)
            for (var d = 0; d < p.D; d++)
                oi[d] += prob[j] * v[Offset(p, j, c) + d];
            var delta = T.Zero;
            for (var d = 0; d < p.D; d++) delta += dOut[qOff + d] * oi[d];
            for (var j = 0; j < prob.Length; j++)
            {
                var kOff = Offset(p, j, c);
                var dOv = T.Zero;
                for (var d = 0; d < p.D; d++) dOv += dOut[qOff + d] * v[kOff + d];
                var dz = prob[j] * (dOv - delta);
                for (var d = 0; d < p.D; d++)
                {
                    dv[kOff + d] += prob[j] * dOut[qOff + d];
                    dq[qOff + d] += s * dz * keys[kOff + d];
                    dkScored[kOff + d] += s * dz * q[qOff + d];
                    if (p.Score == Score.Distance) dkScored[kOff + d] -= s * dz * keys[kOff + d];
                }
            }
        }
        return new DepthRouterReferenceGradients<T>(dq, AttentionReference.KeyGradient(keyRows, k, norms, dkScored), dv);
    }
}
