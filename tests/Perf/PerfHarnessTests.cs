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

    /// <summary>`attention --variant 2` validates and times the register-tiled kernels; out-of-range variants are refused.</summary>
    [Test]
    public void AttentionVariant2ValidatesAndTimesOnTheSimulator()
    {
        var shape = new AttentionShape(1, 2, 5, 9, 13, Causal: true, Score.Distance, Normalize: true);
        using var device = Device.Create(Backend.IlgpuCpu);
        var peak = new DevicePeakResult(1, 1, 1, 1, "test");
        var output = new StringWriter();
        var result = AttentionBenchmark.Run(device, shape, 2, 1, peak, output, minSampleMs: 0);
        Assert.That(result, Is.Not.Null, output.ToString());
        Assert.That(output.ToString(), Does.Contain("validation of variant 2").And.Contain("passed"));
        Assert.That(result!.Forward.MedianMs, Is.GreaterThan(0));
        Assert.That(result.Backward.MedianMs, Is.GreaterThan(0));
        Assert.That(() => AttentionBenchmark.Run(device, shape, AttentionBenchmark.VariantCount + 1, 1, peak, output),
            Throws.TypeOf<ArgumentOutOfRangeException>());
        using var managed = Device.Create(Backend.Managed);
        Assert.That(() => AttentionBenchmark.Run(managed, shape, 2, 1, peak, output), Throws.TypeOf<ArgumentOutOfRangeException>());
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
        Assert.That(text, Does.Contain("ORT MultiHeadAttention (com.microsoft) O"), "the fused contrib operator runs and is validated");
        Assert.That(text, Does.Contain("RouteKit Managed attention backward").And.Contain("% of FMA peak"));
        Assert.That(text, Does.Not.Contain("FAILED").And.Not.Contain("not runnable"));
    }

    [Test]
    public void TheOneNodeMatMulModelRunsInOnnxRuntime()
    {
        // A non-square product, so a swapped dimension would fail: a [2, 3] x b [3, 4].
        using var options = OnnxBenchmark.CpuSessionOptions();
        using var session = new Microsoft.ML.OnnxRuntime.InferenceSession(OnnxModel.MatMul(2, 3, 4), options);
        float[] a = [1, 2, 3, 4, 5, 6], b = Enumerable.Range(0, 12).Select(i => (float)i).ToArray(), c = new float[8];
        using var oa = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(a, [2, 3]);
        using var ob = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(b, [3, 4]);
        using var oc = Microsoft.ML.OnnxRuntime.OrtValue.CreateTensorValueFromMemory(c, [2, 4]);
        using var run = new Microsoft.ML.OnnxRuntime.RunOptions();
        session.Run(run, ["a", "b"], [oa, ob], ["c"], [oc]);
        Assert.That(c, Is.EqualTo(new float[] { 32, 38, 44, 50, 68, 83, 98, 113 }));
    }

    [Test]
    public void GemmCsvRowHasEmptyOrtColumnsWithoutOnnxRuntime()
    {
        var check = LoadGate.Check(new LoadAverages(0.4, 30, 48), 2, allowBusy: false);
        var timing = new Timing(10, 9, 11, 20, "wall");
        var withOrt = new RouteKit.Perf.Gemm.GemmTiming(512, timing, 26.8, 13.4, new RouteKit.Perf.Gemm.GemmPeerTiming(new Timing(8, 7, 9, 16, "wall"), 33.5, 16.8));
        var without = new RouteKit.Perf.Gemm.GemmTiming(512, timing, 26.8, 13.4);
        Assert.That(withOrt.ManagedOverOrt, Is.EqualTo(0.8).Within(1e-12));
        Assert.That(without.ManagedOverOrt, Is.NaN);
        var columns = RouteKit.Perf.Gemm.GemmBenchmark.CsvHeader.Split(',').Length;
        var full = RouteKit.Perf.Gemm.GemmBenchmark.CsvRow(withOrt, 100, 50, check);
        var empty = RouteKit.Perf.Gemm.GemmBenchmark.CsvRow(without, 100, 50, check);
        Assert.That(full.Split(','), Has.Length.EqualTo(columns));
        Assert.That(empty.Split(','), Has.Length.EqualTo(columns));
        Assert.That(full, Does.Contain(",8.000,7.000,9.000,33.50,0.3350,16.80,0.3360,0.8000,0.40,30.00,48.00,quiet"));
        Assert.That(empty, Does.EndWith(",,,,,,,,,0.40,30.00,48.00,quiet"));
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
