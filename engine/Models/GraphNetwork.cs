// A small graph-attention network for node classification (issue 13's graph experiment), in the byte model's style:
// one flat parameter buffer, every activation preallocated for one graph, an explicit backward.
//
//   x0 = W_in features + b_in                                      [Nn, W]
//   layer l: a = LN(x_l);  q, k, v = W_q a, W_k a, W_v a  (heads: [H, Nn, W/H])
//            x_{l+1} = x_l + W_o GraphAttention(graph, q, k, v)     (pre-norm residual, as the byte model's blocks)
//   logits = W_head LN_f(x_L) + b_head                              [Nn, C];  loss = mean CrossEntropy over labelled nodes
//
// The graph's score (Dot, Distance, NormalizeKeys) and brake (a bias -m on every edge to another node) are the
// experiment's variables; Layers sets the depth whose over-smoothing is measured.
namespace RouteKit.Engine.Models;

/// <summary>Hyper-parameters of a <see cref="GraphNetwork"/>.</summary>
public sealed record GraphNetworkConfig
{
    /// <summary>Input features per node F.</summary>
    public int Features { get; init; } = 784;
    /// <summary>Classes C.</summary>
    public int Classes { get; init; } = 10;
    /// <summary>Width W of the node representations.</summary>
    public int Width { get; init; } = 64;
    /// <summary>Attention heads (Width must be a multiple).</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Graph-attention layers L.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Scores: Dot or Distance.</summary>
    public Score Score { get; init; } = Score.Dot;
    /// <summary>Keys normalised to a common norm before scoring.</summary>
    public bool NormalizeKeys { get; init; }
    /// <summary>The graph brake m >= 0: z_ij -= m on every edge j != i (every head).</summary>
    public float Brake { get; init; }
    /// <summary>Seed of the parameter initialisation.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Null when usable, else one line saying what is wrong.</summary>
    public string? Validate()
    {
        if (Features < 1) return $"features {Features}: wanted at least 1.";
        if (Classes < 2) return $"classes {Classes}: wanted at least 2.";
        if (Layers < 1 || Layers > 64) return $"--layers {Layers}: wanted 1 to 64.";
        if (Width < 2 || Heads < 1 || Width % Heads != 0) return $"--width {Width} / --heads {Heads}: the width must be a multiple of the head count.";
        if (Width / Heads > 256) return $"{Width / Heads} channels per head; graph attention supports at most 256.";
        if (!float.IsFinite(Brake) || Brake < 0) return $"--brake {Brake}: wanted a finite value >= 0.";
        return null;
    }
}

/// <summary>Node classification with graph attention on one graph (see the file header).</summary>
public sealed class GraphNetwork : IDisposable
{
    private readonly CsrGraph graph;
    private readonly int inW, inB, lnfW, lnfB, headW, headB;
    private readonly int[] lnW, lnB, wq, wk, wv, wo;
    private readonly Tensor[] stream;                // x_0 .. x_L [Nn, W]
    private readonly LayerNormOutput[] ln;
    private readonly Tensor[] q, k, v, qh, kh, vh, oFlat;   // per layer: [Nn, W] and head-major [H, Nn, D]
    private readonly GraphAttentionOutput[] att;
    private readonly LayerNormOutput lnf;
    private readonly Tensor logits, dA, dB, dLn, dq, dk, dv, dO, dOh, tmp, mixed, dFeatures;
    private readonly GraphAttentionGradients attGrads;
    private readonly CrossEntropyOutput ce;
    private readonly int nodes, heads, headDim, width;

    /// <summary>Builds the model and its buffers for <paramref name="graph"/>.</summary>
    /// <exception cref="ArgumentException">The configuration is invalid.</exception>
    public GraphNetwork(Device device, CsrGraph graph, GraphNetworkConfig config)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(config);
        if (config.Validate() is { } problem) throw new ArgumentException(problem, nameof(config));
        (Device, this.graph, Config) = (device, graph, config);
        (nodes, heads, width) = (graph.Nodes, config.Heads, config.Width);
        headDim = width / heads;
        var L = config.Layers;
        Parameters = new ParameterStore();
        inW = Parameters.Declare("in.w", [width, config.Features], true, Init.Normal(1 / Math.Sqrt(config.Features)));
        inB = Parameters.Declare("in.b", [width], false, Init.Constant(0));
        (lnW, lnB, wq, wk, wv, wo) = (new int[L], new int[L], new int[L], new int[L], new int[L], new int[L]);
        for (var l = 0; l < L; l++)
        {
            lnW[l] = Parameters.Declare($"g{l}.ln.w", [width], false, Init.Constant(1));
            lnB[l] = Parameters.Declare($"g{l}.ln.b", [width], false, Init.Constant(0));
            wq[l] = Parameters.Declare($"g{l}.wq", [width, width], true, Init.Normal(1 / Math.Sqrt(width)));
            wk[l] = Parameters.Declare($"g{l}.wk", [width, width], true, Init.Normal(1 / Math.Sqrt(width)));
            wv[l] = Parameters.Declare($"g{l}.wv", [width, width], true, Init.Normal(1 / Math.Sqrt(width)));
            wo[l] = Parameters.Declare($"g{l}.wo", [width, width], true, Init.Normal(1 / Math.Sqrt(2.0 * L * width)));
        }
        lnfW = Parameters.Declare("lnf.w", [width], false, Init.Constant(1));
        lnfB = Parameters.Declare("lnf.b", [width], false, Init.Constant(0));
        headW = Parameters.Declare("head.w", [config.Classes, width], true, Init.Normal(1 / Math.Sqrt(width)));
        headB = Parameters.Declare("head.b", [config.Classes], false, Init.Constant(0));
        Parameters.Allocate(device, config.Seed);
        Options = new GraphAttentionOptions
        {
            Score = config.Score, NormalizeKeys = config.NormalizeKeys,
            BrakeSlopes = config.Brake > 0 ? Enumerable.Repeat(config.Brake, heads).ToArray() : null,
        };
        DiagnosticOptions = Options with { Diagnostics = true };
        stream = Enumerable.Range(0, L + 1).Select(_ => device.Zeros(nodes, width)).ToArray();
        ln = Enumerable.Range(0, L).Select(_ => new LayerNormOutput(device.Zeros(nodes, width), device.Zeros(nodes), device.Zeros(nodes))).ToArray();
        Tensor[] Many(params int[] shape) => Enumerable.Range(0, L).Select(_ => device.Zeros(shape)).ToArray();
        (q, k, v, oFlat) = (Many(nodes, width), Many(nodes, width), Many(nodes, width), Many(nodes, width));
        (qh, kh, vh) = (Many(heads, nodes, headDim), Many(heads, nodes, headDim), Many(heads, nodes, headDim));
        att = Enumerable.Range(0, L).Select(_ => GraphAttentionOutput.Allocate(device, heads, nodes, headDim, diagnostics: true)).ToArray();
        lnf = new LayerNormOutput(device.Zeros(nodes, width), device.Zeros(nodes), device.Zeros(nodes));
        logits = device.Zeros(nodes, config.Classes);
        ce = new CrossEntropyOutput(device.Zeros(nodes), device.Zeros(1), device.Zeros(nodes, config.Classes));
        (dA, dB, dLn, dq, dk, dv, dO, tmp, mixed) = (device.Zeros(nodes, width), device.Zeros(nodes, width), device.Zeros(nodes, width),
            device.Zeros(nodes, width), device.Zeros(nodes, width), device.Zeros(nodes, width), device.Zeros(nodes, width),
            device.Zeros(nodes, width), device.Zeros(nodes, width));
        dOh = device.Zeros(heads, nodes, headDim);
        attGrads = new GraphAttentionGradients(device.Zeros(heads, nodes, headDim), device.Zeros(heads, nodes, headDim), device.Zeros(heads, nodes, headDim));
        dFeatures = device.Zeros(nodes, config.Features);
        Features = device.Zeros(nodes, config.Features);
        Targets = device.Zeros(nodes);
    }

    /// <summary>The device.</summary>
    public Device Device { get; }
    /// <summary>The configuration.</summary>
    public GraphNetworkConfig Config { get; }
    /// <summary>Parameters, gradients and AdamW moments.</summary>
    public ParameterStore Parameters { get; }
    /// <summary>The graph-attention options of every layer.</summary>
    public GraphAttentionOptions Options { get; }
    /// <summary>The same options with the fused diagnostics on.</summary>
    public GraphAttentionOptions DiagnosticOptions { get; }
    /// <summary>Whether the next forward computes the per-node diagnostics (entropy, max prob, self-mass).</summary>
    public bool WantDiagnostics { get; set; }
    /// <summary>Node features [Nn, F] (fill with CopyFrom).</summary>
    public Tensor Features { get; }
    /// <summary>Class per node [Nn] as floats, -100 for unlabelled nodes (not in the loss).</summary>
    public Tensor Targets { get; }
    /// <summary>The mean loss over labelled nodes of the last forward [1].</summary>
    public Tensor Loss => ce.Mean;
    /// <summary>The last forward's logits [Nn, C].</summary>
    public Tensor Logits => logits;
    /// <summary>Node representations entering layer l (l = L: the last) [Nn, W].</summary>
    public Tensor Stream(int l) => stream[l];
    /// <summary>Layer l's graph attention of the last forward (diagnostics when <see cref="WantDiagnostics"/> was set).</summary>
    public GraphAttentionOutput Attention(int l) => att[l];

    /// <summary>Computes logits and the loss (and dlogits for <see cref="Backward"/>).</summary>
    public void Forward()
    {
        var options = WantDiagnostics ? DiagnosticOptions : Options;
        Linear.Forward(Features, Parameters[inW], Parameters[inB], stream[0]);
        for (var l = 0; l < Config.Layers; l++)
        {
            LayerNorm.Forward(stream[l], Parameters[lnW[l]], Parameters[lnB[l]], outputs: ln[l]);
            Linear.Forward(ln[l].Y, Parameters[wq[l]], null, q[l]);
            Linear.Forward(ln[l].Y, Parameters[wk[l]], null, k[l]);
            Linear.Forward(ln[l].Y, Parameters[wv[l]], null, v[l]);
            Permute.SwapMiddle(q[l], 1, nodes, heads, headDim, qh[l]);
            Permute.SwapMiddle(k[l], 1, nodes, heads, headDim, kh[l]);
            Permute.SwapMiddle(v[l], 1, nodes, heads, headDim, vh[l]);
            GraphAttention.Forward(graph, qh[l], kh[l], vh[l], options, att[l]);
            Permute.SwapMiddle(att[l].Output, 1, heads, nodes, headDim, oFlat[l]);
            Linear.Forward(oFlat[l], Parameters[wo[l]], null, mixed);
            Residual.Add(stream[l], mixed, stream[l + 1]);
        }
        LayerNorm.Forward(stream[^1], Parameters[lnfW], Parameters[lnfB], outputs: lnf);
        Linear.Forward(lnf.Y, Parameters[headW], Parameters[headB], logits);
        CrossEntropy.Forward(logits, Targets, outputs: ce);
    }

    private LinearGradients? gHead, gIn;
    private LayerNormGradients? gLnf;
    private LinearGradients[]? gQ, gK, gV, gO;
    private LayerNormGradients[]? gLn;

    /// <summary>Writes every parameter's gradient of the last forward's loss into Parameters.Gradients.</summary>
    public void Backward()
    {
        var L = Config.Layers;
        var options = WantDiagnostics ? DiagnosticOptions : Options;
        gHead ??= new LinearGradients(dA, Parameters.Grad(headW), Parameters.Grad(headB));
        gLnf ??= new LayerNormGradients(dB, Parameters.Grad(lnfW), Parameters.Grad(lnfB));
        gIn ??= new LinearGradients(dFeatures, Parameters.Grad(inW), Parameters.Grad(inB));
        gQ ??= Enumerable.Range(0, L).Select(l => new LinearGradients(dLn, Parameters.Grad(wq[l]), null)).ToArray();
        gK ??= Enumerable.Range(0, L).Select(l => new LinearGradients(tmp, Parameters.Grad(wk[l]), null)).ToArray();
        gV ??= Enumerable.Range(0, L).Select(l => new LinearGradients(tmp, Parameters.Grad(wv[l]), null)).ToArray();
        gO ??= Enumerable.Range(0, L).Select(l => new LinearGradients(dO, Parameters.Grad(wo[l]), null)).ToArray();
        gLn ??= Enumerable.Range(0, L).Select(l => new LayerNormGradients(tmp, Parameters.Grad(lnW[l]), Parameters.Grad(lnB[l]))).ToArray();
        Linear.Backward(ce.DLogits, lnf.Y, Parameters[headW], true, gHead);
        LayerNorm.Backward(dA, stream[^1], Parameters[lnfW], lnf, gLnf);
        var dx = dB; // dL/dx_{l+1}, accumulated in place into dL/dx_l
        for (var l = L - 1; l >= 0; l--)
        {
            Linear.Backward(dx, oFlat[l], Parameters[wo[l]], false, gO[l]);
            Permute.SwapMiddle(dO, 1, nodes, heads, headDim, dOh);
            GraphAttention.Backward(graph, dOh, qh[l], kh[l], vh[l], att[l], options, attGrads);
            Permute.SwapMiddle(attGrads.DQ, 1, heads, nodes, headDim, dq);
            Permute.SwapMiddle(attGrads.DK, 1, heads, nodes, headDim, dk);
            Permute.SwapMiddle(attGrads.DV, 1, heads, nodes, headDim, dv);
            Linear.Backward(dq, ln[l].Y, Parameters[wq[l]], false, gQ[l]);
            Linear.Backward(dk, ln[l].Y, Parameters[wk[l]], false, gK[l]);
            Residual.AddInto(dLn, tmp);
            Linear.Backward(dv, ln[l].Y, Parameters[wv[l]], false, gV[l]);
            Residual.AddInto(dLn, tmp);
            LayerNorm.Backward(dLn, stream[l], Parameters[lnW[l]], ln[l], gLn[l]);
            Residual.AddInto(dx, tmp); // the residual path plus the block's
        }
        Linear.Backward(dx, Features, Parameters[inW], true, gIn);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in stream.Concat(q).Concat(k).Concat(v).Concat(qh).Concat(kh).Concat(vh).Concat(oFlat)) t.Dispose();
        foreach (var o in ln) o.Dispose();
        foreach (var a in att) a.Dispose();
        lnf.Dispose();
        ce.Dispose();
        foreach (var t in new[] { logits, dA, dB, dLn, dq, dk, dv, dO, dOh, tmp, mixed, dFeatures, Features, Targets }) t.Dispose();
        attGrads.Dispose();
        Parameters.Dispose();
    }
}

/// <summary>
/// The float64 executable spec of <see cref="GraphNetwork"/>: the same layers composed from the bindings' reference ops,
/// read from the same flat parameter vector (ParameterStore's layout), so finite differences check its backward.
/// </summary>
public static class GraphNetworkReference
{
    /// <summary>The mean cross-entropy over labelled nodes (targets -100 are ignored).</summary>
    public static double Loss(GraphNetworkConfig c, int[] rowPtr, int[] colIdx, IReadOnlyList<ParameterInfo> layout, double[] parameters,
        double[] features, int[] targets)
    {
        var n = rowPtr.Length - 1;
        int w = c.Width, h = c.Heads, d = c.Width / c.Heads;
        double[] P(string name) => ModelReference.Get(layout, parameters, name);
        var x = RouteKit.Reference.LinearReference.Forward(features, P("in.w"), P("in.b"), n, c.Features, w);
        int[] shape = [h, n, d];
        var options = new GraphAttentionOptions
        {
            Score = c.Score, NormalizeKeys = c.NormalizeKeys,
            BrakeSlopes = c.Brake > 0 ? Enumerable.Repeat(c.Brake, h).ToArray() : null,
        };
        var gp = GraphAttentionParams.Resolve(shape, shape, shape, n, colIdx.Length, options);
        for (var l = 0; l < c.Layers; l++)
        {
            var a = RouteKit.Reference.LayerNormReference.Forward(x, P($"g{l}.ln.w"), P($"g{l}.ln.b"), n, w, (double)LayerNorm.DefaultEps).Y;
            double[] Heads(string name) =>
                ModelReference.SwapMiddle(RouteKit.Reference.LinearReference.Forward(a, P(name), null, n, w, w), 1, n, h, d);
            var o = RouteKit.Reference.GraphAttentionReference.Forward(gp, rowPtr, colIdx, Heads($"g{l}.wq"), Heads($"g{l}.wk"), Heads($"g{l}.wv")).Output;
            var mixed = RouteKit.Reference.LinearReference.Forward(ModelReference.SwapMiddle(o, 1, h, n, d), P($"g{l}.wo"), null, n, w, w);
            for (var i = 0; i < x.Length; i++) x[i] += mixed[i];
        }
        var y = RouteKit.Reference.LayerNormReference.Forward(x, P("lnf.w"), P("lnf.b"), n, w, (double)LayerNorm.DefaultEps).Y;
        var logits = RouteKit.Reference.LinearReference.Forward(y, P("head.w"), P("head.b"), n, w, c.Classes);
        return RouteKit.Reference.CrossEntropyReference.Forward(logits, targets, n, c.Classes, CrossEntropy.DefaultIgnoreIndex).Mean;
    }
}
