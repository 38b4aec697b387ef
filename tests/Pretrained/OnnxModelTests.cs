using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>The ONNX reader on the packaged models, and on truncated and random bytes.</summary>
[TestFixture(PretrainedModelId.MiniLM)]
[TestFixture(PretrainedModelId.ArcticXs)]
public class OnnxModelTests(PretrainedModelId id)
{
    [Test]
    public void PackageResourcesAreListedNotAssumed()
    {
        var package = PretrainedModels.Package(id);
        TestContext.Out.WriteLine($"{id}: {package.AssemblyPath}");
        foreach (var name in package.ResourceNames) TestContext.Out.WriteLine($"  resource {name}");
        Assert.That(package.ResourceNames, Has.Some.EndsWith(".model.onnx"));
        Assert.That(package.ResourceNames, Has.Some.EndsWith(".vocab.txt"));
        Assert.That(package.ModelBytes.Length, Is.GreaterThan(10_000_000));
        // The model assemblies are read from the NuGet cache, never copied next to the engine.
        var engineDir = Path.GetDirectoryName(typeof(OnnxModel).Assembly.Location)!;
        Assert.That(File.Exists(Path.Combine(engineDir, Path.GetFileName(package.AssemblyPath))), Is.False);
    }

    [Test]
    public void ParsesGraphInputsOutputsNodesAndInitializers()
    {
        var model = PretrainedModels.Model(id);
        TestContext.Out.WriteLine($"{id}: {model.Producer}, ir {model.IrVersion}, {model.Nodes.Count} nodes, {model.Initializers.Count} initializers");
        foreach (var i in model.Inputs) TestContext.Out.WriteLine($"  input  {i}");
        foreach (var o in model.Outputs) TestContext.Out.WriteLine($"  output {o}");
        Assert.That(model.Inputs.Select(i => i.Name), Does.Contain("input_ids").And.Contain("attention_mask"));
        Assert.That(model.Nodes.Select(n => n.OpType), Does.Contain("MatMul").And.Contain("Softmax"));
        var (values, dims) = model.Float("embeddings.word_embeddings.weight");
        Assert.That(values.LongLength, Is.EqualTo(dims.Aggregate(1L, (a, b) => a * b)));
        Assert.That(values.All(float.IsFinite));
    }

    [Test]
    public void NonFloatTensorIsRefusedByName()
    {
        var model = PretrainedModels.Model(id);
        var integer = model.Initializers.Values.FirstOrDefault(t => t.DataType == OnnxDataType.Int64)
            ?? model.Nodes.Where(n => n.OpType == "Constant").Select(n => n.Attributes["value"].Tensor!).First(t => t.DataType == OnnxDataType.Int64);
        var e = Assert.Throws<InvalidDataException>(() => integer.ToFloats())!;
        TestContext.Out.WriteLine(e.Message);
        Assert.That(integer.Name, Is.Not.Empty);
        Assert.That(e.Message, Does.Contain($"'{integer.Name}'").And.Contain("Int64").And.Contain("float32"));
    }

    [Test]
    public void TruncatedFileGivesInvalidDataNamingTheOffset()
    {
        var bytes = PretrainedModels.Package(id).ModelBytes;
        foreach (int length in new[] { 1, 7, 100, 4096, bytes.Length / 2, bytes.Length - 1 })
        {
            var e = Assert.Throws<InvalidDataException>(() => OnnxModel.Parse(bytes.AsMemory(0, length)), $"length {length}")!;
            TestContext.Out.WriteLine($"{length}: {e.Message}");
            Assert.That(e.Message, Does.Contain("offset").Or.Contain("no graph"));
        }
        Assert.Throws<InvalidDataException>(() => OnnxModel.Parse(ReadOnlyMemory<byte>.Empty));
    }

    [Test]
    public void CorruptedHeaderGivesInvalidDataOrAParse()
    {
        // Flipping bytes inside a real model may still give a well-formed message (protobuf has no checksum), but
        // never an exception other than InvalidDataException.
        var original = PretrainedModels.Package(id).ModelBytes;
        var prefix = original.AsSpan(0, 1 << 16).ToArray(); // a truncated model: parse must fail cleanly whatever is flipped
        var random = new Random(99);
        for (int trial = 0; trial < 200; trial++)
        {
            var bytes = (byte[])prefix.Clone();
            for (int f = 0; f < 4; f++) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            try { OnnxModel.Parse(bytes); }
            catch (InvalidDataException) { }
        }
    }
}

/// <summary>The ONNX reader on random bytes (no model needed).</summary>
public class OnnxRandomBytesTests
{
    [Test]
    public void RandomBytesGiveInvalidData()
    {
        var random = new Random(1234);
        for (int trial = 0; trial < 500; trial++)
        {
            var bytes = new byte[random.Next(1, 4096)];
            random.NextBytes(bytes);
            Assert.Throws<InvalidDataException>(() => OnnxModel.Parse(bytes), $"trial {trial}, {bytes.Length} bytes");
        }
    }
}
