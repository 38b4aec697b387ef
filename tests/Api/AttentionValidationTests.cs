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
            device.FromArray([42f, 42f, 42f], 1, 1, 3));
        Throws(() => Attention.Forward(q, k, v, null, outputs), which, "flat index 7", bad.ToString());
        Assert.That(outputs.Output.ToArray(), Is.All.EqualTo(42f), "a refused call must not touch preallocated outputs");
        Assert.That(outputs.Lse.ToArray(), Is.All.EqualTo(42f));
    }

    [Test]
    public void BadPreallocatedOutputs()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var wrong = new AttentionOutput(device.Zeros(1, 1, 4, 4), device.Zeros(1, 1, 3));
        Throws(() => Attention.Forward(q, k, k, null, wrong), "outputs.Output", "[1, 1, 4, 4]", "[1, 1, 3, 4]");
        using var lse = device.Zeros(1, 1, 3);
        var aliased = new AttentionOutput(q, lse);
        Throws(() => Attention.Forward(q, k, k, null, aliased), "outputs.Output", "also an input");
        using var noDiag = new AttentionOutput(device.Zeros(1, 1, 3, 4), device.Zeros(1, 1, 3));
        Throws(() => Attention.Forward(q, k, k, new AttentionOptions { Diagnostics = true }, noDiag), "outputs", "Diagnostics");
    }

    [Test]
    public void BackwardChecksItsExtraArguments()
    {
        using var q = Rand(1, 1, 3, 4);
        using var k = Rand(1, 1, 5, 4);
        using var badDo = Rand(1, 1, 3, 5);
        using var fwd = new AttentionOutput(device.Zeros(1, 1, 3, 4), device.Zeros(1, 1, 3));
        Throws(() => Attention.Backward(badDo, q, k, k, fwd), "dOut", "[1, 1, 3, 5]", "[1, 1, 3, 4]");
        using var dOut = Rand(1, 1, 3, 4);
        using var badFwd = new AttentionOutput(device.Zeros(1, 1, 3, 4), device.Zeros(1, 1, 4));
        Throws(() => Attention.Backward(dOut, q, k, k, badFwd), "forward.Lse", "[1, 1, 4]", "[1, 1, 3]");
        var data = dOut.ToArray();
        data[0] = float.NaN;
        dOut.CopyFrom(data);
        Throws(() => Attention.Backward(dOut, q, k, k, fwd), "dOut", "NaN");
    }
}
