namespace RouteKit.Engine.Pretrained;

/// <summary>How a sentence-transformer turns the last hidden state into a sentence embedding (before L2 normalisation).</summary>
public enum SentencePooling
{
    /// <summary>The mean of the real (unpadded) tokens' rows, as all-MiniLM-L6-v2's model card says.</summary>
    Mean,
    /// <summary>The [CLS] row, as arctic-embed-xs's model card says.</summary>
    Cls,
}

/// <summary>A padded batch of encoded texts: B sequences padded to the longest, T tokens each.</summary>
public sealed class BertBatch
{
    /// <summary>Pads <paramref name="texts"/> to the longest with id 0 ([PAD]); the key lengths mask the padding.</summary>
    /// <exception cref="ArgumentException">No text, an empty text, or a text longer than <paramref name="maxPositions"/>.</exception>
    public BertBatch(IReadOnlyList<EncodedText> texts, int maxPositions)
    {
        ArgumentNullException.ThrowIfNull(texts);
        if (texts.Count == 0) throw new ArgumentException("the batch holds no text.", nameof(texts));
        Lengths = new int[texts.Count];
        for (int b = 0; b < texts.Count; b++)
        {
            int n = texts[b].InputIds.Length;
            if (n == 0) throw new ArgumentException($"text {b} has no token (an encoded text has at least [CLS] and [SEP]).", nameof(texts));
            if (n > maxPositions)
                throw new ArgumentException($"text {b} has {n} tokens; the model has {maxPositions} positions (encode with the model's tokenizer, which truncates).", nameof(texts));
            Lengths[b] = n;
        }
        Batch = texts.Count;
        Tokens = Lengths.Max();
        WordIds = new float[Batch * Tokens];
        TypeIds = new float[Batch * Tokens];
        PositionIds = new float[Batch * Tokens];
        for (int b = 0; b < Batch; b++)
            for (int t = 0; t < Tokens; t++)
            {
                int i = b * Tokens + t;
                PositionIds[i] = t;
                if (t >= Lengths[b]) continue;
                WordIds[i] = texts[b].InputIds[t];
                TypeIds[i] = texts[b].TokenTypeIds[t];
            }
    }

    /// <summary>B, the number of texts.</summary>
    public int Batch { get; }
    /// <summary>T, the longest text's token count; every sequence is padded to it.</summary>
    public int Tokens { get; }
    /// <summary>Each text's token count, [CLS] and [SEP] included (the attention's key lengths).</summary>
    public int[] Lengths { get; }
    /// <summary>Word ids [B * T] (float-coded), 0 past each length.</summary>
    public float[] WordIds { get; }
    /// <summary>Token-type ids [B * T].</summary>
    public float[] TypeIds { get; }
    /// <summary>Position ids [B * T]: t.</summary>
    public float[] PositionIds { get; }
}

/// <summary>What <see cref="BertEncoder.Forward"/> hands an observer after each layer's attention: host copies, for
/// measurements (the experiment's sink mass, key norms, Dot-versus-Distance comparison).</summary>
/// <param name="Layer">The layer index.</param>
/// <param name="Query">Queries [B, H, T, D] as the attention read them.</param>
/// <param name="Key">Keys [B, H, T, D].</param>
/// <param name="Entropy">The attention's fused diagnostics, [B, H, T] each (null when diagnostics were not asked for).</param>
/// <param name="SinkMass">Probability on key 0 ([CLS]) per query row.</param>
/// <param name="MaxProb">Largest probability per query row.</param>
/// <param name="Output">The layer's output hidden state [B * T, C].</param>
public sealed record BertLayerTrace(int Layer, float[] Query, float[] Key, float[]? Entropy, float[]? SinkMass, float[]? MaxProb, float[] Output);

/// <summary>
/// A BERT encoder (post-LayerNorm, as BERT and the sentence-transformers built on it) run only with RouteKit's ops, on
/// any backend: word + position + token-type <see cref="Embedding"/>s summed with <see cref="Residual"/> and normalised
/// by <see cref="LayerNorm"/>; per layer <see cref="Linear"/> q, k, v, <see cref="Permute"/> to heads, <see cref="Attention"/>
/// with the batch's key lengths as padding mask, the output projection, residual and LayerNorm, then the feed-forward
/// Linear, <see cref="Gelu"/> (erf) and Linear with residual and LayerNorm. Sizes, epsilon, activation and score scale come
/// from the <see cref="BertStructure"/> read from the ONNX file. Inference only: the ops have backwards, the encoder does
/// not chain them. Buffers are allocated once per batch shape (B, T) and reused while it repeats.
/// </summary>
/// <remarks>
/// Checks: every weight is checked for NaN and infinity once, on the host, when it is loaded (a corrupt file is refused
/// naming the initializer), and every token id against the tables on the host before anything is launched. The ops
/// then run inside a <see cref="TrainingStep"/> with <see cref="StepChecks.Off"/>: re-checking the fixed weights on every
/// call would re-read the 47 MB word table per forward (and on ILGPU's CPU simulator cost about 40 s per call).
/// <see cref="Embed"/> checks the pooled embeddings it returns.
/// </remarks>
public sealed class BertEncoder : IDisposable
{
    private readonly Device _device;
    private readonly Dictionary<string, Tensor> _w = [];
    private Workspace? _ws;

    /// <summary>Uploads the weights of <paramref name="structure"/> to <paramref name="device"/>.</summary>
    /// <exception cref="NotSupportedException">The graph's activation is not GELU (erf or tanh).</exception>
    public BertEncoder(Device device, BertStructure structure, SentencePooling pooling)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(structure);
        if (!Enum.IsDefined(pooling)) throw new ArgumentException($"pooling = {(int)pooling} is not a defined SentencePooling (Mean, Cls).", nameof(pooling));
        _device = device;
        Structure = structure;
        Pooling = pooling;
        Form = structure.Activation switch
        {
            "gelu-erf" => GeluForm.Erf,
            "gelu-tanh" => GeluForm.Tanh,
            _ => throw new NotSupportedException($"activation '{structure.Activation}' is not supported (GELU erf or tanh)."),
        };
        if (structure.TokenTypes < 1) throw new NotSupportedException("the graph has no token-type embedding; BertEncoder expects BERT's three.");
        Epsilon = (float)structure.LayerNormEpsilon;
        Scale = (float)(1.0 / structure.ScoreScale);
        try
        {
            foreach (var name in WeightNames(structure))
            {
                var (values, dims) = structure.Weight(name);
                int bad = Array.FindIndex(values, v => !float.IsFinite(v));
                if (bad >= 0)
                    throw new InvalidDataException(
                        $"initializer '{structure.Weights[name]}' ({name}) holds {values[bad]} at flat index {bad}: the model file is corrupt.");
                _w[name] = device.FromArray(values, dims);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The structure the weights came from.</summary>
    public BertStructure Structure { get; }
    /// <summary>The sentence pooling.</summary>
    public SentencePooling Pooling { get; }
    /// <summary>The feed-forward GELU form, from the graph.</summary>
    public GeluForm Form { get; }
    /// <summary>LayerNorm epsilon, from the graph (float32).</summary>
    public float Epsilon { get; }
    /// <summary>The attention score scale, 1 / the graph's divisor.</summary>
    public float Scale { get; }

    /// <summary>Every logical weight name the encoder uploads.</summary>
    public static IEnumerable<string> WeightNames(BertStructure s)
    {
        yield return BertStructure.WordEmbeddings;
        yield return BertStructure.PositionEmbeddings;
        yield return BertStructure.TokenTypeEmbeddings;
        yield return BertStructure.EmbeddingsLnGamma;
        yield return BertStructure.EmbeddingsLnBeta;
        for (int l = 0; l < s.Layers; l++)
            foreach (var part in BertStructure.LayerParts) yield return BertStructure.Layer(l, part);
    }

    /// <summary>
    /// Runs the encoder on <paramref name="batch"/> and returns the last hidden state [B * T, C] (a buffer of this encoder,
    /// overwritten by the next call). Rows past a text's length are computed but mean nothing.
    /// </summary>
    /// <param name="batch">The padded batch.</param>
    /// <param name="layers">How many layers to run (default all): a prefix of the encoder, for slice tests.</param>
    /// <param name="attention">Replaces the attention options of every layer (key lengths and scale are set on top), e.g.
    /// <c>Score = Distance</c> or <c>NormalizeKeys</c> for the experiment's inference swaps; null keeps BERT's Dot.</param>
    /// <param name="observer">Called after each layer with host copies of its queries, keys, diagnostics and output; asks
    /// the attention for its fused diagnostics. Null copies nothing and reads nothing back.</param>
    /// <exception cref="ArgumentException">layers is outside 0..Layers.</exception>
    public Tensor Forward(BertBatch batch, int? layers = null, AttentionOptions? attention = null, Action<BertLayerTrace>? observer = null)
    {
        ObjectDisposedException.ThrowIf(_w.Count == 0, this);
        ArgumentNullException.ThrowIfNull(batch);
        int run = layers ?? Structure.Layers;
        if (run < 0 || run > Structure.Layers)
            throw new ArgumentException($"layers = {run}; the encoder has {Structure.Layers}.", nameof(layers));
        if (batch.Tokens > Structure.MaxPositions)
            throw new ArgumentException($"the batch has {batch.Tokens} tokens; the model has {Structure.MaxPositions} positions.", nameof(batch));
        CheckIds(batch.WordIds, Structure.VocabularySize, "word");
        CheckIds(batch.TypeIds, Structure.TokenTypes, "token-type");
        var ws = Buffers(batch.Batch, batch.Tokens);
        // Weights were checked at load and ids just now: the ops' per-call finiteness scans are switched off. Refused
        // (InvalidOperationException from BeginStep) inside a caller's own step on this device.
        using var step = _device.BeginStep(StepChecks.Off);
        int b = batch.Batch, t = batch.Tokens, h = Structure.Heads, d = Structure.HeadSize;
        var options = (attention ?? new AttentionOptions()) with { Scale = Scale, KeyLengths = batch.Lengths, Diagnostics = observer is not null, Causal = false };

        ws.WordIds.CopyFrom(batch.WordIds);
        ws.TypeIds.CopyFrom(batch.TypeIds);
        ws.PositionIds.CopyFrom(batch.PositionIds);
        Embedding.Forward(_w[BertStructure.WordEmbeddings], ws.WordIds, ws.Sum);
        Embedding.Forward(_w[BertStructure.PositionEmbeddings], ws.PositionIds, ws.Part);
        Residual.Add(ws.Sum, ws.Part, ws.Sum);
        Embedding.Forward(_w[BertStructure.TokenTypeEmbeddings], ws.TypeIds, ws.Part);
        Residual.Add(ws.Sum, ws.Part, ws.Sum);
        LayerNorm.Forward(ws.Sum, _w[BertStructure.EmbeddingsLnGamma], _w[BertStructure.EmbeddingsLnBeta], Epsilon, ws.Hidden);

        for (int l = 0; l < run; l++)
        {
            Tensor W(string part) => _w[BertStructure.Layer(l, part)];
            var x = ws.Hidden.Y;
            Linear.Forward(x, W("attention.q.weight"), W("attention.q.bias"), ws.Q);
            Linear.Forward(x, W("attention.k.weight"), W("attention.k.bias"), ws.K);
            Linear.Forward(x, W("attention.v.weight"), W("attention.v.bias"), ws.V);
            Permute.SwapMiddle(ws.Q, b, t, h, d, ws.Qh);
            Permute.SwapMiddle(ws.K, b, t, h, d, ws.Kh);
            Permute.SwapMiddle(ws.V, b, t, h, d, ws.Vh);
            var att = observer is null ? ws.Attention : ws.AttentionWithDiagnostics(_device);
            Attention.Forward(ws.Qh, ws.Kh, ws.Vh, options, att);
            Permute.SwapMiddle(att.Output, b, h, t, d, ws.Context);
            Linear.Forward(ws.Context, W("attention.o.weight"), W("attention.o.bias"), ws.Sum);
            Residual.Add(ws.Sum, x, ws.Sum);
            LayerNorm.Forward(ws.Sum, W("attention.ln.gamma"), W("attention.ln.beta"), Epsilon, ws.Mid);
            Linear.Forward(ws.Mid.Y, W("ffn.intermediate.weight"), W("ffn.intermediate.bias"), ws.Inner);
            Gelu.Forward(ws.Inner, Form, ws.Activated);
            Linear.Forward(ws.Activated, W("ffn.output.weight"), W("ffn.output.bias"), ws.Sum);
            Residual.Add(ws.Sum, ws.Mid.Y, ws.Sum);
            LayerNorm.Forward(ws.Sum, W("ffn.ln.gamma"), W("ffn.ln.beta"), Epsilon, ws.Hidden);
            if (observer is not null)
            {
                var diag = att.Diagnostics!;
                observer(new BertLayerTrace(l, ws.Qh.ToArray(), ws.Kh.ToArray(), diag.Entropy.ToArray(), diag.SinkMass.ToArray(),
                    diag.MaxProb.ToArray(), ws.Hidden.Y.ToArray()));
            }
        }
        return ws.Hidden.Y;
    }

    private static void CheckIds(float[] ids, int rows, string what)
    {
        for (int i = 0; i < ids.Length; i++)
            if (!(ids[i] >= 0 && ids[i] < rows))
                throw new ArgumentException($"{what} id {ids[i]} at flat index {i} is outside the model's table of {rows} rows.", "batch");
    }

    /// <summary>
    /// Sentence embeddings [B, C] of <paramref name="batch"/>: the encoder's last hidden state pooled (<see cref="Pooling"/>)
    /// over each text's real tokens in float64 and L2-normalised, as sentence-transformers does.
    /// </summary>
    public float[][] Embed(BertBatch batch, AttentionOptions? attention = null)
    {
        var hidden = Forward(batch, attention: attention).ToArray();
        var pooled = Pool(hidden, batch.Lengths, batch.Tokens, Structure.Hidden, Pooling);
        for (int b = 0; b < pooled.Length; b++)
            if (!pooled[b].All(float.IsFinite))
                throw new InvalidOperationException($"the embedding of text {b} is not finite: an activation overflowed float32.");
        return pooled;
    }

    /// <summary>
    /// Max |expected - actual| over every entry and the smallest per-text cosine between the two embeddings (float64
    /// sums): the equality measure of the ONNX Runtime checks. NaN anywhere gives NaN, never a pass.
    /// </summary>
    /// <exception cref="ArgumentException">The lists or an embedding differ in length.</exception>
    public static (double MaxAbs, double MinCosine) Compare(IReadOnlyList<float[]> expected, IReadOnlyList<float[]> actual)
    {
        ArgumentNullException.ThrowIfNull(expected);
        ArgumentNullException.ThrowIfNull(actual);
        if (expected.Count != actual.Count) throw new ArgumentException($"{expected.Count} expected embeddings, {actual.Count} actual.");
        double maxAbs = 0, minCos = 1;
        for (var i = 0; i < expected.Count; i++)
        {
            if (expected[i].Length != actual[i].Length) throw new ArgumentException($"embedding {i}: {expected[i].Length} vs {actual[i].Length} channels.");
            double dot = 0, ee = 0, aa = 0;
            for (var c = 0; c < expected[i].Length; c++)
            {
                var d = Math.Abs((double)expected[i][c] - actual[i][c]);
                maxAbs = double.IsNaN(d) || double.IsNaN(maxAbs) ? double.NaN : Math.Max(maxAbs, d);
                dot += (double)expected[i][c] * actual[i][c];
                ee += (double)expected[i][c] * expected[i][c];
                aa += (double)actual[i][c] * actual[i][c];
            }
            var cos = dot / Math.Sqrt(ee * aa);
            minCos = double.IsNaN(cos) || double.IsNaN(minCos) ? double.NaN : Math.Min(minCos, cos);
        }
        return (maxAbs, minCos);
    }

    /// <summary>Pools a hidden state [B * T, C] over each text's first <paramref name="lengths"/>[b] rows and L2-normalises
    /// (float64 sums).</summary>
    public static float[][] Pool(ReadOnlySpan<float> hidden, IReadOnlyList<int> lengths, int tokens, int channels, SentencePooling pooling)
    {
        var result = new float[lengths.Count][];
        var acc = new double[channels];
        for (int b = 0; b < lengths.Count; b++)
        {
            Array.Clear(acc);
            int rows = pooling == SentencePooling.Cls ? 1 : lengths[b];
            for (int t = 0; t < rows; t++)
            {
                var row = hidden.Slice((b * tokens + t) * channels, channels);
                for (int c = 0; c < channels; c++) acc[c] += row[c];
            }
            double norm = 0;
            for (int c = 0; c < channels; c++) { acc[c] /= rows; norm += acc[c] * acc[c]; }
            norm = Math.Max(Math.Sqrt(norm), 1e-12); // torch.nn.functional.normalize's eps
            result[b] = new float[channels];
            for (int c = 0; c < channels; c++) result[b][c] = (float)(acc[c] / norm);
        }
        return result;
    }

    private Workspace Buffers(int b, int t)
    {
        if (_ws is { } ws && ws.B == b && ws.T == t) return ws;
        _ws?.Dispose();
        _ws = null;
        _ws = new Workspace(_device, b, t, Structure.Hidden, Structure.Heads, Structure.HeadSize, Structure.Intermediate);
        return _ws;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _ws?.Dispose();
        _ws = null;
        foreach (var w in _w.Values) w.Dispose();
        _w.Clear();
    }

    private sealed class Workspace : IDisposable
    {
        private readonly List<IDisposable> _owned = [];

        public Workspace(Device device, int b, int t, int c, int h, int d, int inter)
        {
            (B, T) = (b, t);
            int n = b * t;
            Tensor Z(params int[] shape) { var z = device.Zeros(shape); _owned.Add(z); return z; }
            LayerNormOutput Ln() { var o = new LayerNormOutput(device.Zeros(n, c), device.Zeros(n), device.Zeros(n)); _owned.Add(o); return o; }
            WordIds = Z(n); TypeIds = Z(n); PositionIds = Z(n);
            Sum = Z(n, c); Part = Z(n, c); Q = Z(n, c); K = Z(n, c); V = Z(n, c); Context = Z(n, c);
            Qh = Z(b, h, t, d); Kh = Z(b, h, t, d); Vh = Z(b, h, t, d);
            Inner = Z(n, inter); Activated = Z(n, inter);
            Hidden = Ln(); Mid = Ln();
            Attention = AttentionOutput.Allocate(device, b, h, t, d);
            _owned.Add(Attention);
            (_heads, _headSize) = (h, d);
        }

        private readonly int _heads, _headSize;
        private AttentionOutput? _diagnosed;

        public int B { get; }
        public int T { get; }
        public Tensor WordIds { get; }
        public Tensor TypeIds { get; }
        public Tensor PositionIds { get; }
        public Tensor Sum { get; }
        public Tensor Part { get; }
        public Tensor Q { get; }
        public Tensor K { get; }
        public Tensor V { get; }
        public Tensor Qh { get; }
        public Tensor Kh { get; }
        public Tensor Vh { get; }
        public Tensor Context { get; }
        public Tensor Inner { get; }
        public Tensor Activated { get; }
        public LayerNormOutput Hidden { get; }
        public LayerNormOutput Mid { get; }
        public AttentionOutput Attention { get; }
        /// <summary>Outputs with the fused diagnostics, allocated on the first observed forward (most calls observe nothing).</summary>
        public AttentionOutput AttentionWithDiagnostics(Device device)
        {
            if (_diagnosed is null)
            {
                _diagnosed = AttentionOutput.Allocate(device, B, _heads, T, _headSize, diagnostics: true);
                _owned.Add(_diagnosed);
            }
            return _diagnosed;
        }

        public void Dispose()
        {
            foreach (var o in _owned) o.Dispose();
            _owned.Clear();
        }
    }
}
