// Per-layer routing and collapse diagnostics of a training run (issue 11), measured every --eval-every steps on the
// last validation batch's forward (outside any training step, so host reads are fine):
//   attention: the fused per-row diagnostics of the attention op (sink mass, entropy normalised by log of the visible
//     keys, max prob) per head, plus the key-norm stratification of the keys;
//   Mamba and the recurrent mixer: the implicit attention of the recurrence (Ali et al. 2024 for Mamba: alpha_{t,s} =
//     sum_n C_t[n] exp(A[c,n] sum_{u=s+1..t} dt_u) B_s[n] dt_s per channel; for RG-LRU the decay kernel
//     prod_{u=s+1..t} a_u), |alpha| normalised per row, with the same three measures averaged over channels;
//   every mixer: collapse measures of its output before the out-projection (effective rank, residual ratio, mean
//     pairwise cosine).
using System.Text.Json.Nodes;
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Experiments;

internal static class Diagnostics
{
    public static IEnumerable<JsonObject> Measure(ByteLanguageModel model, int step, bool collapse = true)
    {
        var c = model.Config;
        for (var l = 0; l < model.Blocks.Count; l++)
        {
            var mixer = model.Blocks[l].Mixer;
            var record = new JsonObject { ["key"] = $"diag/{step:D6}/{l}", ["kind"] = "diagnostics", ["step"] = step, ["layer"] = l };
            switch (mixer)
            {
                case AttentionMixer a:
                    Attention(model, a, record);
                    break;
                case RecurrentMixer r:
                    Routing(record, RecurrentWeights(r.Decays.ToArray(), model.Batch, c.Width, c.Context));
                    break;
                case MambaMixer m:
                    Routing(record, MambaWeights(m, model.Batch, c));
                    break;
            }
            if (!collapse)
            {
                yield return record;
                continue;
            }
            using var mixed = model.Device.FromArray(mixer.Mixed.ToArray(), mixer.Mixed.Shape[0], mixer.Mixed.Shape[1]);
            record["effective_rank"] = Collapse.EffectiveRank(mixed);
            record["residual_ratio"] = Collapse.ResidualRatio(mixed);
            record["mean_cosine"] = Collapse.MeanPairwiseCosine(mixed);
            yield return record;
        }
    }

    // The attention op's own diagnostics: recompute the last forward with them on (same inputs), then per-head means.
    private static void Attention(ByteLanguageModel model, AttentionMixer a, JsonObject record)
    {
        var keys = a.Keys;
        var shape = keys.Shape.ToArray();
        var p = AttentionParams.Resolve(shape, shape, shape, a.DiagnosticOptions);
        using var q = model.Device.FromArray(a.Queries.ToArray(), shape);
        using var recomputed = RouteKit.Attention.Forward(q, keys, a.Values, a.DiagnosticOptions);
        var heads = Collapse.AttentionHeads(recomputed.Diagnostics!, p);
        record["sink_mass"] = heads.Average(h => h.MeanSinkMass);
        record["normalized_entropy"] = heads.Average(h => h.MeanNormalizedEntropy);
        record["max_prob"] = heads.Average(h => h.MeanMaxProb);
        var perHead = new JsonArray();
        foreach (var h in heads)
            perHead.Add(new JsonObject { ["head"] = h.Head, ["sink_mass"] = h.MeanSinkMass, ["normalized_entropy"] = h.MeanNormalizedEntropy, ["max_prob"] = h.MeanMaxProb });
        record["heads"] = perHead;
        var norms = Collapse.KeyNorms(keys);
        record["key_norm_cv"] = norms.CoefficientOfVariation;
        record["key_norm_max_over_median"] = norms.MaxOverMedian;
    }

    // Row-normalised implicit attention weights, summarised: [rows][s <= t] -> (sink mass, normalised entropy, max prob).
    private static void Routing(JsonObject record, (double Sink, double Entropy, double Max) m)
    {
        record["sink_mass"] = m.Sink;
        record["normalized_entropy"] = m.Entropy;
        record["max_prob"] = m.Max;
    }

    private sealed class Accumulator
    {
        private double sink, entropy, max;
        private int rows, entropyRows;

        // w[0..t] >= 0, any scale.
        public void Add(ReadOnlySpan<double> w)
        {
            var total = 0.0;
            foreach (var v in w) total += v;
            if (!(total > 0) || !double.IsFinite(total)) return;
            var h = 0.0;
            var best = 0.0;
            foreach (var v in w)
            {
                var p = v / total;
                if (p > 0) h -= p * Math.Log(p);
                best = Math.Max(best, p);
            }
            sink += w[0] / total;
            max += best;
            rows++;
            if (w.Length > 1)
            {
                entropy += h / Math.Log(w.Length);
                entropyRows++;
            }
        }

        public (double, double, double) Mean => rows == 0 ? (double.NaN, double.NaN, double.NaN)
            : (sink / rows, entropyRows == 0 ? double.NaN : entropy / entropyRows, max / rows);
    }

    // RG-LRU: alpha_{t,s} = prod_{u=s+1..t} a_u per channel, a [B, W, T].
    internal static (double, double, double) RecurrentWeights(float[] a, int batch, int width, int steps)
    {
        var acc = new Accumulator();
        var w = new double[steps];
        var logPrefix = new double[steps + 1];
        for (var bc = 0; bc < batch * width; bc++)
        {
            var row = a.AsSpan(bc * steps, steps);
            for (var t = 0; t < steps; t++) logPrefix[t + 1] = logPrefix[t] + Math.Log(Math.Max(row[t], 1e-300));
            for (var t = 0; t < steps; t++)
            {
                for (var s = 0; s <= t; s++) w[s] = Math.Exp(logPrefix[t + 1] - logPrefix[s + 1]);
                acc.Add(w.AsSpan(0, t + 1));
            }
        }
        return acc.Mean;
    }

    // Mamba: alpha_{t,s} = sum_n C_t[n] exp(A[c,n] (S_t - S_s)) B_s[n] dt_s, S the prefix sum of dt; |alpha| per row.
    private static (double, double, double) MambaWeights(MambaMixer m, int batch, ModelConfig c)
    {
        int e = c.Inner, n = c.States, steps = c.Context;
        float[] delta = m.DeltaPreActivation.ToArray(), bias = m.DeltaBias.ToArray(), a = m.A.ToArray(), bt = m.BProjection.ToArray(), ct = m.CProjection.ToArray();
        var acc = new Accumulator();
        var w = new double[steps];
        var dt = new double[steps];
        var prefix = new double[steps + 1];
        // At most 16 evenly spaced channels per batch element keep this O(16 B T^2 N) on the host (64 made a sweep point
        // of the signature experiment spend most of its time here).
        var stride = Math.Max(1, e / 16);
        for (var b = 0; b < batch; b++)
            for (var ch = 0; ch < e; ch += stride)
            {
                for (var t = 0; t < steps; t++)
                {
                    var x = (double)delta[(b * e + ch) * steps + t] + bias[ch];
                    dt[t] = x > 20 ? x : Math.Log(1 + Math.Exp(x));
                    prefix[t + 1] = prefix[t] + dt[t];
                }
                for (var t = 0; t < steps; t++)
                {
                    for (var s = 0; s <= t; s++)
                    {
                        var sum = 0.0;
                        for (var k = 0; k < n; k++)
                            sum += ct[(b * n + k) * steps + t] * Math.Exp(a[ch * n + k] * (prefix[t + 1] - prefix[s + 1])) * bt[(b * n + k) * steps + s];
                        w[s] = Math.Abs(sum * dt[s]);
                    }
                    acc.Add(w.AsSpan(0, t + 1));
                }
            }
        return acc.Mean;
    }
}
