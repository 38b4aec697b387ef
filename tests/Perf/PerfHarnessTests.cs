using NUnit.Framework;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Perf.Onnx;
using RouteKit.Perf.Peak;

namespace RouteKit.Tests;

/// <summary>The perf harness's checks themselves: a wrong output fails validation, the ONNX side by side validates
/// ONNX Runtime against the Reference, and the GPU peak formula gives the datasheet figure.</summary>
[TestFixture]
public sealed class PerfHarnessTests
{
    [Test]
    public void AttentionValidationRejectsTheWrongMask()
    {
        var shape = new AttentionShape(1, 2, 33, 47, 16, Causal: false, Score.Dot, Normalize: false);
        using var device = Device.Create(Backend.Managed);
        float[] q = Bench.Normal(2 * 33 * 16, 1), k = Bench.Normal(2 * 47 * 16, 2), v = Bench.Normal(2 * 47 * 16, 3), dOut = Bench.Normal(2 * 33 * 16, 4);
        using var tq = device.FromArray(q, 1, 2, 33, 16);
        using var tk = device.FromArray(k, 1, 2, 47, 16);
        using var tv = device.FromArray(v, 1, 2, 47, 16);
        using var tdo = device.FromArray(dOut, 1, 2, 33, 16);
        var right = shape.Options;
        var wrong = right with { Causal = true };
        using (var fwd = RouteKit.Attention.Forward(tq, tk, tv, right))
        using (var grads = RouteKit.Attention.Backward(tdo, tq, tk, tv, fwd, right))
            Assert.That(AttentionBenchmark.Validate(shape, q, k, v, dOut, fwd, grads).Ok, Is.True);
        using (var fwd = RouteKit.Attention.Forward(tq, tk, tv, wrong))
        using (var grads = RouteKit.Attention.Backward(tdo, tq, tk, tv, fwd, wrong))
        {
            var (ok, message) = AttentionBenchmark.Validate(shape, q, k, v, dOut, fwd, grads);
            Assert.That(ok, Is.False, message);
            Assert.That(message, Does.StartWith("FAILED").And.Contain("O ").And.Contain(" FAIL"));
        }
    }

    [Test]
    public void OnnxQuickRunValidatesOrtAgainstTheReference()
    {
        using var output = new StringWriter();
        // --allow-busy's check: CI machines are often busy, and this test proves validation, not speed.
        var load = LoadGate.Check(LoadAverages.Read(), Environment.ProcessorCount, allowBusy: true);
        var code = OnnxBenchmark.Run(output, quick: true, repeats: 1, outDir: null, command: "test", load);
        var text = output.ToString();
        Assert.That(code, Is.Zero, text);
        Assert.That(text, Does.Contain("ORT Attention-23 O").And.Contain("ORT MatMul-Softmax-MatMul O").And.Contain("ORT / RouteKit"));
        Assert.That(text, Does.Not.Contain("FAILED"));
    }

    [Test]
    public void GpuPeakFormulaMatchesTheH100Datasheet()
    {
        // H100 SXM: 132 SMs, 128 FP32 lanes each, 1.98 GHz boost: 66.9 TFLOP/s FP32.
        Assert.That(132 * DevicePeak.Fp32LanesPerSm(9, 0) * 2 * 1.98, Is.EqualTo(66_908).Within(10));
        Assert.That(DevicePeak.Fp32LanesPerSm(8, 0), Is.EqualTo(64)); // A100: 108 x 64 x 2 x 1.41 = 19.5 TFLOP/s
    }

    [Test]
    public void ShapeParsingNamesTheFormatOnBadInput()
    {
        Assert.That(AttentionShape.Parse("1,2,3,4,8", false, Score.Dot, false).M, Is.EqualTo(4));
        Assert.That(() => AttentionShape.Parse("1,2,3", false, Score.Dot, false), Throws.ArgumentException.With.Message.Contain("B,H,N,M,D"));
    }
}
