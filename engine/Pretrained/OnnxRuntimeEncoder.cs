using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace RouteKit.Engine.Pretrained;

/// <summary>
/// The trusted side of the equality check: the same model file run by ONNX Runtime (CPU execution provider, a fixed
/// number of intra-op threads, sequential execution), fed the same padded batch as <see cref="BertEncoder"/> with the
/// attention mask marking the padding. Extra graph values (e.g. one layer's output, for slice tests) are made graph outputs
/// by <see cref="WithOutputs"/>.
/// </summary>
public sealed class OnnxRuntimeEncoder : IDisposable
{
    private readonly InferenceSession _session;
    private readonly SessionOptions _options;
    private readonly BertStructure _structure;

    /// <summary>A session over <paramref name="modelBytes"/> (with <paramref name="extraOutputs"/> added as graph outputs).</summary>
    /// <param name="modelBytes">The .onnx file's bytes.</param>
    /// <param name="structure">The structure read from the same bytes (input names).</param>
    /// <param name="threads">Intra-op threads (1 or more).</param>
    /// <param name="extraOutputs">Names of graph values to expose as float outputs.</param>
    public OnnxRuntimeEncoder(byte[] modelBytes, BertStructure structure, int threads, IReadOnlyList<string>? extraOutputs = null)
    {
        ArgumentNullException.ThrowIfNull(modelBytes);
        ArgumentNullException.ThrowIfNull(structure);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        _structure = structure;
        _options = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        try
        {
            var bytes = extraOutputs is { Count: > 0 } ? WithOutputs(modelBytes, extraOutputs) : modelBytes;
            _session = new InferenceSession(bytes, _options);
        }
        catch
        {
            _options.Dispose();
            throw;
        }
        Threads = threads;
    }

    /// <summary>Intra-op threads.</summary>
    public int Threads { get; }

    /// <summary>Runs the batch and returns the named outputs, each flattened ([B, T, C] for hidden states).</summary>
    public IReadOnlyDictionary<string, float[]> Run(BertBatch batch, IReadOnlyList<string> outputs)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int b = batch.Batch, t = batch.Tokens;
        var ids = new long[b * t];
        var mask = new long[b * t];
        var types = new long[b * t];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < batch.Lengths[i]; j++)
            {
                ids[i * t + j] = (long)batch.WordIds[i * t + j];
                types[i * t + j] = (long)batch.TypeIds[i * t + j];
                mask[i * t + j] = 1;
            }
        var feeds = new Dictionary<string, long[]> { ["input_ids"] = ids, ["attention_mask"] = mask, ["token_type_ids"] = types };
        var inputs = new List<NamedOnnxValue>();
        foreach (var name in _structure.InputNames)
        {
            if (!feeds.TryGetValue(name, out var data))
                throw new NotSupportedException($"graph input '{name}' is not one of input_ids, attention_mask, token_type_ids.");
            inputs.Add(NamedOnnxValue.CreateFromTensor(name, new DenseTensor<long>(data, [b, t])));
        }
        using var results = _session.Run(inputs, outputs);
        return results.ToDictionary(r => r.Name, r => r.AsTensor<float>().ToArray());
    }

    /// <summary>The last hidden state [B * T * C] of the batch.</summary>
    public float[] LastHiddenState(BertBatch batch) => Run(batch, [_structure.HiddenStateOutput])[_structure.HiddenStateOutput];

    /// <summary>
    /// The graph value holding layer <paramref name="layer"/>'s output (the feed-forward LayerNorm's last Add, the one that
    /// adds its beta), found from the weight map.
    /// </summary>
    public static string LayerOutputName(BertStructure structure, int layer)
    {
        var beta = structure.Weights[BertStructure.Layer(layer, "ffn.ln.beta")];
        var node = structure.Model.Nodes.SingleOrDefault(n => n.Inputs.Contains(beta))
            ?? throw new InvalidDataException($"no single node reads '{beta}' (layer {layer}'s output LayerNorm beta).");
        return node.Outputs[0];
    }

    /// <summary>
    /// The model bytes with the named graph values appended to GraphProto.output (field 12) as float tensors of unknown
    /// shape: ModelProto's other fields are copied byte for byte, and the graph field (7) is re-written with the new length.
    /// </summary>
    public static byte[] WithOutputs(byte[] model, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(model);
        var extra = new MemoryStream();
        foreach (var name in names)
        {
            var nameBytes = System.Text.Encoding.UTF8.GetBytes(name);
            // TypeProto { tensor_type (1): TypeProto.Tensor { elem_type (1) = FLOAT (1) } }
            byte[] tensorType = [0x08, 0x01];
            var type = Field(1, tensorType);
            var valueInfo = Concat(Field(1, nameBytes), Field(2, type));
            extra.Write(Field(12, valueInfo));
        }
        var reader = new ProtoReader(model, 0, "ModelProto");
        var output = new MemoryStream(model.Length + (int)extra.Length + 16);
        bool found = false;
        while (!reader.End)
        {
            long start = reader.Offset;
            var (field, wire) = reader.ReadTag();
            if (field == 7 && wire == 2)
            {
                var (graph, _) = reader.ReadBytes(field);
                output.Write(Field(7, Concat(graph.ToArray(), extra.ToArray())));
                found = true;
                continue;
            }
            reader.Skip(field, wire);
            output.Write(model, (int)start, (int)(reader.Offset - start));
        }
        if (!found) throw new InvalidDataException("ONNX file has no graph (ModelProto field 7).");
        return output.ToArray();
    }

    private static byte[] Field(int number, byte[] payload)
    {
        var s = new MemoryStream(payload.Length + 8);
        Varint(s, (ulong)((number << 3) | 2));
        Varint(s, (ulong)payload.Length);
        s.Write(payload);
        return s.ToArray();
    }

    private static void Varint(Stream s, ulong v)
    {
        while (v >= 0x80) { s.WriteByte((byte)(v | 0x80)); v >>= 7; }
        s.WriteByte((byte)v);
    }

    private static byte[] Concat(byte[] a, byte[] b)
    {
        var r = new byte[a.Length + b.Length];
        a.CopyTo(r, 0);
        b.CopyTo(r, a.Length);
        return r;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _session.Dispose();
        _options.Dispose();
    }
}
