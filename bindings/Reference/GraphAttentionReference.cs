// GraphAttention, the executable spec (DESIGN.md section 4, graph attention). Readable first: per (head, node) it
// materialises the neighbours' scores and probabilities and loops in the order the formulas are written; generic so
// the same code runs in float64 (the reference) and float32 (the naive float32 of the 2x rule). Keys are prepared and
// their gradient chained by AttentionReference.ScoredKeys / KeyGradient (the dense view p.Keys), not re-derived.
//
// Shapes: H heads, Nn nodes, E edges, D head dim; q, k, v [H, Nn, D]; rowPtr [Nn + 1], colIdx [E].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Forward results of the graph reference, flat row-major arrays.</summary>
public sealed record GraphAttentionReferenceOutput<T>(T[] Output, T[] Lse, T[] NormalizedEntropy, T[] MaxProb, T[] SelfMass);

/// <summary>Naive graph attention: the spec every backend is tested against.</summary>
public static class GraphAttentionReference
{
    /// <summary>
    /// The scores of node i's neighbours in head h, in edge order:
    /// <c>z_ij = s q_i . k'_j [- (s/2)|k'_j|^2 for Distance] - m_h [j != i]</c>.
    /// </summary>
    public static T[] Scores<T>(GraphAttentionParams p, int[] rowPtr, int[] colIdx, T[] q, T[] keys, int h, int i)
        where T : IFloatingPointIeee754<T>
    {
        var s = T.CreateChecked(p.Scale);
        var half = T.CreateChecked(0.5);
        var brake = T.CreateChecked(p.BrakeSlopes[h]);
        var z = new T[rowPtr[i + 1] - rowPtr[i]];
        for (var e = 0; e < z.Length; e++)
        {
            var j = colIdx[rowPtr[i] + e];
            T dot = T.Zero, sq = T.Zero;
            for (var d = 0; d < p.D; d++)
            {
                var kd = keys[(h * p.Nodes + j) * p.D + d];
                dot += q[(h * p.Nodes + i) * p.D + d] * kd;
                sq += kd * kd;
            }
            var score = s * dot;
            if (p.Keys.Score == Score.Distance) score -= s * half * sq;
            z[e] = j == i ? score : score - brake;
        }
        return z;
    }

    /// <summary>Softmax of one node's scores and its log-sum-exp; no neighbours gives Lse = -inf.</summary>
    public static (T[] P, T Lse) Softmax<T>(T[] z) where T : IFloatingPointIeee754<T>
    {
        if (z.Length == 0) return ([], T.NegativeInfinity);
        var max = T.NegativeInfinity;
        foreach (var x in z) max = T.Max(max, x);
        var sum = T.Zero;
        foreach (var x in z) sum += T.Exp(x - max);
        var lse = max + T.Log(sum);
        return (Array.ConvertAll(z, x => T.Exp(x - lse)), lse);
    }

    /// <summary>The forward: O, Lse and the diagnostics (see <see cref="GraphAttentionDiagnostics"/> for their definitions).</summary>
    public static GraphAttentionReferenceOutput<T> Forward<T>(GraphAttentionParams p, int[] rowPtr, int[] colIdx, T[] q, T[] k, T[] v)
        where T : IFloatingPointIeee754<T>
    {
        var (keys, _) = AttentionReference.ScoredKeys(p.Keys, k);
        var o = new T[q.Length]; // [H, Nn, D]
        var rows = p.H * p.Nodes;
        T[] lse = new T[rows], entropy = new T[rows], maxProb = new T[rows], selfMass = new T[rows]; // [H, Nn]
        for (var h = 0; h < p.H; h++)
        for (var i = 0; i < p.Nodes; i++)
        {
            var row = h * p.Nodes + i;
            var z = Scores(p, rowPtr, colIdx, q, keys, h, i);
            var (prob, rowLse) = Softmax(z);
            lse[row] = rowLse;
            T pz = T.Zero;
            for (var e = 0; e < z.Length; e++)
            {
                var j = colIdx[rowPtr[i] + e];
                for (var d = 0; d < p.D; d++) o[row * p.D + d] += prob[e] * v[(h * p.Nodes + j) * p.D + d];
                pz += prob[e] * z[e];
                maxProb[row] = T.Max(maxProb[row], prob[e]);
                if (j == i) selfMass[row] = prob[e];
            }
            entropy[row] = z.Length > 1 ? (rowLse - pz) / T.Log(T.CreateChecked(z.Length)) : T.Zero;
        }
        return new GraphAttentionReferenceOutput<T>(o, lse, entropy, maxProb, selfMass);
    }

    /// <summary>
    /// The backward: per edge (i, j) <c>dz_ij = P_ij (dO_i . v_j - dO_i . O_i)</c>, <c>dv_j += P_ij dO_i</c>,
    /// <c>dq_i += s dz_ij k'_j</c>, <c>dk'_j += s dz_ij q_i</c> (minus <c>s dz_ij k'_j</c> for Distance), then dk through
    /// the key normalisation as attention's.
    /// </summary>
    public static AttentionReferenceGradients<T> Backward<T>(GraphAttentionParams p, int[] rowPtr, int[] colIdx, T[] dOut, T[] q, T[] k, T[] v)
        where T : IFloatingPointIeee754<T>
    {
        var (keys, norms) = AttentionReference.ScoredKeys(p.Keys, k);
        var o = Forward(p, rowPtr, colIdx, q, k, v).Output;
        var s = T.CreateChecked(p.Scale);
        T[] dq = new T[q.Length], dkScored = new T[k.Length], dv = new T[v.Length];
        for (var h = 0; h < p.H; h++)
        for (var i = 0; i < p.Nodes; i++)
        {
            var qOff = (h * p.Nodes + i) * p.D;
            var (prob, _) = Softmax(Scores(p, rowPtr, colIdx, q, keys, h, i));
            var delta = T.Zero; // dO_i . O_i
            for (var d = 0; d < p.D; d++) delta += dOut[qOff + d] * o[qOff + d];
            for (var e = 0; e < prob.Length; e++)
            {
                var kOff = (h * p.Nodes + colIdx[rowPtr[i] + e]) * p.D;
                var dOv = T.Zero;
                for (var d = 0; d < p.D; d++) dOv += dOut[qOff + d] * v[kOff + d];
                var dz = prob[e] * (dOv - delta);
                for (var d = 0; d < p.D; d++)
                {
                    dv[kOff + d] += prob[e] * dOut[qOff + d];
                    dq[qOff + d] += s * dz * keys[kOff + d];
                    dkScored[kOff + d] += s * dz * q[qOff + d];
                    if (p.Keys.Score == Score.Distance) dkScored[kOff + d] -= s * dz * keys[kOff + d];
                }
            }
        }
        return new AttentionReferenceGradients<T>(dq, AttentionReference.KeyGradient(p.Keys, k, norms, dkScored), dv);
    }
}
