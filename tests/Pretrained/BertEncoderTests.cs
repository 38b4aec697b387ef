using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>
/// The BERT encoder built from RouteKit ops against ONNX Runtime running the same .onnx file: a one-layer slice (the
/// graph's layer-0 output made a graph output), the full model's sentence embeddings on a padded batch of real sentences,
/// and padding invariance. The 200-sentence check runs in `routekit pretrained` (reproduce).
/// </summary>
[TestFixture(PretrainedModelId.MiniLM, SentencePooling.Mean)]
[TestFixture(PretrainedModelId.ArcticXs, SentencePooling.Cls)]
public class BertEncoderTests(PretrainedModelId id, SentencePooling pooling)
{
    private Device _device = null!;
    private BertEncoder _encoder = null!;
    private PretrainedTokenizer _tokenizer = null!;

    [OneTimeSetUp]
    public void SetUp()
    {
        _device = Device.Create(Backend.Managed);
        _encoder = new BertEncoder(_device, PretrainedModels.Structure(id), pooling);
        _tokenizer = new PretrainedTokenizer(PretrainedModels.Package(id).VocabText, warn: _ => { });
    }

    [OneTimeTearDown]
    public void TearDown()
    {
        _encoder.Dispose();
        _device.Dispose();
    }

    // Six real sentences of different lengths (the fortunes sample) plus one of a single word: a padded batch.
    private BertBatch Batch(int count = 6) =>
        new(PretrainedSentences.Load(count).Append("hi").Select(_tokenizer.Encode).ToList(), PretrainedModels.Structure(id).MaxPositions);

    [Test]
    public void OneLayerSliceEqualsOnnxRuntime()
    {
        var structure = PretrainedModels.Structure(id);
        var batch = Batch();
        string layer0 = OnnxRuntimeEncoder.LayerOutputName(structure, 0);
        using var ort = new OnnxRuntimeEncoder(PretrainedModels.Package(id).ModelBytes, structure, threads: 1, [layer0]);
        var expected = ort.Run(batch, [layer0])[layer0];
        var actual = _encoder.Forward(batch, layers: 1).ToArray();
        Assert.That(actual.Length, Is.EqualTo(expected.Length));
        double worst = MaxAbsOverRealTokens(expected, actual, batch, structure.Hidden);
        TestContext.Out.WriteLine($"{id}: layer-0 output '{layer0}', B {batch.Batch} T {batch.Tokens}, max |RouteKit - ORT| over real tokens {worst:E2}");
        Assert.That(worst, Is.LessThanOrEqualTo(1e-4));
    }

    [Test]
    public void SentenceEmbeddingsEqualOnnxRuntime()
    {
        var structure = PretrainedModels.Structure(id);
        var batch = Batch();
        using var ort = new OnnxRuntimeEncoder(PretrainedModels.Package(id).ModelBytes, structure, threads: 1);
        var hidden = ort.LastHiddenState(batch);
        var expected = BertEncoder.Pool(hidden, batch.Lengths, batch.Tokens, structure.Hidden, pooling);
        var actual = _encoder.Embed(batch);
        var (maxAbs, minCos) = BertEncoder.Compare(expected, actual);
        TestContext.Out.WriteLine($"{id} ({pooling} pooling): {batch.Batch} sentences, lengths {string.Join(",", batch.Lengths)}: max abs {maxAbs:E2}, min cosine {minCos:F9}");
        Assert.That(maxAbs, Is.LessThanOrEqualTo(1e-4));
        Assert.That(minCos, Is.GreaterThanOrEqualTo(0.99999));
    }

    [Test]
    public void PaddingDoesNotChangeAText()
    {
        var batch = Batch();
        var together = _encoder.Embed(batch);
        var texts = PretrainedSentences.Load(6).Append("hi").Select(_tokenizer.Encode).ToList();
        for (int i = 0; i < texts.Count; i++)
        {
            var alone = _encoder.Embed(new BertBatch([texts[i]], PretrainedModels.Structure(id).MaxPositions))[0];
            double worst = together[i].Zip(alone, (a, b) => Math.Abs(a - b)).Max();
            Assert.That(worst, Is.LessThanOrEqualTo(1e-5), $"text {i} ({texts[i].InputIds.Length} tokens, padded to {batch.Tokens})");
        }
    }

    [Test]
    public void BadBatchesAreRefused()
    {
        var structure = PretrainedModels.Structure(id);
        Assert.That(() => new BertBatch([], structure.MaxPositions), Throws.ArgumentException.With.Message.Contains("no text"));
        var tooLong = new EncodedText(new long[structure.MaxPositions + 1], new long[structure.MaxPositions + 1], new long[structure.MaxPositions + 1], false, structure.MaxPositions + 1);
        Assert.That(() => new BertBatch([tooLong], structure.MaxPositions), Throws.ArgumentException.With.Message.Contains("positions"));
        Assert.That(() => _encoder.Forward(Batch(2), layers: structure.Layers + 1), Throws.ArgumentException.With.Message.Contains("layers"));
    }

    [Test]
    public void NonFiniteWeightInTheFileIsRefusedNamingTheInitializer()
    {
        // A copy of the model file with the first value of the embedding LayerNorm's gamma overwritten by NaN: found by
        // its bytes (the first 8 bytes of that tensor's data), so the rest of the file is untouched.
        var structure = PretrainedModels.Structure(id);
        var bytes = (byte[])PretrainedModels.Package(id).ModelBytes.Clone();
        var (gamma, _) = structure.Weight(BertStructure.EmbeddingsLnGamma);
        var pattern = new byte[8];
        Buffer.BlockCopy(gamma, 0, pattern, 0, 8);
        int at = bytes.AsSpan().IndexOf(pattern);
        Assert.That(at, Is.GreaterThan(0));
        Assert.That(bytes.AsSpan(at + 1).IndexOf(pattern), Is.EqualTo(-1), "the pattern is unique");
        BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), float.NaN);
        var corrupt = BertStructure.Read(OnnxModel.Parse(bytes));
        using var device = Device.Create(Backend.Managed);
        var e = Assert.Throws<InvalidDataException>(() => new BertEncoder(device, corrupt, pooling))!;
        Assert.That(e.Message, Does.Contain(structure.Weights[BertStructure.EmbeddingsLnGamma]).And.Contain("NaN").And.Contain("corrupt"));
    }

    [Test]
    public void IdsOutsideTheTablesAreRefusedBeforeAnyKernel()
    {
        var structure = PretrainedModels.Structure(id);
        var bad = new EncodedText([101, structure.VocabularySize, 102], [1, 1, 1], [0, 0, 0], false, 3);
        var e = Assert.Throws<ArgumentException>(() => _encoder.Forward(new BertBatch([bad], structure.MaxPositions)))!;
        Assert.That(e.Message, Does.Contain($"word id {structure.VocabularySize}").And.Contain("outside"));
    }

    internal static double MaxAbsOverRealTokens(float[] expected, float[] actual, BertBatch batch, int channels)
    {
        double worst = 0;
        for (int b = 0; b < batch.Batch; b++)
            for (int t = 0; t < batch.Lengths[b]; t++)
                for (int c = 0; c < channels; c++)
                {
                    int i = (b * batch.Tokens + t) * channels + c;
                    worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
                }
        return worst;
    }
}

/// <summary>The same encoder on ILGPU's CPU simulator (every ILGPU kernel it uses: embedding gather, residual, LayerNorm,
/// linear, permute, attention with key lengths, GELU erf) on two short texts of different lengths: its first layer against
/// ONNX Runtime's layer-0 output and against Managed. One layer, because the simulator runs every GPU thread as an OS
/// thread (a layer takes about 13 s there); the whole model runs on the simulator in `routekit pretrained`.</summary>
public class BertEncoderIlgpuTests
{
    [Test]
    public void FirstLayerEqualsOnnxRuntimeOnTheSimulator()
    {
        const PretrainedModelId id = PretrainedModelId.MiniLM;
        var structure = PretrainedModels.Structure(id);
        var tokenizer = new PretrainedTokenizer(PretrainedModels.Package(id).VocabText);
        var batch = new BertBatch([tokenizer.Encode("hello world"), tokenizer.Encode("hi")], structure.MaxPositions);
        string layer0 = OnnxRuntimeEncoder.LayerOutputName(structure, 0);
        using var ort = new OnnxRuntimeEncoder(PretrainedModels.Package(id).ModelBytes, structure, threads: 1, [layer0]);
        var expected = ort.Run(batch, [layer0])[layer0];
        using var managed = Device.Create(Backend.Managed);
        using var onManaged = new BertEncoder(managed, structure, SentencePooling.Mean);
        using var sim = Device.Create(Backend.IlgpuCpu);
        using var onSim = new BertEncoder(sim, structure, SentencePooling.Mean);
        var fromSim = onSim.Forward(batch, layers: 1).ToArray();
        double vsOrt = BertEncoderTests.MaxAbsOverRealTokens(expected, fromSim, batch, structure.Hidden);
        double vsManaged = BertEncoderTests.MaxAbsOverRealTokens(onManaged.Forward(batch, layers: 1).ToArray(), fromSim, batch, structure.Hidden);
        TestContext.Out.WriteLine($"IlgpuCpu layer 0, lengths {string.Join(",", batch.Lengths)}: max abs vs ORT {vsOrt:E2}, vs Managed {vsManaged:E2}");
        Assert.That(vsOrt, Is.LessThanOrEqualTo(1e-4));
        Assert.That(vsManaged, Is.LessThanOrEqualTo(1e-5));
    }
}
