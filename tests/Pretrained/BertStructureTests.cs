using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>The encoder structure read from each graph, checked against the sizes the model cards give.</summary>
public class BertStructureTests
{
    // Expected from the model cards (all-MiniLM-L6-v2; arctic-embed-xs is a 6-layer, 384-wide MiniLM-style encoder):
    // each is checked against what the file says, never used in place of it.
    [TestCase(PretrainedModelId.MiniLM, 6, 384, 12, 1536, 30522, 512, "924")]
    [TestCase(PretrainedModelId.ArcticXs, 6, 384, 12, 1536, 30522, 512, null)]
    public void StructureFromTheGraphMatchesTheModelCard(PretrainedModelId id, int layers, int hidden, int heads, int intermediate, int vocab, int positions, string? pooler)
    {
        var s = PretrainedModels.Structure(id);
        TestContext.Out.WriteLine($"== {id}");
        TestContext.Out.WriteLine(s.Describe());
        Assert.Multiple(() =>
        {
            Assert.That(s.Layers, Is.EqualTo(layers), "layers");
            Assert.That(s.Hidden, Is.EqualTo(hidden), "hidden");
            Assert.That(s.Heads, Is.EqualTo(heads), "heads");
            Assert.That(s.HeadSize * s.Heads, Is.EqualTo(s.Hidden), "head size");
            Assert.That(s.ScoreScale, Is.EqualTo(Math.Sqrt(s.HeadSize)).Within(1e-4), "score scale");
            Assert.That(s.Intermediate, Is.EqualTo(intermediate), "intermediate");
            Assert.That(s.VocabularySize, Is.EqualTo(vocab), "vocab");
            Assert.That(s.MaxPositions, Is.EqualTo(positions), "positions");
            Assert.That(s.LayerNormEpsilon, Is.EqualTo(1e-12).Within(1e-15), "eps");
            Assert.That(s.Activation, Is.EqualTo("gelu-erf"), "activation");
            Assert.That(s.TokenTypes, Is.EqualTo(2), "token types");
            Assert.That(s.InputNames, Is.EqualTo(new[] { "input_ids", "attention_mask", "token_type_ids" }));
            // MiniLM's export also outputs the BERT pooler (tanh(W h_CLS + b)) under the anonymous name "924"; the
            // sentence embedding (mean pooling, normalisation) is in neither graph.
            Assert.That(s.HiddenStateOutput, Is.EqualTo("last_hidden_state"));
            Assert.That(s.PoolerOutput, Is.EqualTo(pooler));
            Assert.That(s.OutputNames, Is.EqualTo(pooler is null ? new[] { "last_hidden_state" } : new[] { "last_hidden_state", pooler }));
        });
    }

    /// <summary>Every weight's shape agrees with the sizes (checked in Read) and the vocab file has one line per embedding row.</summary>
    [TestCase(PretrainedModelId.MiniLM)]
    [TestCase(PretrainedModelId.ArcticXs)]
    public void WeightMapIsCompleteAndShapesAreConsistent(PretrainedModelId id)
    {
        var s = PretrainedModels.Structure(id);
        Assert.That(s.Weights, Has.Count.EqualTo(5 + s.Layers * BertStructure.LayerParts.Count));
        foreach (var (logical, name) in s.Weights)
            Assert.That(s.Model.Initializers[name].Dims, Is.EqualTo(s.ExpectedOnnxShape(logical)), logical);
        var tokenizer = new PretrainedTokenizer(PretrainedModels.Package(id).VocabText);
        Assert.That(tokenizer.Vocabulary, Has.Count.EqualTo(s.VocabularySize));
    }

    /// <summary>
    /// The map comes from the graph pattern, not the names; where the exporter kept PyTorch names (biases, LayerNorms,
    /// embeddings, and for arctic the MatMul node names) they must agree with it.
    /// </summary>
    [TestCase(PretrainedModelId.MiniLM)]
    [TestCase(PretrainedModelId.ArcticXs)]
    public void PatternMapAgreesWithTheExportedNames(PretrainedModelId id)
    {
        var s = PretrainedModels.Structure(id);
        var roles = new Dictionary<string, string>
        {
            ["attention.q"] = "attention.self.query", ["attention.k"] = "attention.self.key", ["attention.v"] = "attention.self.value",
            ["attention.o"] = "attention.output.dense", ["ffn.intermediate"] = "intermediate.dense", ["ffn.output"] = "output.dense",
            ["attention.ln"] = "attention.output.LayerNorm", ["ffn.ln"] = "output.LayerNorm",
        };
        Assert.That(s.Weights[BertStructure.WordEmbeddings], Is.EqualTo("embeddings.word_embeddings.weight"));
        Assert.That(s.Weights[BertStructure.PositionEmbeddings], Is.EqualTo("embeddings.position_embeddings.weight"));
        Assert.That(s.Weights[BertStructure.EmbeddingsLnGamma], Is.EqualTo("embeddings.LayerNorm.weight"));
        for (int l = 0; l < s.Layers; l++)
            foreach (var (role, torch) in roles)
            {
                string suffix = role.EndsWith(".ln") ? ".weight" : ".bias";
                string part = role.EndsWith(".ln") ? role + ".gamma" : role + ".bias";
                Assert.That(s.Weights[BertStructure.Layer(l, part)], Is.EqualTo($"encoder.layer.{l}.{torch}{suffix}"));
                if (role.EndsWith(".ln")) continue;
                var weight = s.Weights[BertStructure.Layer(l, role + ".weight")];
                var matmul = s.Model.Nodes.Single(n => n.OpType == "MatMul" && n.Inputs.Contains(weight));
                if (matmul.Name.StartsWith('/')) // arctic's exporter names nodes by module path
                    Assert.That(matmul.Name, Is.EqualTo($"/encoder/layer.{l}/{torch.Replace('.', '/')}/MatMul"));
            }
    }

    /// <summary>ONNX MatMul weights are [in, out]; RouteKit's Linear takes W as [out, in]: Weight() transposes, and
    /// RouteKit's Linear with it computes what the ONNX MatMul + Add computes.</summary>
    [Test]
    public void LinearWeightsComeInRouteKitLayout()
    {
        var s = PretrainedModels.Structure(PretrainedModelId.MiniLM);
        string logical = BertStructure.Layer(0, "ffn.intermediate.weight");
        var onnx = s.Model.Initializers[s.Weights[logical]];
        Assert.That(onnx.Dims, Is.EqualTo(new long[] { s.Hidden, s.Intermediate }), "ONNX stores [in, out]");
        var onnxValues = onnx.ToFloats();
        var (w, dims) = s.Weight(logical);
        Assert.That(dims, Is.EqualTo(new[] { s.Intermediate, s.Hidden }), "RouteKit layout [out, in]");
        for (int i = 0; i < s.Hidden; i += 37)
            for (int o = 0; o < s.Intermediate; o += 41)
                Assert.That(w[o * s.Hidden + i], Is.EqualTo(onnxValues[i * s.Intermediate + o]));
        var (bias, biasDims) = s.Weight(BertStructure.Layer(0, "ffn.intermediate.bias"));
        Assert.That(biasDims, Is.EqualTo(new[] { s.Intermediate }));
        var (gamma, _) = s.Weight(BertStructure.EmbeddingsLnGamma);
        Assert.That(gamma, Is.EqualTo(s.Model.Initializers[s.Weights[BertStructure.EmbeddingsLnGamma]].ToFloats()), "non-linear weights as stored");

        // y = x W_onnx + b (the graph's MatMul + Add) equals RouteKit's Linear.Forward(x, W [out, in], b).
        const int tokens = 3;
        var random = new Random(5);
        var x = Enumerable.Range(0, tokens * s.Hidden).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        using var device = Device.Create(Backend.Managed);
        using var tx = device.FromArray(x, tokens, s.Hidden);
        using var tw = device.FromArray(w, s.Intermediate, s.Hidden);
        using var tb = device.FromArray(bias, s.Intermediate);
        using var ty = Linear.Forward(tx, tw, tb);
        var y = ty.ToArray();
        for (int t = 0; t < tokens; t++)
            for (int o = 0; o < s.Intermediate; o += 7)
            {
                double expected = bias[o];
                for (int i = 0; i < s.Hidden; i++) expected += (double)x[t * s.Hidden + i] * onnxValues[i * s.Intermediate + o];
                Assert.That(y[t * s.Intermediate + o], Is.EqualTo(expected).Within(1e-4), $"t {t} o {o}");
            }
    }
}
