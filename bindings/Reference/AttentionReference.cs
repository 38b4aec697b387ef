// Attention, the executable spec (DESIGN.md section 4). Readable first: it materialises P for each (batch, head),
// loops in the order the formulas are written, and is generic so the same code runs in float64 (the reference) and
// float32 (the "naive float32" of the 2x rule). Never used for speed.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; g = H / Hkv.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Forward results of the reference, flat row-major arrays.</summary>
public sealed record AttentionReferenceOutput<T>(T[] Output, T[] Lse, T[] Entropy, T[] SinkMass, T[] MaxProb);

/// <summary>Gradients of the reference, flat row-major arrays.</summary>
public sealed record AttentionReferenceGradients<T>(T[] DQ, T[] DK, T[] DV);

/// <summary>Naive attention with P materialised: the spec every backend is tested against.</summary>
public static class AttentionReference
{
    /// <summary>
    /// Keys as the score sees them: <c>k'_j = rho k_j / max(|k_j|, eps)</c> with NormalizeKeys, else k itself.
    /// Returns k' <c>[B, Hkv, M, D]</c> and the norms |k_j| <c>[B, Hkv, M]</c>.
    /// </summary>
    public static (T[] Keys, T[] Norms) ScoredKeys<T>(AttentionParams p, T[] k) where T : IFloatingPointIeee754<T>
    {
        var keys = (T[])k.Clone(); // [B, Hkv, M, D]
        var norms = new T[p.B * p.Hkv * p.M]; // [B, Hkv, M]
        var rho = T.CreateChecked(p.KeyRadius);
        var eps = T.CreateChecked(p.KeyEpsilon);
        for (var r = 0; r < norms.Length; r++)
        {
            var row = keys.AsSpan(r * p.D, p.D);
            var sq = T.Zero;
            foreach (var x in row) sq += x * x;
            norms[r] = T.Sqrt(sq);
            if (!p.NormalizeKeys) continue;
            var f = rho / T.Max(norms[r], eps);
            for (var d = 0; d < p.D; d++) row[d] *= f;
        }
        return (keys, norms);
    }

    /// <summary>
    /// The score matrix of one (batch, head): <c>z[i, j]</c>, -inf where masked. Key bias, brake and masks applied.
    /// </summary>
    public static T[,] Scores<T>(AttentionParams p, T[] q, T[] keys, int b, int h) where T : IFloatingPointIeee754<T>
    {
        var hk = h / p.Group;
        var s = T.CreateChecked(p.Scale);
        var slope = T.CreateChecked(p.BrakeSlopes[h]);
        var z = new T[p.N, p.M];
        for (var i = 0; i < p.N; i++)
        {
            var qi = q.AsSpan(((b * p.H + h) * p.N + i) * p.D, p.D);
            for (var j = 0; j < p.M; j++)
            {
                if (!p.Visible(b, i, j))
                {
                    z[i, j] = T.NegativeInfinity;
                    continue;
                }
                var kj = keys.AsSpan(((b * p.Hkv + hk) * p.M + j) * p.D, p.D);
                z[i, j] = PairScore(qi, kj, s, p.Score) - slope * T.CreateChecked(Math.Abs(i + p.Offset - j));
            }
        }
        return z;
    }

    /// <summary>
    /// The score of one query and one (prepared) key before brake and masks: <c>s q . k'</c>, minus <c>(s/2)|k'|^2</c>
    /// for Distance. Shared with <see cref="DepthRouterReference"/>.
    /// </summary>
    public static T PairScore<T>(ReadOnlySpan<T> qi, ReadOnlySpan<T> kj, T s, Score score) where T : IFloatingPointIeee754<T>
    {
        T dot = T.Zero, sq = T.Zero;
        for (var d = 0; d < qi.Length; d++)
        {
            dot += qi[d] * kj[d];
            sq += kj[d] * kj[d];
        }
        var z = s * dot;
        if (score == Score.Distance) z -= s * T.CreateChecked(0.5) * sq;
        return z;
    }

    /// <summary>Row-wise softmax of <paramref name="z"/> with its log-sum-exp; a row that is all -inf gives P = 0, Lse = -inf.</summary>
    public static (T[,] P, T[] Lse) Softmax<T>(T[,] z) where T : IFloatingPointIeee754<T>
    {
        int n = z.GetLength(0), m = z.GetLength(1);
        var prob = new T[n, m];
        var lse = new T[n];
        for (var i = 0; i < n; i++)
        {
            var max = T.NegativeInfinity;
            for (var j = 0; j < m; j++) max = T.Max(max, z[i, j]);
            if (T.IsNegativeInfinity(max))
            {
                lse[i] = T.NegativeInfinity;
                continue;
            }
            var sum = T.Zero;
            for (var j = 0; j < m; j++) sum += T.Exp(z[i, j] - max);
            lse[i] = max + T.Log(sum);
            for (var j = 0; j < m; j++) prob[i, j] = T.Exp(z[i, j] - lse[i]);
        }
        return (prob, lse);
    }

    /// <summary>The forward pass: O, Lse and the diagnostics.</summary>
    public static AttentionReferenceOutput<T> Forward<T>(AttentionParams p, T[] q, T[] k, T[] v) where T : IFloatingPointIeee754<T>
    {
        var (keys, _) = ScoredKeys(p, k);
        var o = new T[q.Length]; // [B, H, N, D]
        var rows = p.B * p.H * p.N;
        T[] lseAll = new T[rows], entropy = new T[rows], sink = new T[rows], maxProb = new T[rows]; // [B, H, N]
        for (var b = 0; b < p.B; b++)
        for (var h = 0; h < p.H; h++)
        {
            var z = Scores(p, q, keys, b, h);
            var (prob, lse) = Softmax(z);
            Aggregate(p, prob, v, o, b, h);
            for (var i = 0; i < p.N; i++)
            {
                var row = (b * p.H + h) * p.N + i;
                lseAll[row] = lse[i];
                if (T.IsNegativeInfinity(lse[i])) continue;
                T pz = T.Zero, sm = T.Zero, max = T.NegativeInfinity;
                for (var j = 0; j < p.M; j++)
                {
                    if (T.IsNegativeInfinity(z[i, j])) continue;
                    pz += prob[i, j] * z[i, j];
                    if (j < p.SinkTokens) sm += prob[i, j];
                    max = T.Max(max, z[i, j]);
                }
                entropy[row] = lse[i] - pz;
                sink[row] = sm;
                maxProb[row] = T.Exp(max - lse[i]);
            }
        }
        return new AttentionReferenceOutput<T>(o, lseAll, entropy, sink, maxProb);
    }

    /// <summary>
    /// The backward pass: <c>dV_j = sum_i P_ij dO_i</c>, <c>dz_ij = P_ij (dO_i . v_j - dO_i . O_i)</c>,
    /// <c>dq_i = s sum_j dz_ij k'_j</c>, <c>dk'_j = s sum_i dz_ij q_i</c> (minus <c>s (sum_i dz_ij) k'_j</c> for Distance),
    /// then through the normalisation <c>dk = (rho/|k|)(I - u u^T) dk'</c>, u = k/|k| (or <c>(rho/eps) dk'</c> below eps).
    /// </summary>
    public static AttentionReferenceGradients<T> Backward<T>(AttentionParams p, T[] dOut, T[] q, T[] k, T[] v)
        where T : IFloatingPointIeee754<T>
    {
        var (keys, norms) = ScoredKeys(p, k);
        var s = T.CreateChecked(p.Scale);
        var dq = new T[q.Length];
        var dkScored = new T[k.Length]; // dL/dk' [B, Hkv, M, D]
        var dv = new T[v.Length];
        var o = new T[q.Length];
        for (var b = 0; b < p.B; b++)
        for (var h = 0; h < p.H; h++)
        {
            var hk = h / p.Group;
            var (prob, _) = Softmax(Scores(p, q, keys, b, h));
            Aggregate(p, prob, v, o, b, h);
            for (var i = 0; i < p.N; i++)
            {
                var qOff = ((b * p.H + h) * p.N + i) * p.D;
                var delta = Dot(dOut, qOff, o, qOff, p.D); // dO_i . O_i
                for (var j = 0; j < p.M; j++)
                {
                    var pij = prob[i, j];
                    if (pij == T.Zero) continue;
                    var kOff = ((b * p.Hkv + hk) * p.M + j) * p.D;
                    var dz = pij * (Dot(dOut, qOff, v, kOff, p.D) - delta);
                    for (var d = 0; d < p.D; d++)
                    {
                        dv[kOff + d] += pij * dOut[qOff + d];
                        dq[qOff + d] += s * dz * keys[kOff + d];
                        dkScored[kOff + d] += s * dz * q[qOff + d];
                        if (p.Score == Score.Distance) dkScored[kOff + d] -= s * dz * keys[kOff + d];
                    }
                }
            }
        }
        return new AttentionReferenceGradients<T>(dq, KeyGradient(p, k, norms, dkScored), dv);
    }

    /// <summary>Chains dL/dk' through the key normalisation (identity when it is off).</summary>
    public static T[] KeyGradient<T>(AttentionParams p, T[] k, T[] norms, T[] dkScored) where T : IFloatingPointIeee754<T>
    {
        if (!p.NormalizeKeys) return dkScored;
        var dk = new T[k.Length];
        var rho = T.CreateChecked(p.KeyRadius);
        var eps = T.CreateChecked(p.KeyEpsilon);
        for (var r = 0; r < norms.Length; r++)
        {
            var off = r * p.D;
            if (norms[r] <= eps)
            {
                for (var d = 0; d < p.D; d++) dk[off + d] = rho / eps * dkScored[off + d];
                continue;
            }
            var udk = Dot(k, off, dkScored, off, p.D) / norms[r]; // u . dk'
            for (var d = 0; d < p.D; d++)
                dk[off + d] = rho / norms[r] * (dkScored[off + d] - k[off + d] / norms[r] * udk);
        }
        return dk;
    }

    /// <summary>
    /// Distance attention computed literally as Boltzmann weights: <c>softmax_j(-(s/2)|q_i - k'_j|^2 - brake)</c>, the
    /// reframing identity's right-hand side. Returns O <c>[B, H, N, D]</c>.
    /// </summary>
    public static T[] Boltzmann<T>(AttentionParams p, T[] q, T[] k, T[] v) where T : IFloatingPointIeee754<T>
    {
        var (keys, _) = ScoredKeys(p, k);
        var o = new T[q.Length];
        var halfS = T.CreateChecked(p.Scale) * T.CreateChecked(0.5);
        for (var b = 0; b < p.B; b++)
        for (var h = 0; h < p.H; h++)
        {
            var hk = h / p.Group;
            var slope = T.CreateChecked(p.BrakeSlopes[h]);
            var z = new T[p.N, p.M];
            for (var i = 0; i < p.N; i++)
            for (var j = 0; j < p.M; j++)
            {
                if (!p.Visible(b, i, j))
                {
                    z[i, j] = T.NegativeInfinity;
                    continue;
                }
                var qOff = ((b * p.H + h) * p.N + i) * p.D;
                var kOff = ((b * p.Hkv + hk) * p.M + j) * p.D;
                var dist = T.Zero;
                for (var d = 0; d < p.D; d++)
                {
                    var diff = q[qOff + d] - keys[kOff + d];
                    dist += diff * diff;
                }
                z[i, j] = -halfS * dist - slope * T.CreateChecked(Math.Abs(i + p.Offset - j));
            }
            Aggregate(p, Softmax(z).P, v, o, b, h);
        }
        return o;
    }

    // O_i = sum_j P_ij v_j for one (batch, head).
    private static void Aggregate<T>(AttentionParams p, T[,] prob, T[] v, T[] o, int b, int h) where T : IFloatingPointIeee754<T>
    {
        var hk = h / p.Group;
        for (var i = 0; i < p.N; i++)
        {
            var oi = o.AsSpan(((b * p.H + h) * p.N + i) * p.D, p.D);
            for (var j = 0; j < p.M; j++)
            {
                var pij = prob[i, j];
                if (pij == T.Zero) continue;
                var vj = v.AsSpan(((b * p.Hkv + hk) * p.M + j) * p.D, p.D);
                for (var d = 0; d < p.D; d++) oi[d] += pij * vj[d];
            }
        }
    }

    private static T Dot<T>(T[] a, int aOff, T[] b, int bOff, int n) where T : IFloatingPointIeee754<T>
    {
        var sum = T.Zero;
        for (var d = 0; d < n; d++) sum += a[aOff + d] * b[bOff + d];
        return sum;
    }
}
