using System.Globalization;
using System.Text;

namespace RouteKit.Engine.Pretrained;

/// <summary>
/// The structure of a BERT-style encoder, read from an ONNX graph's nodes and initializers (never from a model name or
/// from remembered configurations): the embeddings are the Gather nodes over float initializers, traced to the graph
/// inputs they index; LayerNorms are LayerNormalization nodes or the decomposed ReduceMean/Sub/Pow/ReduceMean/Add(eps)/
/// Sqrt/Div/Mul/Add pattern; linears are MatMul-by-initializer followed by Add-of-bias; the attention's query, key and
/// value are told apart by where they enter the score MatMul (query left, key right) and the Softmax-weighted MatMul
/// (value); heads and head size come from the constant tail of the Reshape shape after the query projection, checked
/// against the hidden size and the score scale. Every weight's shape is checked against the sizes found.
/// </summary>
public sealed class BertStructure
{
    /// <summary>Logical name of the word embedding table [vocab, hidden].</summary>
    public const string WordEmbeddings = "embeddings.word";
    /// <summary>Logical name of the position embedding table [positions, hidden].</summary>
    public const string PositionEmbeddings = "embeddings.position";
    /// <summary>Logical name of the token-type embedding table [types, hidden].</summary>
    public const string TokenTypeEmbeddings = "embeddings.token_type";
    /// <summary>Logical name of the embedding LayerNorm's scale [hidden].</summary>
    public const string EmbeddingsLnGamma = "embeddings.ln.gamma";
    /// <summary>Logical name of the embedding LayerNorm's shift [hidden].</summary>
    public const string EmbeddingsLnBeta = "embeddings.ln.beta";

    /// <summary>The per-layer logical names, each prefixed by <c>layer.{i}.</c>.</summary>
    public static readonly IReadOnlyList<string> LayerParts =
    [
        "attention.q.weight", "attention.q.bias", "attention.k.weight", "attention.k.bias",
        "attention.v.weight", "attention.v.bias", "attention.o.weight", "attention.o.bias",
        "attention.ln.gamma", "attention.ln.beta",
        "ffn.intermediate.weight", "ffn.intermediate.bias", "ffn.output.weight", "ffn.output.bias",
        "ffn.ln.gamma", "ffn.ln.beta",
    ];

    /// <summary>The logical name of a per-layer weight, e.g. <c>layer.0.attention.q.weight</c>.</summary>
    public static string Layer(int layer, string part) => $"layer.{layer}.{part}";

    private BertStructure() { }

    /// <summary>Encoder layers.</summary>
    public int Layers { get; private init; }
    /// <summary>Hidden size.</summary>
    public int Hidden { get; private init; }
    /// <summary>Attention heads.</summary>
    public int Heads { get; private init; }
    /// <summary>Size of one head (Hidden / Heads).</summary>
    public int HeadSize { get; private init; }
    /// <summary>The constant the attention scores are divided by (or 1 / the one they are multiplied by); sqrt(HeadSize) in BERT.</summary>
    public double ScoreScale { get; private init; }
    /// <summary>Feed-forward (intermediate) size.</summary>
    public int Intermediate { get; private init; }
    /// <summary>LayerNorm epsilon (all LayerNorms of the graph agree, or the read refuses).</summary>
    public double LayerNormEpsilon { get; private init; }
    /// <summary>The feed-forward activation: "gelu-erf", "gelu-tanh" or "relu".</summary>
    public string Activation { get; private init; } = "";
    /// <summary>Rows of the position embedding table.</summary>
    public int MaxPositions { get; private init; }
    /// <summary>Rows of the word embedding table.</summary>
    public int VocabularySize { get; private init; }
    /// <summary>Rows of the token-type embedding table (0 when the graph has none).</summary>
    public int TokenTypes { get; private init; }
    /// <summary>The value the attention mask adds for masked positions (e.g. -10000, or float.MinValue), if found.</summary>
    public double? MaskFill { get; private init; }
    /// <summary>Graph input names, in order.</summary>
    public IReadOnlyList<string> InputNames { get; private init; } = [];
    /// <summary>Graph output names, in order.</summary>
    public IReadOnlyList<string> OutputNames { get; private init; } = [];
    /// <summary>The graph output holding the encoder's last hidden state [batch, sequence, hidden] (the output of the last
    /// LayerNorm).</summary>
    public string HiddenStateOutput { get; private init; } = "";
    /// <summary>A graph output computed from the hidden state by a pooler (Gemm/MatMul then Tanh on the [CLS] row), or
    /// null: the sentence embedding itself is not in the graph (mean pooling and normalisation are the caller's).</summary>
    public string? PoolerOutput { get; private init; }
    /// <summary>Logical weight name to ONNX initializer name.</summary>
    public IReadOnlyDictionary<string, string> Weights { get; private init; } = new Dictionary<string, string>();

    /// <summary>The model the structure was read from.</summary>
    public OnnxModel Model { get; private init; } = null!;

    /// <summary>
    /// A weight in RouteKit's layout. Linear weights (<c>*.weight</c> of attention and ffn) are transposed from ONNX's
    /// MatMul layout [in, out] to RouteKit's <see cref="global::RouteKit.Linear"/> layout [out, in]; embeddings, biases
    /// and LayerNorm parameters are returned as stored.
    /// </summary>
    public (float[] Values, int[] Dims) Weight(string logicalName)
    {
        if (!Weights.TryGetValue(logicalName, out var name))
            throw new KeyNotFoundException($"No weight '{logicalName}' in the structure read from the graph.");
        var tensor = Model.Initializers[name];
        var values = tensor.ToFloats();
        var dims = tensor.Dims.Select(d => checked((int)d)).ToArray();
        if (!IsLinearWeight(logicalName)) return (values, dims);
        int rows = dims[0], cols = dims[1]; // ONNX [in, out]
        var transposed = new float[values.Length];
        for (int i = 0; i < rows; i++)
            for (int o = 0; o < cols; o++)
                transposed[o * rows + i] = values[i * cols + o];
        return (transposed, [cols, rows]);
    }

    /// <summary>Whether a logical name is a linear layer's weight (stored transposed relative to RouteKit).</summary>
    public static bool IsLinearWeight(string logicalName) =>
        logicalName.StartsWith("layer.", StringComparison.Ordinal) && logicalName.EndsWith(".weight", StringComparison.Ordinal);

    /// <summary>A multi-line description: sizes, inputs/outputs and the weight map with shapes.</summary>
    public string Describe()
    {
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture, $"layers {Layers}, hidden {Hidden}, heads {Heads} x {HeadSize} (score scale {ScoreScale:G6}), intermediate {Intermediate}");
        s.AppendLine(CultureInfo.InvariantCulture, $"layernorm eps {LayerNormEpsilon:G6}, activation {Activation}, positions {MaxPositions}, vocab {VocabularySize}, token types {TokenTypes}, mask fill {MaskFill?.ToString("G9", CultureInfo.InvariantCulture) ?? "?"}");
        s.AppendLine($"producer {Model.Producer}, ir {Model.IrVersion}, opsets {string.Join(", ", Model.Opsets.Select(o => $"'{o.Domain}' {o.Version}"))}");
        s.AppendLine($"hidden state output '{HiddenStateOutput}', pooler output {(PoolerOutput is null ? "none" : $"'{PoolerOutput}'")}");
        foreach (var i in Model.Inputs) s.AppendLine($"input  {i}");
        foreach (var o in Model.Outputs) s.AppendLine($"output {o}");
        foreach (var (logical, name) in Weights)
            s.AppendLine($"  {logical,-36} <- {name} {Model.Initializers[name].Shape}");
        return s.ToString();
    }

    /// <summary>Reads the structure of a BERT-style encoder from the graph.</summary>
    /// <exception cref="InvalidDataException">The graph does not have the expected pattern or its shapes disagree (the
    /// message says what was found).</exception>
    public static BertStructure Read(OnnxModel model)
    {
        var graph = new GraphIndex(model);
        var weights = new Dictionary<string, string>();

        // Embeddings: Gather over a 2-D float initializer, indices traced to a graph input.
        string? word = null, position = null, tokenType = null;
        foreach (var node in model.Nodes.Where(n => n.OpType == "Gather" && graph.IsFloatInitializer(n.Inputs[0], 2)))
        {
            var source = graph.TraceIndices(node.Inputs[1]);
            if (source == "input_ids") Assign(ref word, node.Inputs[0], "word embeddings (Gather of input_ids)");
            else if (source == "token_type_ids") Assign(ref tokenType, node.Inputs[0], "token type embeddings (Gather of token_type_ids)");
            else Assign(ref position, node.Inputs[0], $"position embeddings (Gather of {source})");
        }
        if (word is null) throw new InvalidDataException("No Gather over a float table indexed by the graph input input_ids: no word embeddings found.");
        if (position is null) throw new InvalidDataException("No second embedding Gather (positions) found.");
        weights[WordEmbeddings] = word;
        weights[PositionEmbeddings] = position;
        if (tokenType is not null) weights[TokenTypeEmbeddings] = tokenType;
        var wordDims = model.Initializers[word].Dims;
        int hidden = checked((int)wordDims[1]);

        var norms = graph.LayerNorms();
        var linears = graph.Linears();
        if (norms.Count == 0) throw new InvalidDataException("No LayerNorm (node or decomposed pattern) found.");
        weights[EmbeddingsLnGamma] = norms[0].Gamma;
        weights[EmbeddingsLnBeta] = norms[0].Beta;
        var eps = norms.Select(n => n.Epsilon).Distinct().ToList();
        if (eps.Count != 1) throw new InvalidDataException($"LayerNorm epsilons differ: {string.Join(", ", eps)}.");

        // Layers: each starts with the three projections of the previous LayerNorm's output.
        int layers = 0, heads = 0, headSize = 0, intermediate = 0;
        double scale = 0;
        string? activation = null;
        var usedLinears = new HashSet<Linear>();
        for (int n = 0; n + 2 < norms.Count; n += 2)
        {
            var input = norms[n].Output;
            var projections = linears.Where(l => l.Input == input).ToList();
            if (projections.Count != 3)
            {
                if (projections.Count == 0 && n > 0) break;
                throw new InvalidDataException($"LayerNorm output '{input}' feeds {projections.Count} linears, expected 3 (query, key, value).");
            }
            var (q, k, v, foundScale) = graph.AttentionRoles(projections);
            var o = graph.LinearBefore(linears, norms[n + 1]) ?? throw new InvalidDataException($"No attention output linear before LayerNorm '{norms[n + 1].Output}'.");
            var up = linears.SingleOrDefault(l => l.Input == norms[n + 1].Output) ?? throw new InvalidDataException($"No single intermediate linear after LayerNorm '{norms[n + 1].Output}'.");
            var down = graph.LinearBefore(linears, norms[n + 2]) ?? throw new InvalidDataException($"No output linear before LayerNorm '{norms[n + 2].Output}'.");
            var (h, hs) = graph.HeadsAfter(q);
            var act = graph.ActivationBetween(up, down);
            int inter = checked((int)model.Initializers[up.Weight].Dims[1]);
            if (layers == 0) { heads = h; headSize = hs; intermediate = inter; scale = foundScale; activation = act; }
            else if (h != heads || hs != headSize || inter != intermediate || act != activation)
                throw new InvalidDataException($"Layer {layers} differs from layer 0: heads {h}x{hs} vs {heads}x{headSize}, intermediate {inter} vs {intermediate}, activation {act} vs {activation}.");
            string Name(string part) => Layer(layers, part);
            foreach (var (role, linear) in new[] { ("attention.q", q), ("attention.k", k), ("attention.v", v), ("attention.o", o), ("ffn.intermediate", up), ("ffn.output", down) })
            {
                weights[Name(role + ".weight")] = linear.Weight;
                weights[Name(role + ".bias")] = linear.Bias;
                usedLinears.Add(linear);
            }
            weights[Name("attention.ln.gamma")] = norms[n + 1].Gamma;
            weights[Name("attention.ln.beta")] = norms[n + 1].Beta;
            weights[Name("ffn.ln.gamma")] = norms[n + 2].Gamma;
            weights[Name("ffn.ln.beta")] = norms[n + 2].Beta;
            layers++;
        }
        if (layers == 0) throw new InvalidDataException("No encoder layer (LayerNorm, q/k/v, LayerNorm, ffn, LayerNorm) found.");
        if (norms.Count != 1 + 2 * layers)
            throw new InvalidDataException($"{norms.Count} LayerNorms found for {layers} layers (expected {1 + 2 * layers}).");
        if (heads * headSize != hidden)
            throw new InvalidDataException($"Heads {heads} x head size {headSize} != hidden {hidden}.");
        if (Math.Abs(scale - Math.Sqrt(headSize)) > 1e-3 * Math.Sqrt(headSize))
            throw new InvalidDataException($"Attention score scale {scale} is not sqrt(head size {headSize}).");

        var structure = new BertStructure
        {
            Model = model,
            Layers = layers,
            Hidden = hidden,
            Heads = heads,
            HeadSize = headSize,
            ScoreScale = scale,
            Intermediate = intermediate,
            LayerNormEpsilon = eps[0],
            Activation = activation!,
            MaxPositions = checked((int)model.Initializers[position].Dims[0]),
            VocabularySize = checked((int)wordDims[0]),
            TokenTypes = tokenType is null ? 0 : checked((int)model.Initializers[tokenType].Dims[0]),
            MaskFill = graph.MaskFill(),
            HiddenStateOutput = model.Outputs.Any(o => o.Name == norms[^1].Output) ? norms[^1].Output
                : throw new InvalidDataException($"The last LayerNorm's output '{norms[^1].Output}' is not a graph output."),
            PoolerOutput = model.Outputs.Select(o => o.Name).FirstOrDefault(o => graph.IsPooler(o)),
            InputNames = model.Inputs.Select(i => i.Name).ToList(),
            OutputNames = model.Outputs.Select(o => o.Name).ToList(),
            Weights = weights,
        };
        structure.CheckShapes();
        return structure;

        static void Assign(ref string? slot, string name, string what)
        {
            if (slot is not null && slot != name) throw new InvalidDataException($"Two candidates for the {what}: '{slot}' and '{name}'.");
            slot = name;
        }
    }

    /// <summary>The shape each logical weight must have (ONNX layout), given the sizes found.</summary>
    public long[] ExpectedOnnxShape(string logical)
    {
        if (logical == WordEmbeddings) return [VocabularySize, Hidden];
        if (logical == PositionEmbeddings) return [MaxPositions, Hidden];
        if (logical == TokenTypeEmbeddings) return [TokenTypes, Hidden];
        if (logical.EndsWith("ffn.intermediate.weight", StringComparison.Ordinal)) return [Hidden, Intermediate];
        if (logical.EndsWith("ffn.intermediate.bias", StringComparison.Ordinal)) return [Intermediate];
        if (logical.EndsWith("ffn.output.weight", StringComparison.Ordinal)) return [Intermediate, Hidden];
        if (logical.EndsWith(".weight", StringComparison.Ordinal)) return [Hidden, Hidden];
        return [Hidden];
    }

    private void CheckShapes()
    {
        foreach (var (logical, name) in Weights)
        {
            var dims = Model.Initializers[name].Dims;
            var expected = ExpectedOnnxShape(logical);
            if (!dims.SequenceEqual(expected))
                throw new InvalidDataException($"Weight {logical} ('{name}') has shape [{string.Join(", ", dims)}], expected [{string.Join(", ", expected)}].");
        }
        int expectedCount = 4 + (TokenTypes > 0 ? 1 : 0) + Layers * LayerParts.Count;
        if (Weights.Count != expectedCount)
            throw new InvalidDataException($"{Weights.Count} weights mapped, expected {expectedCount}.");
    }

    internal sealed record LayerNormMatch(string Input, string Output, string Gamma, string Beta, double Epsilon);

    internal sealed record Linear(string Input, string Output, string Weight, string Bias, OnnxNode MatMul);

    /// <summary>Producers, consumers and constants of a graph, and the pattern matches the structure read needs.</summary>
    private sealed class GraphIndex
    {
        private readonly OnnxModel _model;
        private readonly Dictionary<string, OnnxNode> _producer = [];
        private readonly Dictionary<string, List<OnnxNode>> _consumers = [];
        private readonly HashSet<string> _inputs;

        public GraphIndex(OnnxModel model)
        {
            _model = model;
            _inputs = model.Inputs.Select(i => i.Name).ToHashSet();
            foreach (var node in model.Nodes)
            {
                foreach (var output in node.Outputs) _producer[output] = node;
                foreach (var input in node.Inputs.Where(i => i.Length > 0))
                {
                    if (!_consumers.TryGetValue(input, out var list)) _consumers[input] = list = [];
                    list.Add(node);
                }
            }
        }

        private IReadOnlyList<OnnxNode> Consumers(string value) => _consumers.TryGetValue(value, out var list) ? list : [];

        private OnnxNode? Producer(string value) => _producer.GetValueOrDefault(value);

        public bool IsFloatInitializer(string name, int rank) =>
            _model.Initializers.TryGetValue(name, out var t) && t.DataType == OnnxDataType.Float && t.Dims.Length == rank;

        /// <summary>A constant's tensor: an initializer or a Constant node's value.</summary>
        public OnnxTensor? Constant(string value)
        {
            if (_model.Initializers.TryGetValue(value, out var t)) return t;
            var node = Producer(value);
            return node is { OpType: "Constant" } && node.Attributes.TryGetValue("value", out var a) ? a.Tensor : null;
        }

        private double? Scalar(string value) => Constant(value) is { ElementCount: 1 } t ? t.ToScalar() : null;

        /// <summary>Follows an index tensor up through shape-only ops to a graph input, an initializer or a constant.</summary>
        public string TraceIndices(string value)
        {
            for (int step = 0; step < 16; step++)
            {
                if (_inputs.Contains(value) || _model.Initializers.ContainsKey(value)) return value;
                var node = Producer(value);
                if (node is null) return value;
                if (node.OpType is "Cast" or "Unsqueeze" or "Squeeze" or "Slice" or "Expand" or "Reshape" or "Identity") { value = node.Inputs[0]; continue; }
                return $"{node.OpType} '{value}'";
            }
            return value;
        }

        /// <summary>LayerNormalization nodes and decomposed LayerNorms, in graph order.</summary>
        public List<LayerNormMatch> LayerNorms()
        {
            var result = new List<LayerNormMatch>();
            foreach (var node in _model.Nodes)
            {
                if (node.OpType == "LayerNormalization")
                {
                    double eps = node.Attributes.TryGetValue("epsilon", out var e) && e.Float is { } f ? f : 1e-5;
                    result.Add(new(node.Inputs[0], node.Outputs[0], node.Inputs[1], node.Inputs.Count > 2 ? node.Inputs[2] : "", eps));
                    continue;
                }
                if (node.OpType != "ReduceMean") continue;
                string x = node.Inputs[0];
                var sub = Consumers(node.Outputs[0]).SingleOrDefault(c => c.OpType == "Sub" && c.Inputs[0] == x);
                if (sub is null) continue;
                var pow = Consumers(sub.Outputs[0]).SingleOrDefault(c => c.OpType == "Pow" && Scalar(c.Inputs[1]) == 2);
                var div = Consumers(sub.Outputs[0]).SingleOrDefault(c => c.OpType == "Div");
                if (pow is null || div is null) continue;
                var mean2 = Consumers(pow.Outputs[0]).SingleOrDefault(c => c.OpType == "ReduceMean");
                var addEps = mean2 is null ? null : Consumers(mean2.Outputs[0]).SingleOrDefault(c => c.OpType == "Add");
                if (addEps is null) continue;
                var epsValue = Scalar(addEps.Inputs[0] == mean2!.Outputs[0] ? addEps.Inputs[1] : addEps.Inputs[0])
                    ?? throw new InvalidDataException($"LayerNorm at '{x}': the epsilon Add '{addEps.Name}' has no constant operand.");
                var mul = Consumers(div.Outputs[0]).SingleOrDefault(c => c.OpType == "Mul");
                var add = mul is null ? null : Consumers(mul.Outputs[0]).SingleOrDefault(c => c.OpType == "Add");
                if (mul is null || add is null)
                    throw new InvalidDataException($"LayerNorm at '{x}' has no Mul (gamma) / Add (beta) after its Div.");
                string gamma = Other(mul, div.Outputs[0]), beta = Other(add, mul.Outputs[0]);
                if (!IsFloatInitializer(gamma, 1) || !IsFloatInitializer(beta, 1))
                    throw new InvalidDataException($"LayerNorm at '{x}': gamma '{gamma}' / beta '{beta}' are not 1-D float initializers.");
                result.Add(new(x, add.Outputs[0], gamma, beta, epsValue));
            }
            return result;
        }

        private static string Other(OnnxNode node, string value) => node.Inputs[0] == value ? node.Inputs[1] : node.Inputs[0];

        /// <summary>MatMul by a 2-D float initializer followed by Add of a 1-D float initializer, in graph order.</summary>
        public List<Linear> Linears()
        {
            var result = new List<Linear>();
            foreach (var node in _model.Nodes.Where(n => n.OpType == "MatMul" && IsFloatInitializer(n.Inputs[1], 2)))
            {
                var add = Consumers(node.Outputs[0]).SingleOrDefault(c => c.OpType == "Add" && IsFloatInitializer(Other(c, node.Outputs[0]), 1))
                    ?? throw new InvalidDataException($"MatMul '{node.Name}' by '{node.Inputs[1]}' is not followed by an Add of a bias.");
                result.Add(new(node.Inputs[0], add.Outputs[0], node.Inputs[1], Other(add, node.Outputs[0]), node));
            }
            return result;
        }

        /// <summary>The linear whose output (plus a residual) feeds a LayerNorm.</summary>
        public Linear? LinearBefore(List<Linear> linears, LayerNormMatch norm)
        {
            var residual = Producer(norm.Input);
            if (residual is not { OpType: "Add" }) return null;
            return linears.SingleOrDefault(l => residual.Inputs.Contains(l.Output));
        }

        /// <summary>Follows a value up through reshapes, transposes and scalings to the linear that produced it.</summary>
        private Linear? Source(string value, IReadOnlyList<Linear> candidates, ref double scale)
        {
            for (int step = 0; step < 16; step++)
            {
                var hit = candidates.FirstOrDefault(l => l.Output == value);
                if (hit is not null) return hit;
                var node = Producer(value);
                if (node is null) return null;
                if (node.OpType is "Reshape" or "Transpose") { value = node.Inputs[0]; continue; }
                if (node.OpType is "Div" or "Mul" && Scalar(node.Inputs[1]) is { } s)
                {
                    scale *= node.OpType == "Div" ? s : 1 / s;
                    value = node.Inputs[0];
                    continue;
                }
                return null;
            }
            return null;
        }

        /// <summary>Tells query, key and value apart and finds the score scale (scores are divided by it).</summary>
        public (Linear Q, Linear K, Linear V, double Scale) AttentionRoles(List<Linear> projections)
        {
            foreach (var softmax in _model.Nodes.Where(n => n.OpType == "Softmax"))
            {
                double scale = 1;
                // Softmax input: scores (/ scale) + mask.
                string value = softmax.Inputs[0];
                OnnxNode? scores = null;
                for (int step = 0; step < 8 && scores is null; step++)
                {
                    var node = Producer(value);
                    if (node is null) break;
                    if (node.OpType == "MatMul") scores = node;
                    else if (node.OpType == "Add") value = Producer(node.Inputs[0])?.OpType is "MatMul" or "Div" or "Mul" ? node.Inputs[0] : node.Inputs[1];
                    else if (node.OpType is "Div" or "Mul" && Scalar(node.Inputs[1]) is { } s) { scale *= node.OpType == "Div" ? s : 1 / s; value = node.Inputs[0]; }
                    else break;
                }
                if (scores is null) continue;
                var q = Source(scores.Inputs[0], projections, ref scale);
                var k = Source(scores.Inputs[1], projections, ref scale);
                var weighted = Consumers(softmax.Outputs[0]).FirstOrDefault(c => c.OpType == "MatMul");
                double ignored = 1;
                var v = weighted is null ? null : Source(weighted.Inputs[1], projections, ref ignored);
                if (q is null || k is null || v is null) continue;
                if (new[] { q, k, v }.Distinct().Count() != 3)
                    throw new InvalidDataException("Query, key and value trace to the same projection.");
                return (q, k, v, scale);
            }
            throw new InvalidDataException($"No Softmax attention pattern uses the projections of '{projections[0].Input}'.");
        }

        /// <summary>Heads and head size: the constant last two entries of the Reshape shape applied to the query.</summary>
        public (int Heads, int HeadSize) HeadsAfter(Linear q)
        {
            var reshape = Consumers(q.Output).FirstOrDefault(c => c.OpType == "Reshape")
                ?? throw new InvalidDataException($"The query projection '{q.Output}' is not reshaped into heads.");
            var shape = ShapeEntries(reshape.Inputs[1]);
            if (shape.Count < 2 || shape[^1] is not { } headSize || shape[^2] is not { } heads || heads <= 0 || headSize <= 0)
                throw new InvalidDataException($"Reshape '{reshape.Name}' shape has no constant [heads, head size] tail.");
            return (checked((int)heads), checked((int)headSize));
        }

        /// <summary>The entries of a shape value: constant entries known, others null.</summary>
        private List<long?> ShapeEntries(string value)
        {
            if (Constant(value) is { } t) return t.ToInt64s().Select(v => (long?)v).ToList();
            var node = Producer(value);
            if (node is { OpType: "Concat" })
            {
                var entries = new List<long?>();
                foreach (var input in node.Inputs)
                {
                    if (Constant(input) is { } c) entries.AddRange(c.ToInt64s().Select(v => (long?)v));
                    else entries.Add(null);
                }
                return entries;
            }
            return [];
        }

        /// <summary>The activation between the intermediate and output linears.</summary>
        public string ActivationBetween(Linear up, Linear down)
        {
            var seen = new HashSet<string>();
            var queue = new Queue<string>([up.Output]);
            var ops = new HashSet<string>();
            while (queue.Count > 0)
            {
                var value = queue.Dequeue();
                if (!seen.Add(value) || value == down.Input) continue;
                foreach (var c in Consumers(value))
                {
                    if (c == down.MatMul) continue;
                    ops.Add(c.OpType);
                    foreach (var o in c.Outputs) queue.Enqueue(o);
                }
                if (seen.Count > 64) break;
            }
            if (ops.Contains("Erf")) return "gelu-erf";
            if (ops.Contains("Tanh")) return "gelu-tanh";
            if (ops.Contains("Gelu") || ops.Contains("FastGelu")) return "gelu-node";
            if (ops.Contains("Relu")) return "relu";
            throw new InvalidDataException($"Unknown activation between '{up.Output}' and '{down.Input}': ops {string.Join(", ", ops)}.");
        }

        /// <summary>Whether a value is Tanh of a Gemm/MatMul (a BERT pooler).</summary>
        public bool IsPooler(string value) =>
            Producer(value) is { OpType: "Tanh" } tanh && Producer(tanh.Inputs[0]) is { OpType: "Gemm" or "MatMul" or "Add" };

        /// <summary>The constant the (1 - mask) term is multiplied by, if the graph has that pattern.</summary>
        public double? MaskFill()
        {
            foreach (var node in _model.Nodes.Where(n => n.OpType == "Mul"))
            {
                var sub = Producer(node.Inputs[0]);
                if (sub is { OpType: "Sub" } && Scalar(sub.Inputs[0]) == 1 && Scalar(node.Inputs[1]) is { } fill) return fill;
            }
            return null;
        }
    }
}
