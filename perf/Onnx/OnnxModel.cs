// Writes ONNX models in code, without the onnx package: the protobuf wire format of the handful of messages a graph
// needs (onnx/onnx.proto, field numbers below), so the side-by-side with ONNX Runtime builds its model for any shape at
// run time. Wire format: a field is a varint key (number << 3 | wire type) followed by a varint (type 0), 4 bytes
// (type 5, float) or a varint length and bytes (type 2: strings, bytes and nested messages).
//
// Messages used (field numbers from onnx.proto):
//   ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8
//   OperatorSetIdProto: domain 1, version 2
//   GraphProto: node 1, name 2, initializer 5, input 11, output 12
//   NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7
//   AttributeProto: name 1, f 2, i 3, ints 8, type 20 (FLOAT 1, INT 2, INTS 7)
//   TensorProto: dims 1, data_type 2 (FLOAT 1), name 8, raw_data 9
//   ValueInfoProto: name 1, type 2; TypeProto: tensor_type 1; TypeProto.Tensor: elem_type 1, shape 2;
//   TensorShapeProto: dim 1; Dimension: dim_value 1
using System.Text;

namespace RouteKit.Perf.Onnx;

/// <summary>A minimal protobuf writer: enough to serialise an ONNX ModelProto.</summary>
public sealed class ProtoWriter
{
    private readonly MemoryStream buffer = new();

    /// <summary>The bytes written so far.</summary>
    public byte[] ToArray() => buffer.ToArray();

    /// <summary>A varint field (wire type 0).</summary>
    public ProtoWriter Varint(int field, long value)
    {
        Key(field, 0);
        RawVarint((ulong)value);
        return this;
    }

    /// <summary>A float field (wire type 5).</summary>
    public ProtoWriter Float(int field, float value)
    {
        Key(field, 5);
        Span<byte> bytes = stackalloc byte[4];
        BitConverter.TryWriteBytes(bytes, value);
        if (!BitConverter.IsLittleEndian) bytes.Reverse();
        buffer.Write(bytes);
        return this;
    }

    /// <summary>A length-delimited field (wire type 2).</summary>
    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Key(field, 2);
        RawVarint((ulong)value.Length);
        buffer.Write(value);
        return this;
    }

    /// <summary>A UTF-8 string field.</summary>
    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    /// <summary>A nested message.</summary>
    public ProtoWriter Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

    private void Key(int field, int wireType) => RawVarint((ulong)((field << 3) | wireType));

    private void RawVarint(ulong value)
    {
        while (value >= 0x80)
        {
            buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        buffer.WriteByte((byte)value);
    }
}

/// <summary>Builds the ONNX graphs the side-by-side times.</summary>
public static class OnnxModel
{
    private const int FloatType = 1;

    /// <summary>
    /// Attention over q, k, v [B, H, N, D] -> y [B, H, N, D] with the default scale 1/sqrt(D).
    /// <paramref name="fused"/>: the opset-23 <c>Attention</c> operator; otherwise Transpose(k), MatMul, Mul(scale),
    /// Softmax(axis -1), MatMul (opset 13), the graph an exporter writes for SDPA's math path.
    /// </summary>
    public static byte[] Attention(int b, int h, int n, int m, int d, bool causal, bool fused)
    {
        var graph = new ProtoWriter().String(2, fused ? "attention23" : "matmul_softmax_matmul");
        long[] qShape = [b, h, n, d], kvShape = [b, h, m, d];
        graph.Message(11, ValueInfo("q", qShape)).Message(11, ValueInfo("k", kvShape)).Message(11, ValueInfo("v", kvShape));
        graph.Message(12, ValueInfo("y", qShape));
        if (fused)
        {
            var node = Node("Attention", ["q", "k", "v"], ["y"]);
            if (causal) node.Message(5, IntAttribute("is_causal", 1));
            graph.Message(1, node);
            return Model(graph, 23);
        }
        if (causal)
            throw new NotSupportedException("The MatMul-Softmax-MatMul graph is built without a mask; time causal shapes with the fused operator.");
        graph.Message(5, ScalarInitializer("scale", 1f / MathF.Sqrt(d)));
        graph.Message(1, Node("Transpose", ["k"], ["kt"]).Message(5, IntsAttribute("perm", [0, 1, 3, 2])));
        graph.Message(1, Node("MatMul", ["q", "kt"], ["s"]));
        graph.Message(1, Node("Mul", ["s", "scale"], ["z"]));
        graph.Message(1, Node("Softmax", ["z"], ["p"]).Message(5, IntAttribute("axis", -1)));
        graph.Message(1, Node("MatMul", ["p", "v"], ["y"]));
        return Model(graph, 13);
    }

    /// <summary>
    /// ONNX Runtime's fused contrib operator <c>com.microsoft.MultiHeadAttention</c> over q [B, N, H D], k and v
    /// [B, M, H D] (its 3-D layout: the heads side by side in the last axis) -> y [B, N, H D], scale 1/sqrt(D);
    /// <paramref name="causal"/> sets its <c>unidirectional</c> attribute.
    /// </summary>
    public static byte[] MultiHeadAttention(int b, int h, int n, int m, int d, bool causal)
    {
        var graph = new ProtoWriter().String(2, "multi_head_attention");
        long[] qShape = [b, n, (long)h * d], kvShape = [b, m, (long)h * d];
        graph.Message(11, ValueInfo("q", qShape)).Message(11, ValueInfo("k", kvShape)).Message(11, ValueInfo("v", kvShape));
        graph.Message(12, ValueInfo("y", qShape));
        var node = Node("MultiHeadAttention", ["q", "k", "v"], ["y"]).String(7, "com.microsoft").Message(5, IntAttribute("num_heads", h));
        if (causal) node.Message(5, IntAttribute("unidirectional", 1));
        graph.Message(1, node);
        return new ProtoWriter().Varint(1, 10).String(2, "routekit-perf").Message(7, graph)
            .Message(8, new ProtoWriter().String(1, "").Varint(2, 23))
            .Message(8, new ProtoWriter().String(1, "com.microsoft").Varint(2, 1)).ToArray();
    }

    /// <summary>ReduceL1 and ReduceL2 over the last axis of x [R, F] -> l1 [R], l2 [R] (opset 18: axes is an input).</summary>
    public static byte[] FeatureNorms(int rows, int features)
    {
        var graph = new ProtoWriter().String(2, "feature_norms");
        graph.Message(11, ValueInfo("x", [rows, features]));
        graph.Message(12, ValueInfo("l1", [rows])).Message(12, ValueInfo("l2", [rows]));
        var axes = new ProtoWriter().Varint(1, 1).Varint(2, 7 /* INT64 */).String(8, "axes").Bytes(9, BitConverter.GetBytes(-1L));
        graph.Message(5, axes);
        graph.Message(1, Node("ReduceL1", ["x", "axes"], ["l1"]).Message(5, IntAttribute("keepdims", 0)));
        graph.Message(1, Node("ReduceL2", ["x", "axes"], ["l2"]).Message(5, IntAttribute("keepdims", 0)));
        return Model(graph, 18);
    }

    /// <summary>
    /// One MatMul node: a [M, K] x b [K, N] -> c [M, N], both operands graph inputs (opset 13), so ONNX Runtime packs b
    /// on every run as RouteKit's Sgemm does (an initializer would let it pre-pack b once at session creation).
    /// </summary>
    public static byte[] MatMul(int m, int k, int n)
    {
        var graph = new ProtoWriter().String(2, "matmul");
        graph.Message(11, ValueInfo("a", [m, k])).Message(11, ValueInfo("b", [k, n]));
        graph.Message(12, ValueInfo("c", [m, n]));
        graph.Message(1, Node("MatMul", ["a", "b"], ["c"]));
        return Model(graph, 13);
    }

    private static byte[] Model(ProtoWriter graph, int opset) =>
        new ProtoWriter().Varint(1, 10).String(2, "routekit-perf").Message(7, graph)
            .Message(8, new ProtoWriter().String(1, "").Varint(2, opset)).ToArray();

    private static ProtoWriter Node(string op, string[] inputs, string[] outputs)
    {
        var node = new ProtoWriter();
        foreach (var i in inputs) node.String(1, i);
        foreach (var o in outputs) node.String(2, o);
        return node.String(3, op.ToLowerInvariant() + "_" + outputs[0]).String(4, op);
    }

    private static ProtoWriter IntAttribute(string name, long value) => new ProtoWriter().String(1, name).Varint(3, value).Varint(20, 2);

    private static ProtoWriter IntsAttribute(string name, long[] values)
    {
        var a = new ProtoWriter().String(1, name);
        foreach (var v in values) a.Varint(8, v);
        return a.Varint(20, 7);
    }

    private static ProtoWriter ScalarInitializer(string name, float value) =>
        new ProtoWriter().Varint(2, FloatType).String(8, name).Bytes(9, BitConverter.GetBytes(value));

    private static ProtoWriter ValueInfo(string name, long[] shape)
    {
        var dims = new ProtoWriter();
        foreach (var s in shape) dims.Message(1, new ProtoWriter().Varint(1, s));
        var tensor = new ProtoWriter().Varint(1, FloatType).Message(2, dims);
        return new ProtoWriter().String(1, name).Message(2, new ProtoWriter().Message(1, tensor));
    }
}
