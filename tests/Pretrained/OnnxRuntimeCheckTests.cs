using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>
/// Runs each full model in ONNX Runtime on two short sentences and checks that the outputs are what the structure read
/// from the graph says: the names, and [1, tokens, hidden]. Prints the input and output metadata, for the next step.
/// </summary>
[TestFixture(PretrainedModelId.MiniLM)]
[TestFixture(PretrainedModelId.ArcticXs)]
public class OnnxRuntimeCheckTests(PretrainedModelId id)
{
    [Test]
    public void OutputsMatchTheStructure()
    {
        var structure = PretrainedModels.Structure(id);
        var tokenizer = new PretrainedTokenizer(PretrainedModels.Package(id).VocabText);
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(PretrainedModels.Package(id).ModelBytes, options);
        TestContext.Out.WriteLine($"== {id} (ONNX Runtime)");
        foreach (var (name, meta) in session.InputMetadata)
            TestContext.Out.WriteLine($"  input  {name}: {meta.ElementDataType} [{string.Join(", ", meta.Dimensions)}] ({string.Join(", ", meta.SymbolicDimensions)})");
        foreach (var (name, meta) in session.OutputMetadata)
            TestContext.Out.WriteLine($"  output {name}: {meta.ElementDataType} [{string.Join(", ", meta.Dimensions)}] ({string.Join(", ", meta.SymbolicDimensions)})");
        Assert.That(session.InputNames, Is.EqualTo(structure.InputNames));
        Assert.That(session.OutputNames, Is.EqualTo(structure.OutputNames));

        foreach (var sentence in new[] { "hello world", "The quick brown fox jumps over the lazy dog." })
        {
            var encoded = tokenizer.Encode(sentence);
            int n = encoded.InputIds.Length;
            var feeds = new Dictionary<string, long[]>
            {
                ["input_ids"] = encoded.InputIds, ["attention_mask"] = encoded.AttentionMask, ["token_type_ids"] = encoded.TokenTypeIds,
            };
            var inputs = structure.InputNames.Select(name => NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(feeds[name], [1, n]))).ToList();
            using var results = session.Run(inputs);
            Assert.That(results.Select(r => r.Name), Is.EqualTo(structure.OutputNames));
            foreach (var result in results)
            {
                var tensor = result.AsTensor<float>();
                var dims = tensor.Dimensions.ToArray();
                TestContext.Out.WriteLine($"  '{sentence}': {result.Name} [{string.Join(", ", dims)}], first {string.Join(", ", tensor.Take(4).Select(v => v.ToString("G5")))}");
                if (result.Name == structure.HiddenStateOutput) Assert.That(dims, Is.EqualTo(new[] { 1, n, structure.Hidden }));
                else if (result.Name == structure.PoolerOutput) Assert.That(dims, Is.EqualTo(new[] { 1, structure.Hidden }));
                else Assert.Fail($"unexpected output {result.Name}");
                Assert.That(tensor.All(float.IsFinite));
            }
        }
    }
}
