// The depth routing of a depth-routed ByteLanguageModel (issue 13, ModelConfig.DepthRouted): block l's input is a
// DepthRouter mix over the embedding and every earlier block's output instead of the previous block's output alone.
//
//   o_0 = Embedding(ids);  o_{l+1} = Block_l(x_l)                 (the model keeps o_0 .. o_L as one [L+1, B*T, W] stack)
//   a_l = LN_l(o_l)  -> key stack K[l]                             (one LayerNorm per depth, written into the stack)
//   q_l = a_l W_q,l                                                [B*T, W] = [1, B*T, H, D]
//   x_l = DepthRouter(q_l, K[0..l], o[0..l]; score, key norm, brake m (l - j))
//
// Every key/value prefix is a Slice of a stack (layers outermost), so no copy; every buffer and every view is made at
// construction, so a step allocates nothing. Backward runs from the last block down: block l's backward gives dx_l,
// the router's backward adds dV into do_0..o_l and dK into dK_0..l; K[l]'s last reader is router l, so after it dK_l is
// complete and flows through W_q's input gradient and LN_l into do_l, which is then complete for block l-1.
namespace RouteKit.Engine.Models;

/// <summary>The depth routers of one depth-routed model (see the file header).</summary>
internal sealed class DepthMix : IDisposable
{
    private readonly ParameterStore ps;
    private readonly int[] lnW, lnB, wq;
    private readonly Tensor keyStack, dKeyStack, dValueScratch, dKeyScratch, dQuery, dA, dO, dIn, dInView;
    private readonly Tensor[] dKeySelf, keys, queries, queryViews, keyPrefix, valuePrefix, dKeyPrefix, dValuePrefix, dKeyGrad, dValueGrad, inputs;
    private readonly LayerNormOutput[] keyNorm;
    private readonly DepthRouterOutput[] routed;
    private readonly DepthRouterGradients[] grads;
    private readonly LinearGradients?[] queryGrads;   // made at the first backward (the gradient buffer exists after Allocate)
    private readonly LayerNormGradients?[] normGrads;
    private readonly List<IDisposable> owned = [];

    /// <summary>Declares the depth routers' parameters and allocates their buffers over the model's stream stack.</summary>
    /// <param name="device">Where every buffer lives.</param>
    /// <param name="ps">The model's parameter store (declares d{l}.ln.w, d{l}.ln.b, d{l}.wq).</param>
    /// <param name="c">The model's configuration.</param>
    /// <param name="batch">Sequences per batch B.</param>
    /// <param name="streams">The model's o_0 .. o_L stack, [L+1, B*T, W].</param>
    /// <param name="dStreams">Its gradient stack, same shape (the model clears it before each backward).</param>
    public DepthMix(Device device, ParameterStore ps, ModelConfig c, int batch, Tensor streams, Tensor dStreams)
    {
        this.ps = ps;
        int rows = batch * c.Context, w = c.Width, h = c.Heads, d = c.HeadDim, L = c.Layers;
        (lnW, lnB, wq) = (new int[L], new int[L], new int[L]);
        for (var l = 0; l < L; l++)
        {
            lnW[l] = ps.Declare($"d{l}.ln.w", [w], false, Init.Constant(1));
            lnB[l] = ps.Declare($"d{l}.ln.b", [w], false, Init.Constant(0));
            wq[l] = ps.Declare($"d{l}.wq", [w, w], true, Init.Normal(0.02));
        }
        Options = ModelReference.DepthOptionsFor(c);
        DiagnosticOptions = Options with { Diagnostics = true };

        keyStack = Own(device.Zeros(L, rows, w));
        dKeyStack = Own(device.Zeros(L, rows, w));
        dKeyScratch = Own(device.Zeros(L, rows, h, d));
        dValueScratch = Own(device.Zeros(L, rows, h, d));
        dQuery = Own(device.Zeros(1, rows, h, d));
        dA = Own(device.Zeros(rows, w));
        dO = Own(device.Zeros(rows, w));
        dIn = Own(device.Zeros(rows, w));
        dInView = dIn.Reshape(1, rows, h, d);
        (keys, queries, queryViews, keyPrefix, valuePrefix) = (new Tensor[L], new Tensor[L], new Tensor[L], new Tensor[L], new Tensor[L]);
        (dKeyPrefix, dValuePrefix, dKeyGrad, dValueGrad, inputs) = (new Tensor[L], new Tensor[L], new Tensor[L], new Tensor[L], new Tensor[L]);
        (keyNorm, routed, grads) = (new LayerNormOutput[L], new DepthRouterOutput[L], new DepthRouterGradients[L]);
        (queryGrads, normGrads) = (new LinearGradients?[L], new LayerNormGradients?[L]);
        dKeySelf = new Tensor[L];
        var plane = rows * w;
        for (var l = 0; l < L; l++)
        {
            keys[l] = keyStack.Slice(l * plane, rows, w);
            dKeySelf[l] = dKeyStack.Slice(l * plane, rows, w);
            keyNorm[l] = new LayerNormOutput(keys[l], Own(device.Zeros(rows)), Own(device.Zeros(rows)));
            queries[l] = Own(device.Zeros(rows, w));
            queryViews[l] = queries[l].Reshape(1, rows, h, d);
            keyPrefix[l] = keyStack.Slice(0, l + 1, rows, h, d);
            valuePrefix[l] = streams.Slice(0, l + 1, rows, h, d);
            inputs[l] = Own(device.Zeros(rows, w));
            routed[l] = new DepthRouterOutput(inputs[l].Reshape(1, rows, h, d), Own(device.Zeros(1, rows, h, 2)));
            grads[l] = new DepthRouterGradients(dQuery, dKeyScratch.Slice(0, l + 1, rows, h, d), dValueScratch.Slice(0, l + 1, rows, h, d));
            dKeyGrad[l] = dKeyScratch.Slice(0, (l + 1) * rows, w);
            dValueGrad[l] = dValueScratch.Slice(0, (l + 1) * rows, w);
            dKeyPrefix[l] = dKeyStack.Slice(0, (l + 1) * rows, w);
            dValuePrefix[l] = dStreams.Slice(0, (l + 1) * rows, w);
        }
        DQueryFlat = dQuery.Reshape(rows, w);
    }

    private Tensor DQueryFlat { get; }

    /// <summary>The depth routers' options.</summary>
    public DepthRouterOptions Options { get; }

    /// <summary>The same with the fused diagnostics on.</summary>
    public DepthRouterOptions DiagnosticOptions { get; }


    /// <summary>Block l's input x_l [B*T, W] of the last forward.</summary>
    public Tensor Input(int l) => inputs[l];

    /// <summary>
    /// Depth router l of the last forward again, with the fused diagnostics (normalised entropy over depth, max prob,
    /// embedding mass per token and head) into fresh outputs the caller disposes: for evaluation, outside a step.
    /// </summary>
    public DepthRouterOutput Diagnose(int l) => DepthRouter.Forward(queryViews[l], keyPrefix[l], valuePrefix[l], DiagnosticOptions);

    /// <summary>The keys k_0 .. k_l of router l, [l+1, B*T, H, D].</summary>
    public Tensor Keys(int l) => keyPrefix[l];

    /// <summary>
    /// Routes block l's input from o_0 .. o_l (o_l must already be in the stream stack): writes the key k_l, the query
    /// q_l and x_l = <see cref="Input"/>(l).
    /// </summary>
    public Tensor Forward(int l, Tensor streamL)
    {
        LayerNorm.Forward(streamL, ps[lnW[l]], ps[lnB[l]], outputs: keyNorm[l]);
        Linear.Forward(keys[l], ps[wq[l]], null, queries[l]);
        DepthRouter.Forward(queryViews[l], keyPrefix[l], valuePrefix[l], Options, routed[l]);
        return inputs[l];
    }

    /// <summary>The [B*T, W] buffer block l's backward writes dx_l into, for <see cref="Backward"/>.</summary>
    public Tensor InputGradient => dIn;

    /// <summary>Clears the key gradient stack (once per backward, before the last block's).</summary>
    public void BeginBackward() => dKeyStack.Clear();

    /// <summary>
    /// From dx_l (in <see cref="InputGradient"/>): adds router l's value gradients into dO_0..l and its key gradients into
    /// dK_0..l, then (dK_l now complete) adds LN_l's input gradient of dK_l + dq_l W_q,l into dO_l.
    /// </summary>
    public void Backward(int l, Tensor streamL, Tensor dStreamL)
    {
        DepthRouter.Backward(dInView, queryViews[l], keyPrefix[l], valuePrefix[l], routed[l], Options, grads[l]);
        Residual.AddInto(dValuePrefix[l], dValueGrad[l]);
        Residual.AddInto(dKeyPrefix[l], dKeyGrad[l]);
        queryGrads[l] ??= new LinearGradients(dA, ps.Grad(wq[l]), null);
        normGrads[l] ??= new LayerNormGradients(dO, ps.Grad(lnW[l]), ps.Grad(lnB[l]));
        Linear.Backward(DQueryFlat, keys[l], ps[wq[l]], false, queryGrads[l]);
        Residual.AddInto(dA, dKeySelf[l]);
        LayerNorm.Backward(dA, streamL, ps[lnW[l]], keyNorm[l], normGrads[l]!);
        Residual.AddInto(dStreamL, dO);
    }

    private T Own<T>(T t) where T : IDisposable
    {
        owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        foreach (var d in owned) d.Dispose();
    }
}
