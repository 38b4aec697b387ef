using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// Issue 11: a training step allocates nothing on Managed. Each op runs with preallocated outputs on inputs and outputs
/// that are slices of one flat buffer (at odd offsets, so views are proven too); after 2 warm-up calls the bytes the op
/// allocated (its calling thread plus its workers' bodies, <see cref="Allocations"/>) over 10 calls are measured. Shapes are large enough that every kernel fans out over threads.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ManagedAllocationTests : BackendFixture
{
    private const int WarmUp = 2;
    private const int Calls = 10;
    private const double PerCallLimit = 64;
    private const double StepLimit = 1024;

    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;

    private Tensor flat = null!;
    private int used;

    private IDisposable? meter;

    [SetUp]
    public void CreateFlat()
    {
        flat = Device.Zeros(1 << 23);
        used = 3;
        meter = Allocations.Meter();
    }

    [TearDown]
    public void DisposeFlat()
    {
        meter?.Dispose();
        flat.Dispose();
    }

    // The next slice of the flat buffer, filled with values from N(offset, scale^2), one element of gap after it.
    private Tensor Slice(float scale, float offset, params int[] shape)
    {
        var t = flat.Slice(used, shape);
        used += t.Length + 1;
        t.CopyFrom(TrainingCheck.Normal(t.Length, used, scale, offset));
        return t;
    }

    private Tensor Slice(params int[] shape) => Slice(1f, 0f, shape);

    private Tensor Ids(int count, int limit)
    {
        var t = flat.Slice(used, count);
        used += count + 1;
        var ids = new float[count];
        for (var i = 0; i < count; i++) ids[i] = (i * 7919) % limit;
        t.CopyFrom(ids);
        return t;
    }

    // Bytes allocated per call of `call` after the warm-up, reported and returned.
    private static double BytesPerCall(string name, Action call, int calls = Calls)
    {
        for (var i = 0; i < WarmUp; i++) call();
        var before = Allocations.Now();
        for (var i = 0; i < calls; i++) call();
        var bytes = (Allocations.Now() - before) / (double)calls;
        TestContext.Out.WriteLine($"{name}: {bytes:F1} bytes per call");
        return bytes;
    }

    private static void AssertPerCall(string name, Action call)
    {
        // The meter counts the op's own threads only (the caller and the workers inside its bodies); the smallest of
        // three measurements still guards against a one-off (a worker's first entry into a new slot).
        var bytes = Enumerable.Range(0, 3).Select(_ => BytesPerCall(name, call)).Min();
        Assert.That(bytes, Is.LessThan(PerCallLimit), $"{name} allocated {bytes:F1} bytes per call");
    }

    // rotatingPool: the thread pool serves every call from a different thread (PoolChurn), as on the CI machine of
    // 2026-12-02, where scratch kept per pool thread was allocated again on every new thread (attention 12-24 KB per
    // call, the scan 3-6 KB); scratch now belongs to the calling thread's worker slots (ManagedParallel.WorkerLocal).
    [Test]
    public void LinearAllocatesNothing([Values(false, true)] bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        var x = Slice(256, 256);
        var w = Slice(0.05f, 0f, 512, 256);
        var b = Slice(512);
        var y = Slice(256, 512);
        var dy = Slice(256, 512);
        var g = new LinearGradients(Slice(256, 256), Slice(512, 256), Slice(512));
        AssertPerCall("Linear.Forward", () => Linear.Forward(x, w, b, y));
        AssertPerCall("Linear.Backward", () => Linear.Backward(dy, x, w, true, g));
    }

    [Test]
    public void NormsAllocateNothing()
    {
        var x = Slice(256, 384);
        var w = Slice(0.5f, 1f, 384);
        var b = Slice(384);
        var dy = Slice(256, 384);
        var o = new LayerNormOutput(Slice(256, 384), Slice(256), Slice(256));
        var g = new LayerNormGradients(Slice(256, 384), Slice(384), Slice(384));
        AssertPerCall("LayerNorm.Forward", () => LayerNorm.Forward(x, w, b, outputs: o));
        AssertPerCall("LayerNorm.Backward", () => LayerNorm.Backward(dy, x, w, o, g));
        var ro = new RmsNormOutput(Slice(256, 384), Slice(256));
        var rg = new RmsNormGradients(Slice(256, 384), Slice(384));
        AssertPerCall("RmsNorm.Forward", () => RmsNorm.Forward(x, w, outputs: ro));
        AssertPerCall("RmsNorm.Backward", () => RmsNorm.Backward(dy, x, w, ro, rg));
    }

    [Test]
    public void ActivationsAllocateNothing()
    {
        var x = Slice(256, 1024);
        var dy = Slice(256, 1024);
        var y = Slice(256, 1024);
        var dx = Slice(256, 1024);
        AssertPerCall("Gelu.Forward", () => Gelu.Forward(x, GeluForm.Tanh, y));
        AssertPerCall("Gelu.Backward", () => Gelu.Backward(dy, x, GeluForm.Tanh, dx));
        AssertPerCall("Gelu.Forward erf", () => Gelu.Forward(x, GeluForm.Erf, y));
        AssertPerCall("Silu.Forward", () => Silu.Forward(x, y));
        AssertPerCall("Silu.Backward", () => Silu.Backward(dy, x, dx));
        AssertPerCall("Relu.Forward", () => Relu.Forward(x, y));
        AssertPerCall("Relu.Backward", () => Relu.Backward(dy, x, dx));
    }

    [Test]
    public void AttentionAllocatesNothing([Values(false, true)] bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        var options = new AttentionOptions { Causal = true };
        var q = Slice(1, 4, 128, 64);
        var k = Slice(1, 4, 128, 64);
        var v = Slice(1, 4, 128, 64);
        var dOut = Slice(1, 4, 128, 64);
        var o = new AttentionOutput(Slice(1, 4, 128, 64), Slice(1, 4, 128), Slice(1, 4, 128, 2));
        var g = new AttentionGradients(Slice(1, 4, 128, 64), Slice(1, 4, 128, 64), Slice(1, 4, 128, 64));
        AssertPerCall("Attention.Forward", () => Attention.Forward(q, k, v, options, o));
        AssertPerCall("Attention.Backward", () => Attention.Backward(dOut, q, k, v, o, options, g));
        var distance = new AttentionOptions { Score = Score.Distance, NormalizeKeys = true };
        AssertPerCall("Attention.Forward distance", () => Attention.Forward(q, k, v, distance, o));
        AssertPerCall("Attention.Backward distance", () => Attention.Backward(dOut, q, k, v, o, distance, g));
    }

    // GraphAttention on a hub graph (node 0 of degree Nn > the 2048-edge chunk, so hub chunks and their merge run) with
    // preallocated outputs and gradients: plain Dot without diagnostics, and Distance with normalised keys, a brake and
    // the diagnostics (every key-preparation path). Before the fix (2026-12-02), with or without PoolChurn: forward
    // 1,768 B and backward 68,408 B per call (Dot); 4.3 MB and 10.7 MB per call (Distance + NormalizeKeys + diagnostics).
    [Test]
    public void GraphAttentionAllocatesNothing([Values(false, true)] bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        const int heads = 4, nodes = 4096, d = 32;
        var (rowPtr, colIdx) = Graphs.Hub(nodes, 1);
        using var graph = CsrGraph.Create(Device, rowPtr, colIdx);
        var q = Slice(heads, nodes, d);
        var k = Slice(heads, nodes, d);
        var v = Slice(heads, nodes, d);
        var dOut = Slice(heads, nodes, d);
        var g = new GraphAttentionGradients(Slice(heads, nodes, d), Slice(heads, nodes, d), Slice(heads, nodes, d));
        var plain = new GraphAttentionOptions();
        var o = new GraphAttentionOutput(Slice(heads, nodes, d), Slice(heads, nodes), Slice(heads, nodes, 2));
        AssertPerCall("GraphAttention.Forward", () => GraphAttention.Forward(graph, q, k, v, plain, o));
        AssertPerCall("GraphAttention.Backward", () => GraphAttention.Backward(graph, dOut, q, k, v, o, plain, g));
        var full = new GraphAttentionOptions
        {
            Score = Score.Distance, NormalizeKeys = true, BrakeSlopes = [0.1f, 0.2f, 0.3f, 0.4f], Diagnostics = true,
        };
        var od = new GraphAttentionOutput(Slice(heads, nodes, d), Slice(heads, nodes), Slice(heads, nodes, 2),
            new GraphAttentionDiagnostics(Slice(heads, nodes), Slice(heads, nodes), Slice(heads, nodes)));
        AssertPerCall("GraphAttention.Forward distance+norm+diag", () => GraphAttention.Forward(graph, q, k, v, full, od));
        AssertPerCall("GraphAttention.Backward distance+norm", () => GraphAttention.Backward(graph, dOut, q, k, v, od, full, g));
    }

    // DepthRouter with preallocated outputs and gradients: the training call (Lq = 1 of L = 8) with Dot and no
    // diagnostics, and every layer at once (Lq = L) with Distance, normalised keys, a brake and the diagnostics. Before
    // the fix (2026-12-02): forward 376 B (496 B with diagnostics), backward 928 B per call.
    [Test]
    public void DepthRouterAllocatesNothing([Values(false, true)] bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        const int layers = 8, tokens = 128, heads = 4, d = 32;
        var k = Slice(layers, tokens, heads, d);
        var v = Slice(layers, tokens, heads, d);
        var g = new DepthRouterGradients(Slice(1, tokens, heads, d), Slice(layers, tokens, heads, d), Slice(layers, tokens, heads, d));
        var q = Slice(1, tokens, heads, d);
        var dOut = Slice(1, tokens, heads, d);
        var plain = new DepthRouterOptions();
        var o = new DepthRouterOutput(Slice(1, tokens, heads, d), Slice(1, tokens, heads, 2));
        AssertPerCall("DepthRouter.Forward", () => DepthRouter.Forward(q, k, v, plain, o));
        AssertPerCall("DepthRouter.Backward", () => DepthRouter.Backward(dOut, q, k, v, o, plain, g));
        var qAll = Slice(layers, tokens, heads, d);
        var dOutAll = Slice(layers, tokens, heads, d);
        var gAll = new DepthRouterGradients(Slice(layers, tokens, heads, d), Slice(layers, tokens, heads, d), Slice(layers, tokens, heads, d));
        var full = new DepthRouterOptions { Score = Score.Distance, NormalizeKeys = true, Brake = 0.25f, Diagnostics = true };
        var od = new DepthRouterOutput(Slice(layers, tokens, heads, d), Slice(layers, tokens, heads, 2),
            new DepthRouterDiagnostics(Slice(layers, tokens, heads), Slice(layers, tokens, heads), Slice(layers, tokens, heads)));
        AssertPerCall("DepthRouter.Forward distance+norm+diag", () => DepthRouter.Forward(qAll, k, v, full, od));
        AssertPerCall("DepthRouter.Backward distance+norm", () => DepthRouter.Backward(dOutAll, qAll, k, v, od, full, gAll));
    }

    [Test]
    public void LossAndOptimizerAllocateNothing()
    {
        var logits = Slice(256, 1000);
        var targets = Ids(256, 1000);
        var ce = new CrossEntropyOutput(Slice(256), Slice(1), Slice(256, 1000));
        AssertPerCall("CrossEntropy.Forward", () => CrossEntropy.Forward(logits, targets, outputs: ce));

        const int n = 200_000;
        var parameters = Slice(n);
        var gradients = Slice(0.01f, 0f, n);
        var m = Slice(n);
        var v = Slice(0.01f, 1f, n);
        using var decay = DecayMask.Create(Device, n, [new ParameterSegment(0, n / 2, true), new ParameterSegment(n / 2, n - n / 2, false)]);
        var options = new AdamWOptions();
        var step = 1;
        AssertPerCall("AdamW.Step", () => AdamW.Step(parameters, gradients, m, v, decay, options, step++, 1e-4f));
        var norm = Slice(1);
        AssertPerCall("GradientClip.ClipGlobalNorm", () => GradientClip.ClipGlobalNorm(gradients, 1e6f, norm));
    }

    [Test]
    public void EmbeddingAllocatesNothing()
    {
        var table = Slice(1024, 128);
        var ids = Ids(512, 1024);
        var output = Slice(512, 128);
        var dOut = Slice(512, 128);
        var dTable = Slice(1024, 128);
        AssertPerCall("Embedding.Forward", () => Embedding.Forward(table, ids, output));
        AssertPerCall("Embedding.Backward", () => Embedding.Backward(dOut, ids, dTable));
    }

    [Test]
    public void RecurrencesAllocateNothing([Values(false, true)] bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        var a = Slice(0.1f, 0.5f, 2, 64, 512);
        var x = Slice(2, 64, 512);
        var h0 = Slice(2, 64);
        var dH = Slice(2, 64, 512);
        var o = new LinearRecurrenceOutput(Slice(2, 64, 512), Slice(2, 64));
        var g = new LinearRecurrenceGradients(Slice(2, 64, 512), Slice(2, 64, 512), Slice(2, 64));
        AssertPerCall("LinearRecurrence.Forward", () => LinearRecurrence.Forward(a, x, h0, o));
        AssertPerCall("LinearRecurrence.Backward", () => LinearRecurrence.Backward(dH, a, x, h0, o, g));

        const int batch = 2, channels = 32, length = 512, states = 16;
        var inputs = new SelectiveScanInputs
        {
            U = Slice(batch, channels, length),
            Delta = Slice(0.1f, 0f, batch, channels, length),
            A = Slice(0.1f, -1f, channels, states),
            B = Slice(batch, states, length),
            C = Slice(batch, states, length),
            D = Slice(channels),
            Z = Slice(batch, channels, length),
        };
        var options = new SelectiveScanOptions { DeltaSoftplus = true };
        var chunks = (length + SelectiveScan.ChunkLength - 1) / SelectiveScan.ChunkLength;
        var so = new SelectiveScanOutput(Slice(batch, channels, length), Slice(batch, channels, states),
            Slice(batch, channels, chunks, states), Slice(batch, channels, length));
        var dOut = Slice(batch, channels, length);
        var sg = new SelectiveScanGradients(Slice(batch, channels, length), Slice(batch, channels, length), Slice(channels, states),
            Slice(batch, states, length), Slice(batch, states, length), Slice(channels), Slice(batch, channels, length), null, null);
        AssertPerCall("SelectiveScan.Forward", () => SelectiveScan.Forward(inputs, options, so));
        AssertPerCall("SelectiveScan.Backward", () => SelectiveScan.Backward(dOut, inputs, so, options, sg));
    }

    [Test]
    public void Conv1dAllocatesNothing()
    {
        var x = Slice(2, 512, 128);
        var w = Slice(0.5f, 0f, 128, Conv1d.DefaultWidth);
        var b = Slice(128);
        var y = Slice(2, 512, 128);
        var dy = Slice(2, 512, 128);
        var g = new Conv1dGradients(Slice(2, 512, 128), Slice(128, Conv1d.DefaultWidth), Slice(128));
        var gNoBias = new Conv1dGradients(Slice(2, 512, 128), Slice(128, Conv1d.DefaultWidth), null);
        AssertPerCall("Conv1d.Forward", () => Conv1d.Forward(x, w, b, y));
        AssertPerCall("Conv1d.Forward no bias", () => Conv1d.Forward(x, w, null, y));
        AssertPerCall("Conv1d.Backward", () => Conv1d.Backward(dy, x, w, true, g));
        AssertPerCall("Conv1d.Backward no bias", () => Conv1d.Backward(dy, x, w, false, gNoBias));
    }

    [Test]
    public void ResidualAllocatesNothing()
    {
        var x = Slice(256, 1024);
        var r = Slice(256, 1024);
        var y = Slice(256, 1024);
        AssertPerCall("Residual.Add", () => Residual.Add(x, r, y));
        AssertPerCall("Residual.Add in place", () => Residual.Add(y, r, y));
        AssertPerCall("Residual.AddInto", () => Residual.AddInto(y, r));
    }

    [Test]
    public void PermuteAllocatesNothing()
    {
        var x = Slice(2, 256, 4, 64);
        var y = Slice(2, 4, 256, 64);
        var dx = Slice(2, 256, 4, 64);
        AssertPerCall("Permute.SwapMiddle", () => Permute.SwapMiddle(x, 2, 256, 4, 64, y));
        AssertPerCall("Permute.SwapMiddleBackward", () => Permute.SwapMiddleBackward(y, 2, 256, 4, 64, dx));
        var c = Slice(2, 256, 128);
        var ct = Slice(2, 128, 256);
        AssertPerCall("Permute.SwapMiddle r = 1", () => Permute.SwapMiddle(c, 2, 256, 128, 1, ct));
        AssertPerCall("Permute.SwapMiddleBackward r = 1", () => Permute.SwapMiddleBackward(ct, 2, 256, 128, 1, c));
    }

    [Test]
    public void RgLruGateAllocatesNothing()
    {
        const int batch = 2, steps = 128, channels = 130; // 130: a partial channel tile
        var gr = Slice(batch, steps, channels);
        var gi = Slice(batch, steps, channels);
        var x = Slice(batch, steps, channels);
        var lambda = Slice(channels);
        var o = new RgLruGateOutput(Slice(batch, channels, steps), Slice(batch, channels, steps));
        var dA = Slice(batch, channels, steps);
        var dGx = Slice(batch, channels, steps);
        var g = new RgLruGateGradients(Slice(batch, steps, channels), Slice(batch, steps, channels), Slice(batch, steps, channels), Slice(channels));
        AssertPerCall("RgLruGate.Forward", () => RgLruGate.Forward(gr, gi, x, lambda, outputs: o));
        AssertPerCall("RgLruGate.Backward", () => RgLruGate.Backward(dA, dGx, gr, gi, x, lambda, gradients: g));
    }

    [Test]
    public void NegExpAllocatesNothing()
    {
        var x = Slice(0.5f, -1f, 256, 257);
        var y = Slice(256, 257);
        var dy = Slice(256, 257);
        var dx = Slice(256, 257);
        AssertPerCall("NegExp.Forward", () => NegExp.Forward(x, y));
        AssertPerCall("NegExp.Backward", () => NegExp.Backward(dy, y, dx));
    }

    [Test]
    public void TrainingStepAllocatesUnderOneKilobyte()
    {
        const int tokens = 128, channels = 256, hidden = 512, heads = 4, headDim = channels / heads, vocabulary = 512;
        var x = Slice(tokens, channels);
        var lnW = Slice(0.5f, 1f, channels);
        var lnB = Slice(channels);
        var ln = new LayerNormOutput(Slice(tokens, channels), Slice(tokens), Slice(tokens));
        var w1 = Slice(0.05f, 0f, hidden, channels);
        var b1 = Slice(hidden);
        var h = Slice(tokens, hidden);
        var a = Slice(tokens, hidden);
        var w2 = Slice(0.05f, 0f, vocabulary, hidden);
        var logits = Slice(tokens, vocabulary);
        var targets = Ids(tokens, vocabulary);
        var ce = new CrossEntropyOutput(Slice(tokens), Slice(1), Slice(tokens, vocabulary));
        var g2 = new LinearGradients(Slice(tokens, hidden), Slice(vocabulary, hidden), null);
        var dh = Slice(tokens, hidden);
        var g1 = new LinearGradients(Slice(tokens, channels), Slice(hidden, channels), Slice(hidden));
        var lng = new LayerNormGradients(Slice(tokens, channels), Slice(channels), Slice(channels));
        // Attention over the normalised activations viewed as [1, H, T, D] (a reshape of a view).
        var q = ln.Y.Reshape(1, heads, tokens, headDim);
        var att = new AttentionOutput(Slice(1, heads, tokens, headDim), Slice(1, heads, tokens), Slice(1, heads, tokens, 2));
        var dAtt = Slice(1, heads, tokens, headDim);
        var attG = new AttentionGradients(Slice(1, heads, tokens, headDim), Slice(1, heads, tokens, headDim), Slice(1, heads, tokens, headDim));
        var attOptions = new AttentionOptions { Causal = true };
        const int n = 100_000;
        var parameters = Slice(n);
        var gradients = Slice(0.01f, 0f, n);
        var m = Slice(n);
        var v = Slice(0.01f, 1f, n);
        using var decay = DecayMask.Create(Device, n, [new ParameterSegment(0, n, true)]);
        var adam = new AdamWOptions();
        var norm = Slice(1);
        var step = 1;
        // The recurrent mixer's ops (Conv1d, RG-LRU gate, permutes), residuals and NegExp, on views made once here.
        var xs = x.Reshape(1, tokens, channels);
        var convW = Slice(0.5f, 0f, channels, Conv1d.DefaultWidth);
        var convB = Slice(channels);
        var conv = Slice(1, tokens, channels);
        var convG = new Conv1dGradients(Slice(1, tokens, channels), Slice(channels, Conv1d.DefaultWidth), Slice(channels));
        var lambda = Slice(channels);
        var gate = new RgLruGateOutput(Slice(1, channels, tokens), Slice(1, channels, tokens));
        var dGate = Slice(1, channels, tokens);
        var gateG = new RgLruGateGradients(Slice(1, tokens, channels), Slice(1, tokens, channels), Slice(1, tokens, channels), Slice(channels));
        var headsOut = Slice(1, heads, tokens, headDim);
        var dHeads = Slice(tokens, channels);
        var residual = Slice(tokens, channels);
        var aLog = Slice(0.5f, -1f, channels, 16);
        var aNeg = Slice(channels, 16);
        var dANeg = Slice(channels, 16);
        var dALog = Slice(channels, 16);

        void Step()
        {
            LayerNorm.Forward(x, lnW, lnB, outputs: ln);
            Attention.Forward(q, q, q, attOptions, att);
            Linear.Forward(ln.Y, w1, b1, h);
            Gelu.Forward(h, GeluForm.Tanh, a);
            Linear.Forward(a, w2, null, logits);
            CrossEntropy.Forward(logits, targets, outputs: ce);
            Linear.Backward(ce.DLogits, a, w2, false, g2);
            Gelu.Backward(g2.DX, h, GeluForm.Tanh, dh);
            Linear.Backward(dh, ln.Y, w1, true, g1);
            Attention.Backward(dAtt, q, q, q, att, attOptions, attG);
            LayerNorm.Backward(g1.DX, x, lnW, ln, lng);
            Conv1d.Forward(xs, convW, convB, conv);
            RgLruGate.Forward(conv, xs, xs, lambda, outputs: gate);
            Permute.SwapMiddle(conv, 1, tokens, channels, 1, dGate);
            RgLruGate.Backward(dGate, gate.A, conv, xs, xs, lambda, gradients: gateG);
            Conv1d.Backward(gateG.DX, xs, convW, true, convG);
            Permute.SwapMiddle(ln.Y, 1, tokens, heads, headDim, headsOut);
            Permute.SwapMiddleBackward(dAtt, 1, tokens, heads, headDim, dHeads);
            Residual.Add(x, ln.Y, residual);
            Residual.AddInto(lng.DX, dHeads);
            NegExp.Forward(aLog, aNeg);
            NegExp.Backward(dANeg, aNeg, dALog);
            GradientClip.ClipGlobalNorm(gradients, 1f, norm);
            AdamW.Step(parameters, gradients, m, v, decay, adam, step++, 1e-4f);
        }

        var bytes = Enumerable.Range(0, 3).Select(_ => BytesPerCall("training step", Step)).Min();
        Assert.That(bytes, Is.LessThan(StepLimit), $"a training step allocated {bytes:F1} bytes");
    }
}
