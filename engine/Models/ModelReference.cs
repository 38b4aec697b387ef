// The float64 executable spec of the byte language model (issue 11): the whole model, one block and each mixer alone,
// composed from the bindings' reference ops (bindings/Reference, T = double) and read from the SAME flat parameter
// vector as the engine (ParameterStore's layout), so central finite differences of these functions check every
// gradient ByteLanguageModel.Backward writes. Mirrors ByteLanguageModel.cs and Mixers.cs op for op: the same permutes,
// LayerNorm.DefaultEps, GELU in tanh form, softplus(Δ + bias) inside the scan, ALiBi slopes times the brake (in float, as
// the mixer builds them), Mamba's DecayScale as ln m added to A_log, ContentFree routing projections reading ones, cross-entropy averaged over the rows whose target is not the ignore index. Slow and readable;
// never used for training.
using RouteKit.Reference;

namespace RouteKit.Engine.Models;

/// <summary>Float64 forward of a <see cref="ByteLanguageModel"/>, its blocks and its mixers, from a flat parameter vector.</summary>
public static class ModelReference
{
    /// <summary>
    /// The mean cross-entropy of the model over <paramref name="batch"/> sequences: ids and targets [B*T] float-coded
    /// bytes (targets equal to <see cref="CrossEntropy.DefaultIgnoreIndex"/> are ignored); parameters laid out as
    /// <paramref name="layout"/> (ParameterStore.Infos).
    /// </summary>
    public static double Loss(ModelConfig c, int batch, IReadOnlyList<ParameterInfo> layout, double[] parameters,
        float[] ids, float[] targets)
    {
        var logits = Logits(c, batch, layout, parameters, ids);
        var t = Array.ConvertAll(targets, v => (int)v);
        return CrossEntropyReference.Forward(logits, t, batch * c.Context, ModelConfig.Vocabulary, CrossEntropy.DefaultIgnoreIndex).Mean;
    }

    /// <summary>The logits [B*T, 256] of the model for ids [B*T].</summary>
    public static double[] Logits(ModelConfig c, int batch, IReadOnlyList<ParameterInfo> layout, double[] parameters, float[] ids)
    {
        ArgumentNullException.ThrowIfNull(c);
        var w = c.Width;
        var rows = batch * c.Context;
        if (ids.Length != rows) throw new ArgumentException($"ids has {ids.Length} entries; wanted B*T = {rows}.", nameof(ids));
        var table = Get(layout, parameters, "wte");
        var x = EmbeddingReference.Forward(table, Array.ConvertAll(ids, v => (int)v), w);
        if (c.DepthRouted)
        {
            // Depth-routed (DepthMix.cs): o_0 = x; k_l = LN_l(o_l), q_l = W_q,l k_l, x_l = DepthRouter(q_l, k_0..l, o_0..l).
            var outs = new List<double[]> { x };
            var keys = new List<double[]>();
            for (var l = 0; l < c.Layers; l++)
            {
                var a = Norm(outs[l], Get(layout, parameters, $"d{l}.ln.w"), Get(layout, parameters, $"d{l}.ln.b"), rows, w);
                keys.Add(a);
                var q = LinearReference.Forward(a, Get(layout, parameters, $"d{l}.wq"), null, rows, w, w);
                var dp = DepthRouterParams.Resolve([1, rows, c.Heads, c.HeadDim], [l + 1, rows, c.Heads, c.HeadDim], [l + 1, rows, c.Heads, c.HeadDim],
                    DepthOptionsFor(c));
                var routed = DepthRouterReference.Forward(dp, q, keys.SelectMany(k => k).ToArray(), outs.SelectMany(o => o).ToArray()).Output;
                outs.Add(BlockForward(c, batch, l, layout, parameters, routed));
            }
            x = outs[^1];
        }
        else
            for (var l = 0; l < c.Layers; l++) x = BlockForward(c, batch, l, layout, parameters, x);
        var y = Norm(x, Get(layout, parameters, "lnf.w"), Get(layout, parameters, "lnf.b"), rows, w);
        var head = c.TiedHead ? table : Get(layout, parameters, "head");
        return LinearReference.Forward(y, head, null, rows, w, ModelConfig.Vocabulary);
    }

    /// <summary>Block <paramref name="layer"/>: x + Mixer(LN1(x)), then + W2 GELU_tanh(W1 LN2(.) + b1) + b2; x, y [B*T, W].</summary>
    public static double[] BlockForward(ModelConfig c, int batch, int layer, IReadOnlyList<ParameterInfo> layout,
        double[] parameters, double[] x)
    {
        ArgumentNullException.ThrowIfNull(c);
        var w = c.Width;
        var rows = batch * c.Context;
        var p = $"h{layer}";
        var a = Norm(x, Get(layout, parameters, $"{p}.ln1.w"), Get(layout, parameters, $"{p}.ln1.b"), rows, w);
        var mixed = MixerForward(c, batch, layer, layout, parameters, a);
        var x1 = Add(x, mixed);
        var n2 = Norm(x1, Get(layout, parameters, $"{p}.ln2.w"), Get(layout, parameters, $"{p}.ln2.b"), rows, w);
        var h = LinearReference.Forward(n2, Get(layout, parameters, $"{p}.mlp.w1"), Get(layout, parameters, $"{p}.mlp.b1"), rows, w, 4 * w);
        var g = ActivationReference.GeluForward(h, GeluForm.Tanh);
        var f = LinearReference.Forward(g, Get(layout, parameters, $"{p}.mlp.w2"), Get(layout, parameters, $"{p}.mlp.b2"), rows, 4 * w, w);
        return Add(x1, f);
    }

    /// <summary>The mixer of block <paramref name="layer"/> alone (its own configured kind): y = mixer(x), x, y [B*T, W].</summary>
    public static double[] MixerForward(ModelConfig c, int batch, int layer, IReadOnlyList<ParameterInfo> layout,
        double[] parameters, double[] x)
    {
        ArgumentNullException.ThrowIfNull(c);
        return c.Mixer switch
        {
            MixerKind.Attention => AttentionForward(c, batch, layer, layout, parameters, x),
            MixerKind.Mamba => MambaForward(c, batch, layer, layout, parameters, x),
            _ => RecurrentForward(c, batch, layer, layout, parameters, x),
        };
    }

    /// <summary>The attention options the engine's attention mixer uses for <paramref name="c"/>.</summary>
    public static AttentionOptions AttentionOptionsFor(ModelConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return new AttentionOptions
        {
            Causal = true, Score = c.Score, NormalizeKeys = c.NormalizeKeys,
            BrakeSlopes = c.Brake > 0 ? AttentionOptions.AlibiSlopes(c.Heads).Select(s => s * c.Brake).ToArray() : null,
        };
    }

    /// <summary>The depth-router options a depth-routed model uses for <paramref name="c"/>.</summary>
    public static DepthRouterOptions DepthOptionsFor(ModelConfig c)
    {
        ArgumentNullException.ThrowIfNull(c);
        return new DepthRouterOptions { Score = c.DepthScore, NormalizeKeys = c.DepthNormalizeKeys, Brake = c.DepthBrake };
    }

    private static double[] AttentionForward(ModelConfig c, int batch, int layer, IReadOnlyList<ParameterInfo> layout,
        double[] parameters, double[] x)
    {
        int b = batch, t = c.Context, h = c.Heads, d = c.HeadDim, w = c.Width, rows = batch * c.Context;
        var p = $"h{layer}.attn";
        var routed = c.ContentFree ? Ones(rows * w) : x;
        var q = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.wq"), null, rows, w, w);
        var k = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.wk"), null, rows, w, w);
        var v = LinearReference.Forward(x, Get(layout, parameters, $"{p}.wv"), null, rows, w, w);
        int[] shape = [b, h, t, d];
        var ap = AttentionParams.Resolve(shape, shape, shape, AttentionOptionsFor(c));
        var o = AttentionReference.Forward(ap, SwapMiddle(q, b, t, h, d), SwapMiddle(k, b, t, h, d), SwapMiddle(v, b, t, h, d)).Output;
        return LinearReference.Forward(SwapMiddle(o, b, h, t, d), Get(layout, parameters, $"{p}.wo"), null, rows, w, w);
    }

    private static double[] MambaForward(ModelConfig c, int batch, int layer, IReadOnlyList<ParameterInfo> layout,
        double[] parameters, double[] x)
    {
        int b = batch, t = c.Context, w = c.Width, e = c.Inner, n = c.States, r = c.DeltaRank, k = c.ConvWidth, rows = batch * c.Context;
        var p = $"h{layer}.mamba";
        var xin = LinearReference.Forward(x, Get(layout, parameters, $"{p}.in_x"), null, rows, w, e);
        var z = LinearReference.Forward(x, Get(layout, parameters, $"{p}.in_z"), null, rows, w, e);
        var xc = Conv1dReference.Forward(xin, Get(layout, parameters, $"{p}.conv_w"), Get(layout, parameters, $"{p}.conv_b"), b, t, e, k);
        var xs = ActivationReference.SiluForward(xc);
        var routed = c.ContentFree ? Ones(rows * e) : xs;
        var dtl = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.x_dt"), null, rows, e, r);
        var bm = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.x_b"), null, rows, e, n);
        var cm = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.x_c"), null, rows, e, n);
        var dtr = LinearReference.Forward(dtl, Get(layout, parameters, $"{p}.dt_w"), null, rows, r, e);
        // DecayScale m: A = -exp(A_log + ln m), ln m rounded to float as the engine stores it.
        var aLog = Get(layout, parameters, $"{p}.a_log");
        if (c.DecayScale != 1f)
        {
            var shift = (double)(float)Math.Log(c.DecayScale);
            for (var i = 0; i < aLog.Length; i++) aLog[i] += shift;
        }
        var a = ActivationReference.NegExpForward(aLog);
        var sp = SelectiveScanParams.Resolve([b, e, t], [b, e, t], [e, n], [b, n, t], [b, n, t], [e], [b, e, t], [e], null,
            new SelectiveScanOptions { DeltaSoftplus = true });
        var inputs = new SelectiveScanReferenceInputs<double>(
            U: SwapMiddle(xs, b, t, e, 1), Delta: SwapMiddle(dtr, b, t, e, 1), A: a,
            B: SwapMiddle(bm, b, t, n, 1), C: SwapMiddle(cm, b, t, n, 1), D: Get(layout, parameters, $"{p}.d"),
            Z: SwapMiddle(z, b, t, e, 1), DeltaBias: Get(layout, parameters, $"{p}.dt_bias"));
        var y = ScanReference.Forward(sp, inputs).Output;                                  // [B, E, T]
        return LinearReference.Forward(SwapMiddle(y, b, e, t, 1), Get(layout, parameters, $"{p}.out"), null, rows, e, w);
    }

    private static double[] RecurrentForward(ModelConfig c, int batch, int layer, IReadOnlyList<ParameterInfo> layout,
        double[] parameters, double[] x)
    {
        int b = batch, t = c.Context, w = c.Width, rows = batch * c.Context;
        var p = $"h{layer}.rglru";
        var routed = c.ContentFree ? Ones(rows * w) : x;
        var gr = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.wr"), Get(layout, parameters, $"{p}.br"), rows, w, w);
        var gi = LinearReference.Forward(routed, Get(layout, parameters, $"{p}.wi"), Get(layout, parameters, $"{p}.bi"), rows, w, w);
        var (a, gx) = RgLruGateReference.Forward(gr, gi, x, Get(layout, parameters, $"{p}.lambda"), b, t, w, (double)c.Brake);
        var h = ScanReference.RecurrenceForward(b, w, t, a, gx, null);                     // [B, W, T]
        return LinearReference.Forward(SwapMiddle(h, b, w, t, 1), Get(layout, parameters, $"{p}.wo"), null, rows, w, w);
    }

    /// <summary>The parameter named <paramref name="name"/> copied out of the flat vector.</summary>
    public static double[] Get(IReadOnlyList<ParameterInfo> layout, double[] parameters, string name)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(parameters);
        foreach (var info in layout)
            if (info.Name == name) return parameters.AsSpan(info.Offset, info.Length).ToArray();
        throw new ArgumentException($"No parameter named {name} in the layout.", nameof(name));
    }

    /// <summary>[A, B, C, D] to [A, C, B, D], as Permute.SwapMiddle.</summary>
    public static double[] SwapMiddle(double[] x, int a, int b, int c, int d)
    {
        ArgumentNullException.ThrowIfNull(x);
        var y = new double[x.Length];
        for (var i = 0; i < a; i++)
        for (var j = 0; j < b; j++)
        for (var k = 0; k < c; k++)
            Array.Copy(x, (((long)i * b + j) * c + k) * d, y, (((long)i * c + k) * b + j) * d, d);
        return y;
    }

    private static double[] Norm(double[] x, double[] weight, double[] bias, int rows, int channels) =>
        LayerNormReference.Forward(x, weight, bias, rows, channels, (double)LayerNorm.DefaultEps).Y;

    private static double[] Ones(int length) => Enumerable.Repeat(1.0, length).ToArray();

    private static double[] Add(double[] a, double[] b)
    {
        var y = new double[a.Length];
        for (var i = 0; i < y.Length; i++) y[i] = a[i] + b[i];
        return y;
    }
}
