using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The Managed SGEMM at every vector width on this machine (the widest accelerated one is what Linear uses; the others
/// are what AVX2, SSE and NEON machines run), through the three stride patterns of a linear layer, against float64.
/// </summary>
[TestFixture]
[Category("Widths")]
public sealed unsafe class SgemmWidthTests
{
    [Test]
    public void EveryWidthMatchesTheReferenceInEveryLayout([Values(128, 256, 512)] int bits)
    {
        // Emulated widths are correct but slow; keep them to a shape that still has edges in every blocked dimension.
        var accelerated = SimdWidth.IsAccelerated(bits);
        var (t, i, o) = accelerated ? (101, 263, 529) : (13, 37, 41);
        var xs = TestData.Normal(t * i, bits);
        var ws = TestData.Normal(o * i, bits + 1);
        var dys = TestData.Normal(t * o, bits + 2);
        var y = new float[t * o];
        var dx = new float[t * i];
        var dw = new float[o * i];
        fixed (float* x = xs, w = ws, dy = dys, py = y, pdx = dx, pdw = dw)
        {
            Sgemm.Multiply(t, o, i, new MatrixOperand((nint)x, i, 1), new MatrixOperand((nint)w, 1, i), py, o, bits);
            Sgemm.Multiply(t, i, o, new MatrixOperand((nint)dy, o, 1), new MatrixOperand((nint)w, i, 1), pdx, i, bits);
            Sgemm.Multiply(o, i, t, new MatrixOperand((nint)dy, 1, o), new MatrixOperand((nint)x, i, 1), pdw, i, bits);
        }
        var what = $"Vector{bits} T={t} I={i} O={o}";
        var refY = LinearReference.Forward(TestData.ToDouble(xs), TestData.ToDouble(ws), null, t, i, o);
        var refG = LinearReference.Backward(TestData.ToDouble(dys), TestData.ToDouble(xs), TestData.ToDouble(ws), t, i, o);
        var naiveG = LinearReference.Backward(dys, xs, ws, t, i, o);
        ErrorRule.Assert2x($"x W^T ({what})", y, refY, LinearReference.Forward(xs, ws, null, t, i, o), ErrorRule.ScaledFloor(refY));
        ErrorRule.Assert2x($"dy W ({what})", dx, refG.DX, naiveG.DX, ErrorRule.ScaledFloor(refG.DX));
        ErrorRule.Assert2x($"dy^T x ({what})", dw, refG.DW, naiveG.DW, ErrorRule.ScaledFloor(refG.DW));
    }

    [Test]
    public void RefusesAnUnknownWidth()
    {
        var c = new float[1];
        fixed (float* pc = c)
        {
            var p = (nint)pc;
            Assert.Throws<ArgumentOutOfRangeException>(() => Sgemm.Multiply(1, 1, 1, new MatrixOperand(p, 1, 1), new MatrixOperand(p, 1, 1), (float*)p, 1, 64));
        }
    }
}
