using System.Buffers.Binary;

namespace RouteKit.Engine.Pretrained;

/// <summary>ONNX TensorProto.DataType values this reader names.</summary>
public enum OnnxDataType
{
    /// <summary>Not set.</summary>
    Undefined = 0,
    /// <summary>32-bit float.</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit.</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit.</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit.</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit.</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit.</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit.</summary>
    Int64 = 7,
    /// <summary>String.</summary>
    String = 8,
    /// <summary>Boolean.</summary>
    Bool = 9,
    /// <summary>16-bit float.</summary>
    Float16 = 10,
    /// <summary>64-bit float.</summary>
    Double = 11,
}

/// <summary>
/// A tensor of an ONNX file (an initializer, or a Constant node's value). The payload is kept as it was stored
/// (raw_data, or the typed repeated fields) and decoded on request.
/// </summary>
public sealed class OnnxTensor
{
    private readonly ReadOnlyMemory<byte> _raw;
    private readonly float[]? _floatData;
    private readonly long[]? _int64Data;
    private readonly long[]? _int32Data;

    internal OnnxTensor(string name, long[] dims, OnnxDataType dataType, ReadOnlyMemory<byte> raw, float[]? floatData,
        long[]? int64Data, long[]? int32Data, bool external)
    {
        Name = name;
        Dims = dims;
        DataType = dataType;
        _raw = raw;
        _floatData = floatData;
        _int64Data = int64Data;
        _int32Data = int32Data;
        IsExternal = external;
    }

    /// <summary>The tensor's name (empty for an unnamed Constant value).</summary>
    public string Name { get; }

    /// <summary>Its dimensions (empty: a scalar).</summary>
    public long[] Dims { get; }

    /// <summary>Its element type.</summary>
    public OnnxDataType DataType { get; }

    /// <summary>Whether the data lives in an external file (not supported: refused on decoding).</summary>
    public bool IsExternal { get; }

    /// <summary>The number of elements (product of the dimensions; 1 for a scalar).</summary>
    public long ElementCount => Dims.Aggregate(1L, (a, b) => a * b);

    /// <summary>The dimensions as text, e.g. <c>[384, 1536]</c>.</summary>
    public string Shape => "[" + string.Join(", ", Dims) + "]";

    /// <summary>The float32 values, row-major in <see cref="Dims"/>.</summary>
    /// <exception cref="InvalidDataException">The tensor is not float32, is stored externally, or its data does not
    /// hold <see cref="ElementCount"/> values.</exception>
    public float[] ToFloats()
    {
        if (DataType != OnnxDataType.Float)
            throw new InvalidDataException($"ONNX tensor '{Name}' {Shape} is {DataType}, not float32: only float32 weights are read.");
        CheckInternal();
        long count = ElementCount;
        if (_raw.Length > 0)
        {
            if (_raw.Length != count * 4)
                throw new InvalidDataException($"ONNX tensor '{Name}' {Shape}: raw_data has {_raw.Length} bytes, expected {count * 4}.");
            var result = new float[count];
            var span = _raw.Span;
            if (BitConverter.IsLittleEndian) span.CopyTo(System.Runtime.InteropServices.MemoryMarshal.AsBytes(result.AsSpan()));
            else for (int i = 0; i < result.Length; i++) result[i] = BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]);
            return result;
        }
        var data = _floatData ?? [];
        if (data.Length != count)
            throw new InvalidDataException($"ONNX tensor '{Name}' {Shape}: float_data has {data.Length} values, expected {count}.");
        return (float[])data.Clone();
    }

    /// <summary>The same tensor under another name (a Constant node's value takes its output's name).</summary>
    internal OnnxTensor Named(string name) => new(name, Dims, DataType, _raw, _floatData, _int64Data, _int32Data, IsExternal);

    /// <summary>The integer values of an int64 or int32 tensor (e.g. a Reshape shape).</summary>
    /// <exception cref="InvalidDataException">The tensor is not an integer tensor or its data is short.</exception>
    public long[] ToInt64s()
    {
        CheckInternal();
        long count = ElementCount;
        if (DataType is OnnxDataType.Int64 or OnnxDataType.Int32)
        {
            int size = DataType == OnnxDataType.Int64 ? 8 : 4;
            if (_raw.Length > 0)
            {
                if (_raw.Length != count * size)
                    throw new InvalidDataException($"ONNX tensor '{Name}' {Shape}: raw_data has {_raw.Length} bytes, expected {count * size}.");
                var result = new long[count];
                var span = _raw.Span;
                for (int i = 0; i < result.Length; i++)
                    result[i] = size == 8 ? BinaryPrimitives.ReadInt64LittleEndian(span[(i * 8)..]) : BinaryPrimitives.ReadInt32LittleEndian(span[(i * 4)..]);
                return result;
            }
            var data = (DataType == OnnxDataType.Int64 ? _int64Data : _int32Data) ?? [];
            if (data.Length != count)
                throw new InvalidDataException($"ONNX tensor '{Name}' {Shape}: has {data.Length} integer values, expected {count}.");
            return (long[])data.Clone();
        }
        throw new InvalidDataException($"ONNX tensor '{Name}' {Shape} is {DataType}, not an integer tensor.");
    }

    /// <summary>A scalar (or one-element) value as a double, for float or integer tensors.</summary>
    public double ToScalar()
    {
        if (ElementCount != 1) throw new InvalidDataException($"ONNX tensor '{Name}' {Shape} is not a scalar.");
        return DataType == OnnxDataType.Float ? ToFloats()[0] : ToInt64s()[0];
    }

    private void CheckInternal()
    {
        if (IsExternal)
            throw new InvalidDataException($"ONNX tensor '{Name}' {Shape} stores its data in an external file, which is not supported.");
    }

    internal static OnnxTensor Parse(ProtoReader reader)
    {
        var dims = new List<long>();
        int dataType = 0;
        string name = "";
        ReadOnlyMemory<byte> raw = default;
        List<float>? floats = null;
        List<long>? int64s = null, int32s = null;
        bool external = false;
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            switch (field)
            {
                case 1: reader.ReadInt64s(field, wire, dims); break;
                case 2: reader.Expect(field, wire, 0); dataType = (int)reader.ReadVarint(); break;
                case 4: reader.ReadFloats(field, wire, floats ??= []); break;
                case 5: reader.ReadInt64s(field, wire, int32s ??= []); break;
                case 7: reader.ReadInt64s(field, wire, int64s ??= []); break;
                case 8: reader.Expect(field, wire, 2); name = reader.ReadString(field); break;
                case 9: reader.Expect(field, wire, 2); raw = reader.ReadBytes(field).Bytes; break;
                case 14: reader.Expect(field, wire, 0); external = reader.ReadVarint() == 1; break;
                default: reader.Skip(field, wire); break;
            }
        }
        long product = 1;
        foreach (var d in dims)
        {
            if (d < 0) throw reader.Error(reader.Offset, $"tensor '{name}' has negative dimension {d}");
            if (d > 0 && product > long.MaxValue / 8 / d) throw reader.Error(reader.Offset, $"tensor '{name}' dimensions [{string.Join(", ", dims)}] overflow");
            product *= d;
        }
        return new OnnxTensor(name, [.. dims], (OnnxDataType)dataType, raw, floats?.ToArray(), int64s?.ToArray(),
            int32s?.Select(v => (long)(int)v).ToArray(), external);
    }
}

/// <summary>An attribute of an ONNX node: the fields this reader keeps (f, i, s, t, floats, ints).</summary>
/// <param name="Name">The attribute's name.</param>
/// <param name="Float">The f field, if set.</param>
/// <param name="Int">The i field, if set.</param>
/// <param name="String">The s field (as UTF-8 text), if set.</param>
/// <param name="Tensor">The t field, if set (e.g. a Constant node's value).</param>
/// <param name="Floats">The floats field (empty when not set).</param>
/// <param name="Ints">The ints field (empty when not set).</param>
public sealed record OnnxAttribute(string Name, float? Float, long? Int, string? String, OnnxTensor? Tensor,
    IReadOnlyList<float> Floats, IReadOnlyList<long> Ints)
{
    internal static OnnxAttribute Parse(ProtoReader reader)
    {
        string name = "";
        float? f = null;
        long? i = null;
        string? s = null;
        OnnxTensor? t = null;
        var floats = new List<float>();
        var ints = new List<long>();
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            switch (field)
            {
                case 1: reader.Expect(field, wire, 2); name = reader.ReadString(field); break;
                case 2: reader.Expect(field, wire, 5); f = BitConverter.UInt32BitsToSingle(reader.ReadFixed32()); break;
                case 3: reader.Expect(field, wire, 0); i = (long)reader.ReadVarint(); break;
                case 4: reader.Expect(field, wire, 2); s = System.Text.Encoding.UTF8.GetString(reader.ReadBytes(field).Bytes.Span); break;
                case 5: reader.Expect(field, wire, 2); t = OnnxTensor.Parse(reader.ReadMessage(field, $"the tensor of attribute '{name}'")); break;
                case 7: reader.ReadFloats(field, wire, floats); break;
                case 8: reader.ReadInt64s(field, wire, ints); break;
                default: reader.Skip(field, wire); break;
            }
        }
        return new OnnxAttribute(name, f, i, s, t, floats, ints);
    }
}

/// <summary>A node of the ONNX graph.</summary>
/// <param name="Name">The node's name (may be empty).</param>
/// <param name="OpType">The operator, e.g. MatMul.</param>
/// <param name="Domain">The operator's domain (empty: the default ai.onnx).</param>
/// <param name="Inputs">Input value names (an empty name is an omitted optional input).</param>
/// <param name="Outputs">Output value names.</param>
/// <param name="Attributes">Attributes by name.</param>
public sealed record OnnxNode(string Name, string OpType, string Domain, IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs, IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    internal static OnnxNode Parse(ProtoReader reader)
    {
        string name = "", op = "", domain = "";
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attributes = new Dictionary<string, OnnxAttribute>();
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            switch (field)
            {
                case 1: reader.Expect(field, wire, 2); inputs.Add(reader.ReadString(field)); break;
                case 2: reader.Expect(field, wire, 2); outputs.Add(reader.ReadString(field)); break;
                case 3: reader.Expect(field, wire, 2); name = reader.ReadString(field); break;
                case 4: reader.Expect(field, wire, 2); op = reader.ReadString(field); break;
                case 5:
                    reader.Expect(field, wire, 2);
                    var attribute = OnnxAttribute.Parse(reader.ReadMessage(field, $"an attribute of node '{name}'"));
                    attributes[attribute.Name] = attribute;
                    break;
                case 7: reader.Expect(field, wire, 2); domain = reader.ReadString(field); break;
                default: reader.Skip(field, wire); break;
            }
        }
        if (op == "Constant" && outputs.Count == 1 && attributes.TryGetValue("value", out var value) && value.Tensor is { Name: "" } unnamed)
            attributes["value"] = value with { Tensor = unnamed.Named(outputs[0]) };
        return new OnnxNode(name, op, domain, inputs, outputs, attributes);
    }
}

/// <summary>A graph input or output: its name, element type and shape (a dimension is a number or a symbolic name).</summary>
/// <param name="Name">The value's name, e.g. input_ids.</param>
/// <param name="ElementType">The element type.</param>
/// <param name="Shape">Each dimension: its size, or its symbolic name (e.g. batch_size), or "?" when unknown.</param>
public sealed record OnnxValueInfo(string Name, OnnxDataType ElementType, IReadOnlyList<string> Shape)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {ElementType} [{string.Join(", ", Shape)}]";

    internal static OnnxValueInfo Parse(ProtoReader reader)
    {
        string name = "";
        int elemType = 0;
        var shape = new List<string>();
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            if (field == 1) { reader.Expect(field, wire, 2); name = reader.ReadString(field); }
            else if (field == 2)
            {
                reader.Expect(field, wire, 2);
                var type = reader.ReadMessage(field, $"the type of '{name}'");
                while (!type.End)
                {
                    var (tf, tw) = type.ReadTag();
                    if (tf != 1) { type.Skip(tf, tw); continue; } // only tensor_type
                    type.Expect(tf, tw, 2);
                    var tensor = type.ReadMessage(tf, $"the tensor type of '{name}'");
                    while (!tensor.End)
                    {
                        var (nf, nw) = tensor.ReadTag();
                        if (nf == 1) { tensor.Expect(nf, nw, 0); elemType = (int)tensor.ReadVarint(); }
                        else if (nf == 2)
                        {
                            tensor.Expect(nf, nw, 2);
                            var shapeReader = tensor.ReadMessage(nf, $"the shape of '{name}'");
                            while (!shapeReader.End)
                            {
                                var (sf, sw) = shapeReader.ReadTag();
                                if (sf != 1) { shapeReader.Skip(sf, sw); continue; }
                                shapeReader.Expect(sf, sw, 2);
                                var dim = shapeReader.ReadMessage(sf, $"a dimension of '{name}'");
                                string text = "?";
                                while (!dim.End)
                                {
                                    var (df, dw) = dim.ReadTag();
                                    if (df == 1) { dim.Expect(df, dw, 0); text = ((long)dim.ReadVarint()).ToString(); }
                                    else if (df == 2) { dim.Expect(df, dw, 2); text = dim.ReadString(df); }
                                    else dim.Skip(df, dw);
                                }
                                shape.Add(text);
                            }
                        }
                        else tensor.Skip(nf, nw);
                    }
                }
            }
            else reader.Skip(field, wire);
        }
        return new OnnxValueInfo(name, (OnnxDataType)elemType, shape);
    }
}

/// <summary>
/// An ONNX model read with a small hand-written protobuf reader (ModelProto.graph and, within it, nodes, initializers,
/// inputs and outputs; everything else is skipped). Tensor payloads are not copied until decoded.
/// </summary>
public sealed class OnnxModel
{
    private OnnxModel(long irVersion, string producer, IReadOnlyList<(string Domain, long Version)> opsets, string graphName,
        IReadOnlyList<OnnxNode> nodes, IReadOnlyDictionary<string, OnnxTensor> initializers,
        IReadOnlyList<OnnxValueInfo> inputs, IReadOnlyList<OnnxValueInfo> outputs)
    {
        IrVersion = irVersion;
        Producer = producer;
        Opsets = opsets;
        GraphName = graphName;
        Nodes = nodes;
        Initializers = initializers;
        Inputs = inputs;
        Outputs = outputs;
    }

    /// <summary>ModelProto.ir_version.</summary>
    public long IrVersion { get; }

    /// <summary>producer_name and producer_version.</summary>
    public string Producer { get; }

    /// <summary>The operator sets imported (domain, version).</summary>
    public IReadOnlyList<(string Domain, long Version)> Opsets { get; }

    /// <summary>The graph's name.</summary>
    public string GraphName { get; }

    /// <summary>The nodes in file order (ONNX requires a topological order).</summary>
    public IReadOnlyList<OnnxNode> Nodes { get; }

    /// <summary>The initializers by name.</summary>
    public IReadOnlyDictionary<string, OnnxTensor> Initializers { get; }

    /// <summary>The graph inputs that are not initializers.</summary>
    public IReadOnlyList<OnnxValueInfo> Inputs { get; }

    /// <summary>The graph outputs.</summary>
    public IReadOnlyList<OnnxValueInfo> Outputs { get; }

    /// <summary>An initializer's float32 values and dimensions.</summary>
    /// <exception cref="KeyNotFoundException">No initializer has that name.</exception>
    /// <exception cref="InvalidDataException">It is not float32 (the message names it).</exception>
    public (float[] Values, long[] Dims) Float(string name)
    {
        if (!Initializers.TryGetValue(name, out var tensor))
            throw new KeyNotFoundException($"The ONNX graph has no initializer named '{name}'.");
        return (tensor.ToFloats(), tensor.Dims);
    }

    /// <summary>Reads a model file.</summary>
    public static OnnxModel Load(string path) => Parse(File.ReadAllBytes(path));

    /// <summary>Parses a serialized ModelProto.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a well-formed ONNX model (the message names the byte
    /// offset and the message being read).</exception>
    public static OnnxModel Parse(ReadOnlyMemory<byte> bytes)
    {
        var reader = new ProtoReader(bytes, 0, "ModelProto");
        long ir = 0;
        string producer = "", version = "";
        var opsets = new List<(string, long)>();
        ProtoReader? graph = null;
        while (!reader.End)
        {
            var (field, wire) = reader.ReadTag();
            switch (field)
            {
                case 1: reader.Expect(field, wire, 0); ir = (long)reader.ReadVarint(); break;
                case 2: reader.Expect(field, wire, 2); producer = reader.ReadString(field); break;
                case 3: reader.Expect(field, wire, 2); version = reader.ReadString(field); break;
                case 7: reader.Expect(field, wire, 2); graph = reader.ReadMessage(field, "GraphProto"); break;
                case 8:
                    reader.Expect(field, wire, 2);
                    var opset = reader.ReadMessage(field, "OperatorSetIdProto");
                    string domain = "";
                    long opsetVersion = 0;
                    while (!opset.End)
                    {
                        var (of, ow) = opset.ReadTag();
                        if (of == 1) { opset.Expect(of, ow, 2); domain = opset.ReadString(of); }
                        else if (of == 2) { opset.Expect(of, ow, 0); opsetVersion = (long)opset.ReadVarint(); }
                        else opset.Skip(of, ow);
                    }
                    opsets.Add((domain, opsetVersion));
                    break;
                default: reader.Skip(field, wire); break;
            }
        }
        if (graph is not { } g)
            throw new InvalidDataException($"ONNX file has no graph (ModelProto field 7) in its {bytes.Length} bytes: not an ONNX model, or truncated.");

        string graphName = "";
        var nodes = new List<OnnxNode>();
        var initializers = new Dictionary<string, OnnxTensor>();
        var inputs = new List<OnnxValueInfo>();
        var outputs = new List<OnnxValueInfo>();
        while (!g.End)
        {
            var (field, wire) = g.ReadTag();
            switch (field)
            {
                case 1: g.Expect(field, wire, 2); nodes.Add(OnnxNode.Parse(g.ReadMessage(field, $"NodeProto #{nodes.Count}"))); break;
                case 2: g.Expect(field, wire, 2); graphName = g.ReadString(field); break;
                case 5:
                    g.Expect(field, wire, 2);
                    var tensor = OnnxTensor.Parse(g.ReadMessage(field, $"initializer #{initializers.Count}"));
                    initializers[tensor.Name] = tensor;
                    break;
                case 11: g.Expect(field, wire, 2); inputs.Add(OnnxValueInfo.Parse(g.ReadMessage(field, "a graph input"))); break;
                case 12: g.Expect(field, wire, 2); outputs.Add(OnnxValueInfo.Parse(g.ReadMessage(field, "a graph output"))); break;
                default: g.Skip(field, wire); break;
            }
        }
        if (nodes.Count == 0)
            throw new InvalidDataException("ONNX graph has no nodes: not an ONNX model, or truncated.");
        // Older exporters list initializers among the inputs too: keep the true inputs only.
        inputs.RemoveAll(i => initializers.ContainsKey(i.Name));
        return new OnnxModel(ir, (producer + " " + version).Trim(), opsets, graphName, nodes, initializers, inputs, outputs);
    }
}
