using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

[Explicit("dump")]
public class OnnxDumpTests
{
    [TestCase(PretrainedModelId.MiniLM)]
    [TestCase(PretrainedModelId.ArcticXs)]
    public void Dump(PretrainedModelId id)
    {
        var p = PretrainedPackage.Load(id);
        var m = OnnxModel.Parse(p.ModelBytes);
        using var w = new StreamWriter($"/tmp/dump-{id}.txt");
        w.WriteLine(string.Join(", ", p.ResourceNames));
        w.WriteLine($"{m.Producer} ir {m.IrVersion} opsets {string.Join(",", m.Opsets)}");
        foreach (var i in m.Inputs) w.WriteLine("IN " + i);
        foreach (var o in m.Outputs) w.WriteLine("OUT " + o);
        foreach (var t in m.Initializers.Values) w.WriteLine($"INIT {t.Name} {t.DataType} {t.Shape}" + (t.ElementCount <= 8 && t.DataType is OnnxDataType.Float or OnnxDataType.Int64 ? " = " + (t.DataType == OnnxDataType.Float ? string.Join(",", t.ToFloats()) : string.Join(",", t.ToInt64s())) : ""));
        foreach (var n in m.Nodes)
            w.WriteLine($"NODE {n.OpType} {n.Name} ({string.Join(", ", n.Inputs)}) -> ({string.Join(", ", n.Outputs)}) {string.Join(" ", n.Attributes.Values.Select(a => a.Name + "=" + (a.Float?.ToString() ?? a.Int?.ToString() ?? a.String ?? (a.Tensor is { } t ? t.DataType + t.Shape + (t.ElementCount <= 8 ? "{" + (t.DataType == OnnxDataType.Float ? string.Join(",", t.ToFloats()) : t.DataType is OnnxDataType.Int64 or OnnxDataType.Int32 ? string.Join(",", t.ToInt64s()) : "") + "}" : "") : "[" + string.Join(",", a.Ints) + string.Join(",", a.Floats) + "]"))))}");
    }
}
