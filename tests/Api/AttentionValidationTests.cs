using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// Bad input never reaches a kernel: each case throws an <see cref="ArgumentException"/> that names the argument, the
/// shape seen and the shape wanted, and leaves preallocated outputs untouched.
/// </summary>
[TestFixture(Backend.Managed)]
[TestFixture(Backend.IlgpuCpu)]
public sealed class AttentionValidationTests(Backend backend)
{
    private Device device = null!;

    [OneTimeSetUp]
    public void Create() => device = Device.Create(backend);

    [OneTimeTearDown]
    public void Dispose() => device.Dispose();

    private Tensor Rand(params int[] shape) =>
        device.FromArray(Support.TestData.Normal(shape.Aggregate(1, (a, b) => a * b), shape.Sum()), shape);

    private ArgumentException Throws(Action call, string param, params string[] fragments)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(param), e.Message);
        foreach (var f in fragments) Assert.That(e.Message, Does.Contain(f));
        return e;
    }

    [Test]
    public void WrongRank()
    {
        using var q = Rand(2, 8, 4);
        using var k = Rand(1, 2, 8, 4);
        Throws(() => Attention.Forward(q, k, k), "q", "[2, 8, 4]", "[B, H, N, D]");
    }

    [Test]
    public void MismatchedHeadDimAndBatch()
    {
        using var q = Rand(1, 2, 8, 4);
        using var k5 = Rand(1, 2, 8, 5);
        using var k2 = Rand(2, 2, 8, 4);
        using var v = Rand(1, 2, 9, 4);
        using var k = Rand(1, 2, 8, 4);
        Throws(() => Attention.Forward(q, k5, k5), "k", "[1, 2, 8, 5]", "D=4");
        Throws(() => Attention.Forward(q, k2, k2), "k", "[2, 2, 8, 4]", "B=1");
        Throws(() => Attention.Forward(q, k, v), "v", "[1, 2, 9, 4]", "[1, 2, 8, 4]");
    }

    [Test]
    public void HeadsNotAMultipleOfKvHeads()
    {
        using var q = Rand(1, 3, 4, 4);
        using var k = Rand(1, 2, 4, 4);
        Throws(() => Attention.Forward(q, k, k), "k", "H = 3", "Hkv = 2");
    }

    [Test]
    public void HeadDimOutOfRange()
    {
        using var q = Rand(1, 1, 1, 257);
        using var k = Rand(1, 1, 1, 257);
        Throws(() => Attention.Forward(q, k, k), "q", "257", "1..256");
    }

    [Test]
    public void TensorsFromTwoDevices()
    {
        using var other = Device.Create(backend == Backend.Managed ? Backend.IlgpuCpu : Backend.Managed);
        using var q = Rand(1, 1, 4, 4);
        using var k = other.FromArray(new float[16], 1, 1, 4, 4);
        Throws(() => Attention.Forward(q, k, k), "k", other.Backend.ToString());
    }

    [Test]
    public void BadOptions()
    {
        using var q = Rand(1, 2, 4, 4);
        using var k = Rand(1, 2, 4, 4);
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { BrakeSlopes = [0.5f] }), "options", "length 1", "H = 2");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { BrakeSlopes = [0.5f, -1f] }), "options", "BrakeSlopes[1]", ">= 0");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { Window = -1 }), "options", "Window", "-1");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { Scale = float.NaN }), "options", "Scale");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { KeyRadius = 0f }), "options", "KeyRadius");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { SinkTokens = -2 }), "options", "SinkTokens");
    }

    [TestCase(float.NaN, "q")]
    [TestCase(float.PositiveInfinity, "k")]
    [TestCase(float.NegativeInfinity, "v")]
    public void NonFiniteInputsAreRejectedAndOutputsKept(float bad, string which)
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var v = Rand(1, 1, 5, 4);
        var target = which switch { "q" => q, "k" => k, _ => v };
        var data = target.ToArray();
        data[7] = bad;
        target.CopyFrom(data);
        using var outputs = new AttentionOutput(device.FromArray(Enumerable.Repeat(42f, 12).ToArray(), 1, 1, 3, 4),
            device.FromArray([42f, 42f, 42f], 1, 1, 3), device.FromArray(Enumerable.Repeat(42f, 6).ToArray(), 1, 1, 3, 2));
        Throws(() => Attention.Forward(q, k, v, null, outputs), which, "flat index 7", bad.ToString());
        Assert.That(outputs.Output.ToArray(), Is.All.EqualTo(42f), "a refused call must not touch preallocated outputs");
        Assert.That(outputs.Lse.ToArray(), Is.All.EqualTo(42f));
        Assert.That(outputs.Stats.ToArray(), Is.All.EqualTo(42f));
    }

    [Test]
    public void BadPreallocatedOutputs()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var wrong = new AttentionOutput(device.Zeros(1, 1, 4, 4), device.Zeros(1, 1, 3), device.Zeros(1, 1, 3, 2));
        Throws(() => Attention.Forward(q, k, k, null, wrong), "outputs.Output", "[1, 1, 4, 4]", "[1, 1, 3, 4]");
        using var lse = device.Zeros(1, 1, 3);
        using var stats = device.Zeros(1, 1, 3, 2);
        var aliased = new AttentionOutput(q, lse, stats);
        Throws(() => Attention.Forward(q, k, k, null, aliased), "outputs.Output", "also an input");
        using var noDiag = AttentionOutput.Allocate(device, 1, 1, 3, 4);
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { Diagnostics = true }, noDiag), "outputs", "Diagnostics");
        using var badStats = new AttentionOutput(device.Zeros(1, 1, 3, 4), device.Zeros(1, 1, 3), device.Zeros(1, 1, 3));
        Throws(() => Attention.Forward(q, k, k, null, badStats), "outputs.Stats", "[1, 1, 3]", "[1, 1, 3, 2]");
    }

    [Test]
    public void BackwardChecksItsExtraArguments()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var badDo = Rand(1, 1, 3, 5);
        using var fwd = Attention.Forward(q, k, k);
        Throws(() => Attention.Backward(badDo, q, k, k, fwd), "dOut", "[1, 1, 3, 5]", "[1, 1, 3, 4]");
        using var dOut = Rand(1, 1, 3, 4);
        using var badFwd = new AttentionOutput(device.Zeros(1, 1, 3, 4), device.Zeros(1, 1, 3), device.Zeros(1, 1, 4, 2));
        Throws(() => Attention.Backward(dOut, q, k, k, badFwd), "forward.Stats", "[1, 1, 4, 2]", "[1, 1, 3, 2]");
        var data = dOut.ToArray();
        data[0] = float.NaN;
        dOut.CopyFrom(data);
        Throws(() => Attention.Backward(dOut, q, k, k, fwd), "dOut", "NaN");
    }

    /// <summary>
    /// The backward reads the forward's saved Output and Stats: a NaN, an infinite row max, a log-sum outside
    /// [0, log M] or a masked row with finite statistics is refused by name before any kernel runs, and preallocated
    /// gradients are left as they were. Before 2026-12-02 a NaN Lse flowed into every gradient of its row and a
    /// +inf Lse gave finite zero gradients without a word.
    /// </summary>
    [TestCase(0, float.NaN, TestName = "{m}(row max NaN)")]
    [TestCase(0, float.PositiveInfinity, TestName = "{m}(row max +inf)")]
    [TestCase(0, float.NegativeInfinity, TestName = "{m}(row max -inf on a row that sees keys)")]
    [TestCase(1, float.NaN, TestName = "{m}(log-sum NaN)")]
    [TestCase(1, float.PositiveInfinity, TestName = "{m}(log-sum +inf)")]
    [TestCase(1, -0.5f, TestName = "{m}(log-sum below 0)")]
    [TestCase(1, 3f, TestName = "{m}(log-sum above log M)")]
    public void BackwardRefusesCorruptSavedStatistics(int slot, float bad)
    {
        using var q = Rand(1, 2, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var v = Rand(1, 1, 5, 4);
        using var dOut = Rand(1, 2, 3, 4);
        using var fwd = Attention.Forward(q, k, v);
        using var grads = Attention.Backward(dOut, q, k, v, fwd);
        var before = (grads.DQ.ToArray(), grads.DK.ToArray(), grads.DV.ToArray());
        var stats = fwd.Stats.ToArray();
        stats[2 * 4 + slot] = bad; // row (b 0, h 1, i 1)
        fwd.Stats.CopyFrom(stats);
        var e = Throws(() => Attention.Backward(dOut, q, k, v, fwd, null, grads), "forward", "forward.Stats", "h 1, i 1");
        Assert.That(e.Message, Does.Contain("log M"));
        Assert.That(grads.DQ.ToArray(), Is.EqualTo(before.Item1).AsCollection, "a refused backward must not touch dQ");
        Assert.That(grads.DK.ToArray(), Is.EqualTo(before.Item2).AsCollection, "a refused backward must not touch dK");
        Assert.That(grads.DV.ToArray(), Is.EqualTo(before.Item3).AsCollection, "a refused backward must not touch dV");
    }

    [Test]
    public void BackwardRefusesFiniteStatisticsOnARowThatSeesNoKey()
    {
        // N = 5 > M = 3, causal: rows 0 and 1 see no key, and the forward writes (-inf, 0) there.
        var options = new AttentionOptions { Causal = true };
        using var q = Rand(1, 1, 5, 4);
        using var k = Rand(1, 1, 3, 4);
        using var dOut = Rand(1, 1, 5, 4);
        using var fwd = Attention.Forward(q, k, k, options);
        var stats = fwd.Stats.ToArray();
        Assert.That(stats[0], Is.EqualTo(float.NegativeInfinity));
        Assert.That(stats[1], Is.EqualTo(0f));
        using var ok = Attention.Backward(dOut, q, k, k, fwd, options);
        stats[2] = 1f; // row 1: a finite max where no key is visible
        fwd.Stats.CopyFrom(stats);
        Throws(() => Attention.Backward(dOut, q, k, k, fwd, options), "forward", "i 1", "sees no key");
    }

    [Test]
    public void BackwardRefusesNonFiniteSavedOutput()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var dOut = Rand(1, 1, 3, 4);
        using var fwd = Attention.Forward(q, k, k);
        var o = fwd.Output.ToArray();
        o[5] = float.NaN;
        fwd.Output.CopyFrom(o);
        Throws(() => Attention.Backward(dOut, q, k, k, fwd), "forward.Output", "flat index 5", "NaN");
    }

    /// <summary>An enum value outside its definition is refused at the API edge the same way on every backend.</summary>
    [Test]
    public void UndefinedScoreIsRefused()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        var bad = new AttentionOptions { Score = (Score)7 };
        Throws(() => Attention.Forward(q, k, k, bad), "options.Score", "7", "Dot (0)", "Distance (1)");
        using var fwd = Attention.Forward(q, k, k);
        Throws(() => Attention.Backward(q, q, k, k, fwd, bad), "options.Score", "7", "Dot (0)", "Distance (1)");
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { Score = (Score)(-1) }), "options.Score", "-1");
    }
}
