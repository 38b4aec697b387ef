using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// Bad input to the selective scan and the linear recurrence never reaches a kernel: each case throws an
/// <see cref="ArgumentException"/> naming the argument, the shape seen and the shape wanted, and leaves preallocated
/// outputs untouched.
/// </summary>
[TestFixture(Backend.Managed)]
[TestFixture(Backend.IlgpuCpu)]
public sealed class ScanValidationTests(Backend backend)
{
    private const int B = 2, Dc = 4, L = 5, Nst = 3;
    private Device device = null!;

    [OneTimeSetUp]
    public void Create() => device = Device.Create(backend);

    [OneTimeTearDown]
    public void Dispose() => device.Dispose();

    private Tensor Rand(params int[] shape) =>
        device.FromArray(TestData.Normal(shape.Aggregate(1, (a, b) => a * b), shape.Sum()), shape);

    private Tensor Fill(float value, params int[] shape) =>
        device.FromArray(Enumerable.Repeat(value, shape.Aggregate(1, (a, b) => a * b)).ToArray(), shape);

    private static void Throws(Action call, string param, params string[] fragments)
    {
        var e = Assert.Throws<ArgumentException>(() => call())!;
        Assert.That(e.ParamName, Is.EqualTo(param), e.Message);
        foreach (var f in fragments) Assert.That(e.Message, Does.Contain(f));
    }

    // A valid problem; each test breaks one thing.
    private SelectiveScanInputs Valid() => new()
    {
        U = Rand(B, Dc, L), Delta = Fill(0.1f, B, Dc, L), A = Fill(-1f, Dc, Nst), B = Rand(B, Nst, L), C = Rand(B, Nst, L),
    };

    private static void Release(SelectiveScanInputs x)
    {
        foreach (var (t, _) in x.Present()) t.Dispose();
    }

    private void Refused(Func<SelectiveScanInputs, SelectiveScanInputs> breakIt, string param, params string[] fragments)
    {
        var valid = Valid();
        var broken = breakIt(valid);
        try
        {
            Throws(() => SelectiveScan.Forward(broken), param, fragments);
        }
        finally
        {
            Release(valid);
            Release(broken);
        }
    }

    [Test]
    public void WrongRankOfU() => Refused(x => x with { U = Rand(B, Dc * L) }, "inputs.U", "[2, 20]", "[B, Dc, L]");

    [Test]
    public void DeltaShapeMismatch() => Refused(x => x with { Delta = Rand(B, Dc, L + 1) }, "inputs.Delta", "[2, 4, 6]", "[2, 4, 5]");

    [Test]
    public void AWrongChannels() => Refused(x => x with { A = Fill(-1f, Dc + 1, Nst) }, "inputs.A", "[5, 3]", "[Dc=4, Nst]");

    [Test]
    public void TooManyStates() =>
        Refused(x => x with { A = Fill(-1f, Dc, 257), B = Rand(B, 257, L), C = Rand(B, 257, L) }, "inputs.A", "257", "at most 256");

    [Test]
    public void BWrongStates() => Refused(x => x with { B = Rand(B, Nst + 1, L) }, "inputs.B", "[2, 4, 5]", "[2, 3, 5]");

    [Test]
    public void GroupsMustDivideChannels() =>
        Refused(x => x with { B = Rand(B, 3, Nst, L), C = Rand(B, 3, Nst, L) }, "inputs.B", "G = 3", "Dc = 4");

    [Test]
    public void CMustMatchB() => Refused(x => x with { C = Rand(B, 2, Nst, L) }, "inputs.C", "[2, 2, 3, 5]", "[2, 3, 5]");

    [Test]
    public void DWrongShape() => Refused(x => x with { D = Rand(Dc + 1) }, "inputs.D", "[5]", "[4]");

    [Test]
    public void ZWrongShape() => Refused(x => x with { Z = Rand(B, Dc, L - 1) }, "inputs.Z", "[2, 4, 4]", "[2, 4, 5]");

    [Test]
    public void DeltaBiasWrongShape() => Refused(x => x with { DeltaBias = Rand(1, Dc) }, "inputs.DeltaBias", "[1, 4]", "[4]");

    [Test]
    public void InitialStateWrongShape() =>
        Refused(x => x with { InitialState = Rand(B, Dc, Nst + 1) }, "inputs.InitialState", "[2, 4, 4]", "[2, 4, 3]");

    [Test]
    public void NaNInDelta()
    {
        var values = Enumerable.Repeat(0.1f, B * Dc * L).ToArray();
        values[7] = float.NaN;
        Refused(x => x with { Delta = device.FromArray(values, B, Dc, L) }, "inputs.Delta", "NaN", "index 7");
    }

    [Test]
    public void InfinityInC()
    {
        var values = new float[B * Nst * L];
        values[3] = float.PositiveInfinity;
        Refused(x => x with { C = device.FromArray(values, B, Nst, L) }, "inputs.C", "index 3");
    }

    /// <summary>Positive A is rejected (documented in SelectiveScan.cs): exp(dt A) &gt; 1 grows without bound.</summary>
    [Test]
    public void PositiveAIsRejected()
    {
        var values = Enumerable.Repeat(-1f, Dc * Nst).ToArray();
        values[5] = 0.5f;
        Refused(x => x with { A = device.FromArray(values, Dc, Nst) }, "inputs.A", "0.5", "[1, 2]", "<= 0");
    }

    [Test]
    public void ZeroAIsAllowed()
    {
        var x = Valid() with { A = Fill(0f, Dc, Nst) };
        try
        {
            using var o = SelectiveScan.Forward(x);
            Assert.That(o.Output.ToArray().All(float.IsFinite));
        }
        finally
        {
            Release(x);
        }
    }

    [Test]
    public void MixedDevices()
    {
        using var other = Device.Create(backend == Backend.Managed ? Backend.IlgpuCpu : Backend.Managed);
        var valid = Valid();
        using var foreign = other.FromArray(new float[B * Nst * L], B, Nst, L);
        try
        {
            Throws(() => SelectiveScan.Forward(valid with { C = foreign }), "inputs.C", "lives on");
        }
        finally
        {
            Release(valid);
        }
    }

    [Test]
    public void RefusedCallLeavesOutputsUntouched()
    {
        var valid = Valid();
        var broken = valid with { Z = Rand(B, Dc, L + 2) };
        using var outputs = new SelectiveScanOutput(Fill(42f, B, Dc, L), Fill(42f, B, Dc, Nst), Fill(42f, B, Dc, 1, Nst), Fill(42f, B, Dc, L));
        try
        {
            Throws(() => SelectiveScan.Forward(broken, outputs: outputs), "inputs.Z", "[2, 4, 7]");
            Assert.That(outputs.Output.ToArray(), Is.All.EqualTo(42f), "a refused call must not touch preallocated outputs");
            Assert.That(outputs.LastState.ToArray(), Is.All.EqualTo(42f));
        }
        finally
        {
            Release(valid);
            broken.Z!.Dispose();
        }
    }

    [Test]
    public void OutputWrongShape()
    {
        var x = Valid();
        using var outputs = new SelectiveScanOutput(Fill(0f, B, Dc, L + 1), Fill(0f, B, Dc, Nst), Fill(0f, B, Dc, 1, Nst), null);
        try
        {
            Throws(() => SelectiveScan.Forward(x, outputs: outputs), "outputs.Output", "[2, 4, 6]", "[2, 4, 5]");
        }
        finally
        {
            Release(x);
        }
    }

    [Test]
    public void BackwardNeedsMatchingChunkStates()
    {
        var x = Valid();
        using var dOut = Rand(B, Dc, L);
        using var fake = new SelectiveScanOutput(Fill(0f, B, Dc, L), Fill(0f, B, Dc, Nst), Fill(0f, B, Dc, 2, Nst), null);
        try
        {
            Throws(() => SelectiveScan.Backward(dOut, x, fake), "forward.ChunkStates", "[2, 4, 2, 3]", "[2, 4, 1, 3]");
        }
        finally
        {
            Release(x);
        }
    }

    [Test]
    public void BackwardRejectsNaNInDOut()
    {
        var x = Valid();
        var values = new float[B * Dc * L];
        values[11] = float.NaN;
        using var dOut = device.FromArray(values, B, Dc, L);
        try
        {
            using var fwd = SelectiveScan.Forward(x);
            Throws(() => SelectiveScan.Backward(dOut, x, fwd), "dOut", "NaN", "index 11");
        }
        finally
        {
            Release(x);
        }
    }

    [Test]
    public void RecurrenceWrongRank()
    {
        using var a = Rand(B, Dc);
        Throws(() => LinearRecurrence.Forward(a, a), "a", "[2, 4]", "[B, C, T]");
    }

    [Test]
    public void RecurrenceShapeMismatch()
    {
        using var a = Rand(B, Dc, L);
        using var x = Rand(B, Dc, L + 1);
        Throws(() => LinearRecurrence.Forward(a, x), "x", "[2, 4, 6]", "[2, 4, 5]");
    }

    [Test]
    public void RecurrenceInitialStateShape()
    {
        using var a = Rand(B, Dc, L);
        using var x = Rand(B, Dc, L);
        using var h0 = Rand(B, Dc + 1);
        Throws(() => LinearRecurrence.Forward(a, x, h0), "h0", "[2, 5]", "[2, 4]");
    }

    [Test]
    public void RecurrenceRejectsInfinity()
    {
        var values = new float[B * Dc * L];
        values[2] = float.NegativeInfinity;
        using var a = device.FromArray(values, B, Dc, L);
        using var x = Rand(B, Dc, L);
        Throws(() => LinearRecurrence.Forward(x, a), "x", "index 2");
    }

    /// <summary>
    /// The backward reads the forward's saved chunk states and pre-gate output; a NaN or infinity there is refused by
    /// name before any kernel runs (before 2026-12-02 it flowed into every gradient of its channel).
    /// </summary>
    [TestCase("ChunkStates", float.NaN)]
    [TestCase("ChunkStates", float.PositiveInfinity)]
    [TestCase("PreGate", float.NaN)]
    public void BackwardRefusesNonFiniteSavedState(string which, float bad)
    {
        var x = Valid() with { Z = Rand(B, Dc, L) };
        using var dOut = Rand(B, Dc, L);
        try
        {
            using var fwd = SelectiveScan.Forward(x);
            using var grads = SelectiveScan.Backward(dOut, x, fwd);
            var before = grads.DU.ToArray();
            var saved = which == "ChunkStates" ? fwd.ChunkStates : fwd.PreGate!;
            var values = saved.ToArray();
            values[3] = bad;
            saved.CopyFrom(values);
            Throws(() => SelectiveScan.Backward(dOut, x, fwd, null, grads), $"forward.{which}", "index 3", bad.ToString());
            Assert.That(grads.DU.ToArray(), Is.EqualTo(before).AsCollection, "a refused backward must not touch its outputs");
        }
        finally
        {
            Release(x);
        }
    }

    [Test]
    public void RecurrenceBackwardRefusesNonFiniteSavedStates()
    {
        using var a = Rand(B, Dc, L);
        using var x = Rand(B, Dc, L);
        using var dH = Rand(B, Dc, L);
        using var fwd = LinearRecurrence.Forward(a, x);
        var h = fwd.H.ToArray();
        h[7] = float.NaN;
        fwd.H.CopyFrom(h);
        Throws(() => LinearRecurrence.Backward(dH, a, x, null, fwd), "forward.H", "index 7", "NaN");
    }
}
