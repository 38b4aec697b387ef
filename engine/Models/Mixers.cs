// The three token mixers of a block, each with an explicit backward over RouteKit's ops (llm.c's style: every
// activation a preallocated buffer, every gradient written by the op that owns it, no autograd). Layout: activations
// token-major [B*T, C]; the scans and attention read channel-major or head-major copies made by Permute.SwapMiddle.
// Gradients of parameters are written into views of the model's flat gradient buffer (overwritten, once per step).
namespace RouteKit.Engine.Models;

/// <summary>A token mixer y = f(x) over [B*T, W] activations, with its backward.</summary>
internal interface IMixer : IDisposable
{
    /// <summary>y = mixer(x); keeps what the backward needs.</summary>
    void Forward(Tensor x, Tensor y);

    /// <summary>dx (overwritten) and the parameter gradients from dy, for the x of the last Forward.</summary>
    void Backward(Tensor dy, Tensor x, Tensor dx);

    /// <summary>The mixer's output of the last Forward before its out-projection, [B*T, C] (for collapse measures).</summary>
    Tensor Mixed { get; }
}

/// <summary>Buffers owned by a mixer, disposed with it.</summary>
internal abstract class MixerBase : IDisposable
{
    private readonly List<IDisposable> owned = [];

    protected T Own<T>(T t) where T : IDisposable
    {
        owned.Add(t);
        return t;
    }

    public void Dispose()
    {
        foreach (var d in owned) d.Dispose();
    }

    /// <summary>A [rows, cols] tensor of ones: the constant input of a content-free mixer's routing projections.</summary>
    protected static Tensor Ones(Device device, int rows, int cols) => device.FromArray(Enumerable.Repeat(1f, rows * cols).ToArray(), rows, cols);
}

/// <summary>Causal multi-head attention: q, k, v projections, RouteKit's fused attention (Dot or Distance, NormalizeKeys,
/// ALiBi slopes times the brake), out-projection.</summary>
internal sealed class AttentionMixer : MixerBase, IMixer
{
    private readonly ParameterStore ps;
    private readonly int wq, wk, wv, wo, b, t, h, d;
    private readonly Tensor q, k, v, qh, kh, vh, o, dO, dOh, dq, dk, dv, tmp;
    private readonly Tensor? ones; // ModelConfig.ContentFree: the constant input of the query and key projections
    private readonly AttentionOutput att;
    private readonly AttentionGradients attGrads;

    public AttentionMixer(Device device, ParameterStore ps, ModelConfig c, int layer, int batch)
    {
        this.ps = ps;
        (b, t, h, d) = (batch, c.Context, c.Heads, c.HeadDim);
        var w = c.Width;
        var std = 0.02;
        wq = ps.Declare($"h{layer}.attn.wq", [w, w], true, Init.Normal(std));
        wk = ps.Declare($"h{layer}.attn.wk", [w, w], true, Init.Normal(std));
        wv = ps.Declare($"h{layer}.attn.wv", [w, w], true, Init.Normal(std));
        wo = ps.Declare($"h{layer}.attn.wo", [w, w], true, Init.Normal(std / Math.Sqrt(2 * c.Layers)));
        var rows = b * t;
        q = Own(device.Zeros(rows, w)); k = Own(device.Zeros(rows, w)); v = Own(device.Zeros(rows, w));
        qh = Own(device.Zeros(b, h, t, d)); kh = Own(device.Zeros(b, h, t, d)); vh = Own(device.Zeros(b, h, t, d));
        o = Own(device.Zeros(rows, w)); dO = Own(device.Zeros(rows, w)); dOh = Own(device.Zeros(b, h, t, d));
        dq = Own(device.Zeros(rows, w)); dk = Own(device.Zeros(rows, w)); dv = Own(device.Zeros(rows, w));
        tmp = Own(device.Zeros(rows, w));
        if (c.ContentFree) ones = Own(Ones(device, rows, w));
        att = Own(AttentionOutput.Allocate(device, b, h, t, d, diagnostics: true));
        attGrads = Own(new AttentionGradients(device.Zeros(b, h, t, d), device.Zeros(b, h, t, d), device.Zeros(b, h, t, d)));
        Options = new AttentionOptions
        {
            Causal = true, Score = c.Score, NormalizeKeys = c.NormalizeKeys,
            BrakeSlopes = c.Brake > 0 ? AttentionOptions.AlibiSlopes(h).Select(s => s * c.Brake).ToArray() : null,
        };
        DiagnosticOptions = Options with { Diagnostics = true };
    }

    /// <summary>The attention options of the forward.</summary>
    public AttentionOptions Options { get; }

    /// <summary>The same options with the fused diagnostics on.</summary>
    public AttentionOptions DiagnosticOptions { get; }

    /// <summary>Whether the next forward computes the diagnostics (entropy, sink mass, max prob per row).</summary>
    public bool WantDiagnostics { get; set; }

    /// <summary>The last forward's attention output (Diagnostics filled when <see cref="WantDiagnostics"/> was set).</summary>
    public AttentionOutput Last => att;

    public Tensor Mixed => o;

    /// <summary>Queries [B, H, T, D] of the last forward.</summary>
    public Tensor Queries => qh;

    /// <summary>Keys [B, H, T, D] of the last forward.</summary>
    public Tensor Keys => kh;

    /// <summary>Values [B, H, T, D] of the last forward.</summary>
    public Tensor Values => vh;

    private LinearGradients? lo, lq, lk, lv;

    public void Forward(Tensor x, Tensor y)
    {
        Linear.Forward(ones ?? x, ps[wq], null, q);
        Linear.Forward(ones ?? x, ps[wk], null, k);
        Linear.Forward(x, ps[wv], null, v);
        Permute.SwapMiddle(q, b, t, h, d, qh);
        Permute.SwapMiddle(k, b, t, h, d, kh);
        Permute.SwapMiddle(v, b, t, h, d, vh);
        Attention.Forward(qh, kh, vh, WantDiagnostics ? DiagnosticOptions : Options, att);
        Permute.SwapMiddle(att.Output, b, h, t, d, o);
        Linear.Forward(o, ps[wo], null, y);
    }

    public void Backward(Tensor dy, Tensor x, Tensor dx)
    {
        lo ??= new LinearGradients(dO, ps.Grad(wo), null);
        lk ??= new LinearGradients(tmp, ps.Grad(wk), null);
        if (ones is null)
        {
            lq ??= new LinearGradients(dx, ps.Grad(wq), null);
            lv ??= new LinearGradients(tmp, ps.Grad(wv), null);
            if (!ReferenceEquals(lq.DX, dx)) lq = new LinearGradients(dx, ps.Grad(wq), null);
        }
        else
        {
            // Content-free: q and k read the constant input, so only V's projection reaches dx.
            lq ??= new LinearGradients(tmp, ps.Grad(wq), null);
            lv ??= new LinearGradients(dx, ps.Grad(wv), null);
            if (!ReferenceEquals(lv.DX, dx)) lv = new LinearGradients(dx, ps.Grad(wv), null);
        }
        Linear.Backward(dy, o, ps[wo], false, lo);
        Permute.SwapMiddle(dO, b, t, h, d, dOh);
        Attention.Backward(dOh, qh, kh, vh, att, WantDiagnostics ? DiagnosticOptions : Options, attGrads);
        Permute.SwapMiddle(attGrads.DQ, b, h, t, d, dq);
        Permute.SwapMiddle(attGrads.DK, b, h, t, d, dk);
        Permute.SwapMiddle(attGrads.DV, b, h, t, d, dv);
        if (ones is not null)
        {
            Linear.Backward(dq, ones, ps[wq], false, lq);
            Linear.Backward(dk, ones, ps[wk], false, lk);
            Linear.Backward(dv, x, ps[wv], false, lv);
            return;
        }
        Linear.Backward(dq, x, ps[wq], false, lq);
        Linear.Backward(dk, x, ps[wk], false, lk);
        Residual.AddInto(dx, tmp);
        Linear.Backward(dv, x, ps[wv], false, lv);
        Residual.AddInto(dx, tmp);
    }
}

/// <summary>
/// Mamba's block (the MambaInnerFn path, explicit backward): x and z in-projections, causal depthwise conv, SiLU,
/// x-projections to Δ (rank R), B and C, Δ projection, the selective scan with softplus(Δ + bias), D skip and SiLU(z)
/// gate fused, out-projection.
/// </summary>
internal sealed class MambaMixer : MixerBase, IMixer
{
    private readonly ParameterStore ps;
    private readonly int inX, inZ, convW, convB, xDt, xB, xC, dtW, dtBias, aLog, dSkip, outW, b, t, e, n, r;
    private readonly Tensor xin, z, xc, xs, dtl, bm, cm, dtr, aNeg, u, delta, bt, ct, zt, yt;
    private readonly Tensor dyt, dyc, dxs, dtmpE, ddtr, ddtl, dbm, dcm, dxc, dxin, dz, dtmpW, dAneg;
    private readonly SelectiveScanOptions options = new() { DeltaSoftplus = true };
    private readonly SelectiveScanOutput scan;
    private SelectiveScanInputs inputs = null!;
    private SelectiveScanGradients scanGrads = null!;
    private readonly Tensor du, ddelta, dbt, dct, dzt, xin3, xc3, dxc3, dxin3;
    private readonly Tensor? ones;       // ModelConfig.ContentFree: the constant input of the Δ, B and C projections
    private readonly Tensor? logScale;   // ln(DecayScale) [E, N] when DecayScale != 1
    private readonly Tensor? aLogScaled; // A_log + ln(DecayScale) [E, N]

    public MambaMixer(Device device, ParameterStore ps, ModelConfig c, int layer, int batch)
    {
        this.ps = ps;
        (b, t, e, n, r) = (batch, c.Context, c.Inner, c.States, c.DeltaRank);
        var w = c.Width;
        var k = c.ConvWidth;
        var p = $"h{layer}.mamba";
        inX = ps.Declare($"{p}.in_x", [e, w], true, Init.Normal(0.02));
        inZ = ps.Declare($"{p}.in_z", [e, w], true, Init.Normal(0.02));
        convW = ps.Declare($"{p}.conv_w", [e, k], false, Init.Uniform(1 / Math.Sqrt(k)));
        convB = ps.Declare($"{p}.conv_b", [e], false, Init.Constant(0));
        xDt = ps.Declare($"{p}.x_dt", [r, e], true, Init.Normal(0.02));
        xB = ps.Declare($"{p}.x_b", [n, e], true, Init.Normal(0.02));
        xC = ps.Declare($"{p}.x_c", [n, e], true, Init.Normal(0.02));
        dtW = ps.Declare($"{p}.dt_w", [e, r], true, Init.Uniform(1 / Math.Sqrt(r)));
        // Mamba's Δ bias: softplus^-1 of Δ drawn log-uniformly in [1e-3, 1e-1].
        dtBias = ps.Declare($"{p}.dt_bias", [e], false, Init.Custom, static (_, g) =>
        {
            var dt = Math.Exp(Math.Log(1e-3) + g.NextDouble() * (Math.Log(1e-1) - Math.Log(1e-3)));
            return dt + Math.Log(1 - Math.Exp(-dt));
        });
        // S4D-real: A[c, s] = -(s + 1), stored as log.
        var states = n;
        aLog = ps.Declare($"{p}.a_log", [e, n], false, Init.Custom, (i, _) => Math.Log(i % states + 1));
        dSkip = ps.Declare($"{p}.d", [e], false, Init.Constant(1));
        outW = ps.Declare($"{p}.out", [w, e], true, Init.Normal(0.02 / Math.Sqrt(2 * c.Layers)));
        var rows = b * t;
        xin = Own(device.Zeros(rows, e)); z = Own(device.Zeros(rows, e)); xc = Own(device.Zeros(rows, e)); xs = Own(device.Zeros(rows, e));
        dtl = Own(device.Zeros(rows, r)); bm = Own(device.Zeros(rows, n)); cm = Own(device.Zeros(rows, n)); dtr = Own(device.Zeros(rows, e));
        aNeg = Own(device.Zeros(e, n));
        u = Own(device.Zeros(b, e, t)); delta = Own(device.Zeros(b, e, t)); bt = Own(device.Zeros(b, n, t)); ct = Own(device.Zeros(b, n, t));
        zt = Own(device.Zeros(b, e, t)); yt = Own(device.Zeros(rows, e));
        dyt = Own(device.Zeros(rows, e)); dyc = Own(device.Zeros(b, e, t)); dxs = Own(device.Zeros(rows, e)); dtmpE = Own(device.Zeros(rows, e));
        ddtr = Own(device.Zeros(rows, e)); ddtl = Own(device.Zeros(rows, r)); dbm = Own(device.Zeros(rows, n)); dcm = Own(device.Zeros(rows, n));
        dxc = Own(device.Zeros(rows, e)); dxin = Own(device.Zeros(rows, e)); dz = Own(device.Zeros(rows, e)); dtmpW = Own(device.Zeros(rows, w));
        dAneg = Own(device.Zeros(e, n));
        du = Own(device.Zeros(b, e, t)); ddelta = Own(device.Zeros(b, e, t)); dbt = Own(device.Zeros(b, n, t)); dct = Own(device.Zeros(b, n, t));
        dzt = Own(device.Zeros(b, e, t));
        (xin3, xc3, dxc3, dxin3) = (xin.Reshape(b, t, e), xc.Reshape(b, t, e), dxc.Reshape(b, t, e), dxin.Reshape(b, t, e));
        if (c.ContentFree) ones = Own(Ones(device, rows, e));
        if (c.DecayScale != 1f)
        {
            logScale = Own(device.FromArray(Enumerable.Repeat((float)Math.Log(c.DecayScale), e * n).ToArray(), e, n));
            aLogScaled = Own(device.Zeros(e, n));
        }
        scan = Own(new SelectiveScanOutput(device.Zeros(b, e, t), device.Zeros(b, e, n),
            device.Zeros(b, e, (t + SelectiveScan.ChunkLength - 1) / SelectiveScan.ChunkLength, n), device.Zeros(b, e, t)));
    }

    public Tensor Mixed => yt;

    /// <summary>Δ before bias and softplus [B, E, T] of the last forward.</summary>
    public Tensor DeltaPreActivation => delta;

    /// <summary>The Δ bias parameter [E].</summary>
    public Tensor DeltaBias => ps[dtBias];

    /// <summary>A = -exp(A_log) [E, N] of the last forward.</summary>
    public Tensor A => aNeg;

    /// <summary>B [B, N, T] of the last forward.</summary>
    public Tensor BProjection => bt;

    /// <summary>C [B, N, T] of the last forward.</summary>
    public Tensor CProjection => ct;

    private void Bind()
    {
        if (scanGrads is not null) return;
        inputs = new SelectiveScanInputs { U = u, Delta = delta, A = aNeg, B = bt, C = ct, D = ps[dSkip], Z = zt, DeltaBias = ps[dtBias] };
        scanGrads = new SelectiveScanGradients(du, ddelta, dAneg, dbt, dct, ps.Grad(dSkip), dzt, ps.Grad(dtBias), null);
        gOut = new LinearGradients(dyt, ps.Grad(outW), null);
        gDt = new LinearGradients(ddtl, ps.Grad(dtW), null);
        gXdt = new LinearGradients(dxs, ps.Grad(xDt), null);
        if (ones is not null) gXdtConst = new LinearGradients(dtmpE, ps.Grad(xDt), null);
        gXb = new LinearGradients(dtmpE, ps.Grad(xB), null);
        gXc = new LinearGradients(dtmpE, ps.Grad(xC), null);
        conv = new Conv1dGradients(dxin3, ps.Grad(convW), ps.Grad(convB));
    }

    private LinearGradients gOut = null!, gDt = null!, gXdt = null!, gXb = null!, gXc = null!;
    private LinearGradients? gXdtConst;
    private LinearGradients? gInX, gInZ;
    private Conv1dGradients conv = null!;

    public void Forward(Tensor x, Tensor y)
    {
        Bind();
        Linear.Forward(x, ps[inX], null, xin);
        Linear.Forward(x, ps[inZ], null, z);
        Conv1d.Forward(xin3, ps[convW], ps[convB], xc3);
        Silu.Forward(xc, xs);
        Linear.Forward(ones ?? xs, ps[xDt], null, dtl);
        Linear.Forward(ones ?? xs, ps[xB], null, bm);
        Linear.Forward(ones ?? xs, ps[xC], null, cm);
        Linear.Forward(dtl, ps[dtW], null, dtr);
        if (logScale is not null)
        {
            // A = -exp(A_log + ln m) = -m exp(A_log); d/dA_log is the same as without the constant shift.
            Residual.Add(ps[aLog], logScale, aLogScaled!);
            NegExp.Forward(aLogScaled!, aNeg);
        }
        else
            NegExp.Forward(ps[aLog], aNeg);
        Permute.SwapMiddle(xs, b, t, e, 1, u);
        Permute.SwapMiddle(dtr, b, t, e, 1, delta);
        Permute.SwapMiddle(bm, b, t, n, 1, bt);
        Permute.SwapMiddle(cm, b, t, n, 1, ct);
        Permute.SwapMiddle(z, b, t, e, 1, zt);
        SelectiveScan.Forward(inputs, options, scan);
        Permute.SwapMiddle(scan.Output, b, e, t, 1, yt);
        Linear.Forward(yt, ps[outW], null, y);
    }

    public void Backward(Tensor dy, Tensor x, Tensor dx)
    {
        Bind();
        if (gInX is null || !ReferenceEquals(gInX.DX, dx)) gInX = new LinearGradients(dx, ps.Grad(inX), null);
        gInZ ??= new LinearGradients(dtmpW, ps.Grad(inZ), null);
        Linear.Backward(dy, yt, ps[outW], false, gOut);
        Permute.SwapMiddle(dyt, b, t, e, 1, dyc);
        SelectiveScan.Backward(dyc, inputs, scan, options, scanGrads);
        NegExp.Backward(dAneg, aNeg, ps.Grad(aLog));
        Permute.SwapMiddle(ddelta, b, e, t, 1, ddtr);
        Linear.Backward(ddtr, dtl, ps[dtW], false, gDt);
        Permute.SwapMiddle(dbt, b, n, t, 1, dbm);
        Permute.SwapMiddle(dct, b, n, t, 1, dcm);
        if (ones is not null)
        {
            // Content-free: Δ, B and C read the constant input; only u = xs reaches dxs (the projections' dx is dropped).
            Linear.Backward(ddtl, ones, ps[xDt], false, gXdtConst!);
            Linear.Backward(dbm, ones, ps[xB], false, gXb);
            Linear.Backward(dcm, ones, ps[xC], false, gXc);
            Permute.SwapMiddle(du, b, e, t, 1, dxs);
        }
        else
        {
            Linear.Backward(ddtl, xs, ps[xDt], false, gXdt);
            Linear.Backward(dbm, xs, ps[xB], false, gXb);
            Residual.AddInto(dxs, dtmpE);
            Linear.Backward(dcm, xs, ps[xC], false, gXc);
            Residual.AddInto(dxs, dtmpE);
            Permute.SwapMiddle(du, b, e, t, 1, dtmpE);
            Residual.AddInto(dxs, dtmpE);
        }
        Silu.Backward(dxs, xc, dxc);
        Conv1d.Backward(dxc3, xin3, ps[convW], true, conv);
        Permute.SwapMiddle(dzt, b, e, t, 1, dz);
        Linear.Backward(dxin, x, ps[inX], false, gInX);
        Linear.Backward(dz, x, ps[inZ], false, gInZ);
        Residual.AddInto(dx, dtmpW);
    }
}

/// <summary>
/// Griffin's RG-LRU: r = σ(W_r x + b_r), i = σ(W_i x + b_i), a = exp(-c softplus(Λ) r),
/// h_t = a_t h_{t-1} + sqrt(1 - a_t^2) (i_t x_t) over the LinearRecurrence op, then an out-projection.
/// </summary>
internal sealed class RecurrentMixer : MixerBase, IMixer
{
    private readonly ParameterStore ps;
    private readonly int wr, br, wi, bi, lambda, wo, b, t, w;
    private readonly float c;
    private readonly Tensor gr, gi, hT, dh, dH, dgr, dgi, tmp, gr3, gi3, dgr3, dgi3;
    private readonly Tensor? ones; // ModelConfig.ContentFree: the constant input of the two gates
    private readonly RgLruGateOutput gateOut;
    private readonly LinearRecurrenceOutput rec;
    private readonly LinearRecurrenceGradients recGrads;

    public RecurrentMixer(Device device, ParameterStore ps, ModelConfig config, int layer, int batch)
    {
        this.ps = ps;
        (b, t, w, c) = (batch, config.Context, config.Width, config.Brake);
        var p = $"h{layer}.rglru";
        wr = ps.Declare($"{p}.wr", [w, w], true, Init.Normal(0.02));
        br = ps.Declare($"{p}.br", [w], false, Init.Constant(0));
        wi = ps.Declare($"{p}.wi", [w, w], true, Init.Normal(0.02));
        bi = ps.Declare($"{p}.bi", [w], false, Init.Constant(0));
        // Griffin: a^c uniform in [0.9, 0.999] at r = 1 for its c = 8, so softplus(Λ) = -ln(a0) / 8. Λ is initialised for
        // c = 8 whatever c is, so c is a brake: a = a0^(c r / 8) decays faster as c grows. Initialising Λ for each c
        // (softplus(Λ) = -ln(a0) / c) would cancel c at step 0 and leave it only a rescaling of Λ's learning rate: a brake
        // sweep over c from 0.5 to 64 measured the same entropy curve at every c (issue 12, 2026-12-02).
        lambda = ps.Declare($"{p}.lambda", [w], false, Init.Custom, (_, g) =>
        {
            var a0 = 0.9 + 0.099 * g.NextDouble();
            var sp = -Math.Log(a0) / ModelConfig.GriffinC;
            return Math.Log(sp < 1e-5 ? sp + sp * sp / 2 : Math.Exp(sp) - 1);
        });
        wo = ps.Declare($"{p}.wo", [w, w], true, Init.Normal(0.02 / Math.Sqrt(2 * config.Layers)));
        var rows = b * t;
        gr = Own(device.Zeros(rows, w)); gi = Own(device.Zeros(rows, w));
        gateOut = Own(new RgLruGateOutput(device.Zeros(b, w, t), device.Zeros(b, w, t)));
        gr3 = gr.Reshape(b, t, w); gi3 = gi.Reshape(b, t, w);
        hT = Own(device.Zeros(rows, w)); dh = Own(device.Zeros(rows, w)); dH = Own(device.Zeros(b, w, t));
        dgr = Own(device.Zeros(rows, w)); dgi = Own(device.Zeros(rows, w)); tmp = Own(device.Zeros(rows, w));
        dgr3 = dgr.Reshape(b, t, w); dgi3 = dgi.Reshape(b, t, w);
        if (config.ContentFree) ones = Own(Ones(device, rows, w));
        rec = Own(new LinearRecurrenceOutput(device.Zeros(b, w, t), device.Zeros(b, w)));
        recGrads = Own(new LinearRecurrenceGradients(device.Zeros(b, w, t), device.Zeros(b, w, t), null));
    }

    public Tensor Mixed => hT;

    /// <summary>The decays a [B, W, T] of the last forward (the implicit attention of the recurrence).</summary>
    public Tensor Decays => gateOut.A;

    private LinearGradients? gO, gR, gI;
    private RgLruGateGradients? gate;
    private Tensor? x3, dx3, x3Source, dx3Source;

    public void Forward(Tensor x, Tensor y)
    {
        Linear.Forward(ones ?? x, ps[wr], ps[br], gr);
        Linear.Forward(ones ?? x, ps[wi], ps[bi], gi);
        if (!ReferenceEquals(x3Source, x)) (x3, x3Source) = (x.Reshape(b, t, w), x);
        RgLruGate.Forward(gr3, gi3, x3!, ps[lambda], c, gateOut);
        LinearRecurrence.Forward(gateOut.A, gateOut.GatedX, null, rec);
        Permute.SwapMiddle(rec.H, b, w, t, 1, hT);
        Linear.Forward(hT, ps[wo], null, y);
    }

    public void Backward(Tensor dy, Tensor x, Tensor dx)
    {
        gO ??= new LinearGradients(dh, ps.Grad(wo), null);
        gR ??= new LinearGradients(tmp, ps.Grad(wr), ps.Grad(br));
        gI ??= new LinearGradients(tmp, ps.Grad(wi), ps.Grad(bi));
        if (!ReferenceEquals(dx3Source, dx))
        {
            (dx3, dx3Source) = (dx.Reshape(b, t, w), dx);
            gate = new RgLruGateGradients(dgr3, dgi3, dx3, ps.Grad(lambda));
        }
        if (!ReferenceEquals(x3Source, x)) (x3, x3Source) = (x.Reshape(b, t, w), x);
        Linear.Backward(dy, hT, ps[wo], false, gO);
        Permute.SwapMiddle(dh, b, t, w, 1, dH);
        LinearRecurrence.Backward(dH, gateOut.A, gateOut.GatedX, null, rec, recGrads);
        RgLruGate.Backward(recGrads.DA, recGrads.DX, gr3, gi3, x3!, ps[lambda], c, gate!);
        if (ones is not null)
        {
            // Content-free: the gates read the constant input; x reaches only the gated input (the gate's own dx).
            Linear.Backward(dgr, ones, ps[wr], true, gR);
            Linear.Backward(dgi, ones, ps[wi], true, gI);
            return;
        }
        Linear.Backward(dgr, x, ps[wr], true, gR);
        Residual.AddInto(dx, tmp);
        Linear.Backward(dgi, x, ps[wi], true, gI);
        Residual.AddInto(dx, tmp);
    }
}
