// A small causal language model over bytes (vocab 256) whose token mixer is any RouteKit router (issue 11), in llm.c's
// style: every parameter a view of one flat buffer (ParameterStore), every activation preallocated for one batch shape
// at construction, an explicit backward that writes every parameter's gradient once per step, so a training step
// allocates nothing and (inside Device.BeginStep) reads nothing back but what the caller asks for.
//
//   x0 = Embedding(ids)                                   [B*T, W]
//   block l: a = LN1(x);  x' = x + Mixer(a);  x'' = x' + W2 GELU(W1 LN2(x') + b1) + b2
//   logits = Head(LNf(x_L))                               [B*T, 256];  loss = mean CrossEntropy(logits, targets)
namespace RouteKit.Engine.Models;

/// <summary>One block: pre-norm mixer and MLP, each with a residual connection.</summary>
internal sealed class Block : IDisposable
{
    private readonly ParameterStore ps;
    private readonly int ln1w, ln1b, ln2w, ln2b, w1, b1, w2, b2;
    private readonly LayerNormOutput ln1, ln2;
    private readonly Tensor mixed, x1, h, g, dg, dh, dln2, dx1, dln1, f;
    private LayerNormGradients? gLn1, gLn2;
    private LinearGradients? gW1, gW2;

    public Block(Device device, ParameterStore ps, ModelConfig c, int layer, int batch)
    {
        this.ps = ps;
        var w = c.Width;
        var rows = batch * c.Context;
        ln1w = ps.Declare($"h{layer}.ln1.w", [w], false, Init.Constant(1));
        ln1b = ps.Declare($"h{layer}.ln1.b", [w], false, Init.Constant(0));
        Mixer = c.Mixer switch
        {
            MixerKind.Attention => new AttentionMixer(device, ps, c, layer, batch),
            MixerKind.Mamba => new MambaMixer(device, ps, c, layer, batch),
            _ => (IMixer)new RecurrentMixer(device, ps, c, layer, batch),
        };
        ln2w = ps.Declare($"h{layer}.ln2.w", [w], false, Init.Constant(1));
        ln2b = ps.Declare($"h{layer}.ln2.b", [w], false, Init.Constant(0));
        w1 = ps.Declare($"h{layer}.mlp.w1", [4 * w, w], true, Init.Normal(0.02));
        b1 = ps.Declare($"h{layer}.mlp.b1", [4 * w], false, Init.Constant(0));
        w2 = ps.Declare($"h{layer}.mlp.w2", [w, 4 * w], true, Init.Normal(0.02 / Math.Sqrt(2 * c.Layers)));
        b2 = ps.Declare($"h{layer}.mlp.b2", [w], false, Init.Constant(0));
        ln1 = new LayerNormOutput(device.Zeros(rows, w), device.Zeros(rows), device.Zeros(rows));
        ln2 = new LayerNormOutput(device.Zeros(rows, w), device.Zeros(rows), device.Zeros(rows));
        mixed = device.Zeros(rows, w);
        x1 = device.Zeros(rows, w);
        f = device.Zeros(rows, w);
        h = device.Zeros(rows, 4 * w);
        g = device.Zeros(rows, 4 * w);
        dg = device.Zeros(rows, 4 * w);
        dh = device.Zeros(rows, 4 * w);
        dln2 = device.Zeros(rows, w);
        dx1 = device.Zeros(rows, w);
        dln1 = device.Zeros(rows, w);
    }

    /// <summary>The block's token mixer.</summary>
    public IMixer Mixer { get; }

    /// <summary>The mixer's output of the last forward [B*T, W] (before the residual add).</summary>
    public Tensor MixerOutput => mixed;

    public void Forward(Tensor x, Tensor y)
    {
        LayerNorm.Forward(x, ps[ln1w], ps[ln1b], outputs: ln1);
        Mixer.Forward(ln1.Y, mixed);
        Residual.Add(x, mixed, x1);
        LayerNorm.Forward(x1, ps[ln2w], ps[ln2b], outputs: ln2);
        Linear.Forward(ln2.Y, ps[w1], ps[b1], h);
        Gelu.Forward(h, GeluForm.Tanh, g);
        Linear.Forward(g, ps[w2], ps[b2], f);
        Residual.Add(x1, f, y);
    }

    /// <summary>dx (overwritten) from dy = dL/d(block output), for the x of the last forward.</summary>
    public void Backward(Tensor dy, Tensor x, Tensor dx)
    {
        gW2 ??= new LinearGradients(dg, ps.Grad(w2), ps.Grad(b2));
        gW1 ??= new LinearGradients(dln2, ps.Grad(w1), ps.Grad(b1));
        gLn2 ??= new LayerNormGradients(dx1, ps.Grad(ln2w), ps.Grad(ln2b));
        if (gLn1 is null || !ReferenceEquals(gLn1.DX, dx)) gLn1 = new LayerNormGradients(dx, ps.Grad(ln1w), ps.Grad(ln1b));
        Linear.Backward(dy, g, ps[w2], true, gW2);
        Gelu.Backward(dg, h, GeluForm.Tanh, dh);
        Linear.Backward(dh, ln2.Y, ps[w1], true, gW1);
        LayerNorm.Backward(dln2, x1, ps[ln2w], ln2, gLn2);
        Residual.AddInto(dx1, dy);
        Mixer.Backward(dx1, ln1.Y, dln1);
        LayerNorm.Backward(dln1, x, ps[ln1w], ln1, gLn1);
        Residual.AddInto(dx, dx1);
    }

    public void Dispose()
    {
        Mixer.Dispose();
        ln1.Dispose();
        ln2.Dispose();
        foreach (var t in new[] { mixed, x1, f, h, g, dg, dh, dln2, dx1, dln1 }) t.Dispose();
    }
}

/// <summary>
/// A byte-level causal language model for one batch shape [B, T] on one device. Fill <see cref="Ids"/> and
/// <see cref="Targets"/> (float-coded bytes, [B*T]) with CopyFrom, call <see cref="Forward"/> then <see cref="Backward"/>;
/// gradients land in <see cref="Parameters"/>.Gradients (overwritten each backward).
/// </summary>
public sealed class ByteLanguageModel : IDisposable
{
    private readonly Block[] blocks;
    private readonly Tensor streams;      // o_0 .. o_L as one [L+1, B*T, W] stack (the depth routers' values)
    private readonly Tensor[] stream;     // views: residual stream x_0 .. x_L (block outputs), each [B*T, W]
    private readonly Tensor? dStreams;    // depth-routed: the gradient stack of o_0 .. o_L
    private readonly Tensor[]? dStream;   // views of dStreams
    private readonly DepthMix? depth;
    private readonly Tensor dA, dB;       // gradient of the residual stream, ping-pong
    private readonly Tensor logits;
    private readonly LayerNormOutput lnf;
    private readonly CrossEntropyOutput ce;
    private readonly int table, lnfw, lnfb, head;
    private LinearGradients? gHead;
    private LayerNormGradients? gLnf;

    /// <summary>Builds the model and its buffers for batches of <paramref name="batch"/> sequences.</summary>
    /// <exception cref="ArgumentException">The configuration is invalid (the message is <see cref="ModelConfig.Validate"/>'s).</exception>
    public ByteLanguageModel(Device device, ModelConfig config, int batch)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(config);
        if (config.Validate() is { } problem) throw new ArgumentException(problem, nameof(config));
        if (batch < 1) throw new ArgumentException($"batch is {batch}; wanted at least 1.", nameof(batch));
        Device = device;
        Config = config;
        Batch = batch;
        var w = config.Width;
        var rows = batch * config.Context;
        Parameters = new ParameterStore();
        table = Parameters.Declare("wte", [ModelConfig.Vocabulary, w], true, Init.Normal(0.02));
        blocks = new Block[config.Layers];
        for (var l = 0; l < config.Layers; l++) blocks[l] = new Block(device, Parameters, config, l, batch);
        streams = device.Zeros(config.Layers + 1, rows, w);
        stream = new Tensor[config.Layers + 1];
        for (var l = 0; l <= config.Layers; l++) stream[l] = streams.Slice(l * rows * w, rows, w);
        lnfw = Parameters.Declare("lnf.w", [w], false, Init.Constant(1));
        lnfb = Parameters.Declare("lnf.b", [w], false, Init.Constant(0));
        head = config.TiedHead ? table : Parameters.Declare("head", [ModelConfig.Vocabulary, w], true, Init.Normal(0.02));
        // The depth routers' parameters come last, so every other parameter starts as in the plain model of the same seed
        // (the plain model is the depth-routed one's limit of a large brake).
        if (config.DepthRouted)
        {
            dStreams = device.Zeros(config.Layers + 1, rows, w);
            dStream = new Tensor[config.Layers + 1];
            for (var l = 0; l <= config.Layers; l++) dStream[l] = dStreams.Slice(l * rows * w, rows, w);
            depth = new DepthMix(device, Parameters, config, batch, streams, dStreams);
        }
        Parameters.Allocate(device, config.Seed);
        dA = device.Zeros(rows, w);
        dB = device.Zeros(rows, w);
        logits = device.Zeros(rows, ModelConfig.Vocabulary);
        lnf = new LayerNormOutput(device.Zeros(rows, w), device.Zeros(rows), device.Zeros(rows));
        ce = new CrossEntropyOutput(device.Zeros(rows), device.Zeros(1), device.Zeros(rows, ModelConfig.Vocabulary));
        Ids = device.Zeros(rows);
        Targets = device.Zeros(rows);
    }

    /// <summary>The device everything lives on.</summary>
    public Device Device { get; }
    /// <summary>The configuration.</summary>
    public ModelConfig Config { get; }
    /// <summary>Sequences per batch B.</summary>
    public int Batch { get; }
    /// <summary>Parameters, gradients and AdamW moments.</summary>
    public ParameterStore Parameters { get; }
    /// <summary>Input bytes [B*T] as floats 0..255.</summary>
    public Tensor Ids { get; }
    /// <summary>Target bytes [B*T] as floats 0..255 (or -100 to ignore a position).</summary>
    public Tensor Targets { get; }
    /// <summary>The mean loss of the last forward [1], on the device.</summary>
    public Tensor Loss => ce.Mean;
    /// <summary>Per-position losses of the last forward [B*T].</summary>
    public Tensor Losses => ce.Losses;
    /// <summary>The last forward's logits [B*T, 256].</summary>
    public Tensor Logits => logits;

    internal IReadOnlyList<Block> Blocks => blocks;

    /// <summary>
    /// The residual stream entering block l (l = L: the final one) of the last forward; for a depth-routed model, o_l
    /// (the embedding, then block l-1's output), from which the depth router mixes block l's input.
    /// </summary>
    public Tensor Stream(int l) => stream[l];

    /// <summary>The depth routers of a depth-routed model (null otherwise).</summary>
    internal DepthMix? Depth => depth;

    /// <summary>Block l's input of the last forward: o_l, or for a depth-routed model the routed mix x_l.</summary>
    public Tensor BlockInput(int l) => depth is null ? stream[l] : depth.Input(l);

    /// <summary>Computes logits and the loss (and, in the same pass, dlogits for <see cref="Backward"/>).</summary>
    public void Forward()
    {
        Embedding.Forward(Parameters[table], Ids, stream[0]);
        for (var l = 0; l < blocks.Length; l++)
            blocks[l].Forward(depth is null ? stream[l] : depth.Forward(l, stream[l]), stream[l + 1]);
        LayerNorm.Forward(stream[^1], Parameters[lnfw], Parameters[lnfb], outputs: lnf);
        Linear.Forward(lnf.Y, Parameters[head], null, logits);
        CrossEntropy.Forward(logits, Targets, outputs: ce);
    }

    /// <summary>Writes every parameter's gradient of the last forward's mean loss into Parameters.Gradients.</summary>
    public void Backward()
    {
        // With a tied head the head's gradient is written first into the table's gradient, and the embedding's
        // backward adds to it; untied, the table's gradient starts at zero.
        gHead ??= new LinearGradients(dA, Parameters.Grad(head), null);
        gLnf ??= new LayerNormGradients(dStream is null ? dB : dStream[^1], Parameters.Grad(lnfw), Parameters.Grad(lnfb));
        Linear.Backward(ce.DLogits, lnf.Y, Parameters[head], false, gHead);
        if (depth is not null)
        {
            BackwardDepthRouted();
            return;
        }
        LayerNorm.Backward(dA, stream[^1], Parameters[lnfw], lnf, gLnf);
        Tensor dy = dB, dx = dA;
        for (var l = blocks.Length - 1; l >= 0; l--)
        {
            blocks[l].Backward(dy, stream[l], dx);
            (dy, dx) = (dx, dy);
        }
        if (!Config.TiedHead) Parameters.Grad(table).Clear();
        Embedding.Backward(dy, Ids, Parameters.Grad(table));
    }

    // Depth-routed: dO_L from the final LayerNorm, then per block (last first) the block's backward into dx_l and the
    // depth router's into dO_0..l (DepthMix.Backward); dO_l is complete once block l's router has run.
    private void BackwardDepthRouted()
    {
        dStreams!.Clear();
        depth!.BeginBackward();
        LayerNorm.Backward(dA, stream[^1], Parameters[lnfw], lnf, gLnf!);
        for (var l = blocks.Length - 1; l >= 0; l--)
        {
            blocks[l].Backward(dStream![l + 1], depth.Input(l), depth.InputGradient);
            depth.Backward(l, stream[l], dStream[l]);
        }
        if (!Config.TiedHead) Parameters.Grad(table).Clear();
        Embedding.Backward(dStream![0], Ids, Parameters.Grad(table));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var b in blocks) b.Dispose();
        streams.Dispose();
        dStreams?.Dispose();
        depth?.Dispose();
        dA.Dispose();
        dB.Dispose();
        logits.Dispose();
        lnf.Dispose();
        ce.Dispose();
        Ids.Dispose();
        Targets.Dispose();
        Parameters.Dispose();
    }
}
