using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Training;

/// <summary>
/// Deferred input checks of a training step (Device.BeginStep): inside a step ops do not throw for NaN/Inf, the step's
/// Finish names the first failed check, AdamW skips its update after a failed check, and outside a step the ops keep
/// refusing at once.
/// </summary>
public abstract class TrainingStepTests : BackendFixture
{
    private static float[] Ramp(int n) => Enumerable.Range(0, n).Select(i => 0.1f * (i % 7) - 0.3f).ToArray();

    [Test]
    public void CleanStepFinishes()
    {
        using var x = Device.FromArray(Ramp(37), 37);
        using var y = Device.Zeros(37);
        using var step = Device.BeginStep();
        Gelu.Forward(x, y: y);
        Silu.Forward(x, y);
        Assert.That(step.CheckCount, Is.EqualTo(2));
        Assert.That(step.TryFinish(out var failure), Is.True, failure);
        Assert.That(step.IsActive, Is.False);
        Assert.That(() => step.Finish(), Throws.InvalidOperationException);
    }

    [Test]
    public void NonFiniteInputIsReportedAtFinishNotAtTheCall()
    {
        var data = Ramp(40);
        data[23] = float.NaN;
        using var x = Device.FromArray(data, 40);
        using var y = Device.Zeros(40);
        Assert.That(() => Gelu.Forward(x, y: y), Throws.ArgumentException.With.Message.Contains("flat index 23"));
        using var step = Device.BeginStep();
        using var clean = Device.FromArray(Ramp(40), 40);
        Silu.Forward(clean, y);                            // check 1 passes
        Assert.DoesNotThrow(() => Gelu.Forward(x, y: y));  // check 2 fails, deferred
        Silu.Forward(x, y);                                // check 3 fails too; the first failure is reported
        var ex = Assert.Throws<ArgumentException>(() => step.Finish())!;
        Assert.That(ex.Message, Does.Contain("flat index 23").And.Contain("check 2 of 3").And.Contain("NaN"));
    }

    /// <summary>More checks than the initial slot capacity (64): slots grow and keep earlier results.</summary>
    [Test]
    public void ManyChecksGrowTheSlots()
    {
        var data = Ramp(9);
        data[4] = float.PositiveInfinity;
        using var bad = Device.FromArray(data, 9);
        using var good = Device.FromArray(Ramp(9), 9);
        using var y = Device.Zeros(9);
        var step = Device.BeginStep();
        using var first = step;
        // 81 checks: past the 64 slots a step starts with, so the slots grow (each launch costs ~0.1 s on the simulator).
        for (var i = 0; i < 40; i++) Relu.Forward(good, y);
        Relu.Forward(bad, y);
        for (var i = 0; i < 40; i++) Relu.Forward(good, y);
        Assert.That(step.CheckCount, Is.EqualTo(81));
        Assert.That(step.TryFinish(out var failure), Is.False);
        Assert.That(failure, Does.Contain("check 41 of 81").And.Contain("flat index 4"));
        // The next step starts clean with the grown slots.
        step = Device.BeginStep();
        for (var i = 0; i < 70; i++) Relu.Forward(good, y);
        Assert.That(step.TryFinish(out failure), Is.True, failure);
    }

    [Test]
    public void AdamWSkipsItsUpdateAfterAFailedCheck()
    {
        const int n = 33;
        float[] p0 = Ramp(n);
        using var p = Device.FromArray(p0, n);
        using var g = Device.FromArray(Enumerable.Repeat(0.5f, n).ToArray(), n);
        using var m = Device.Zeros(n);
        using var v = Device.Zeros(n);
        using var mask = DecayMask.Create(Device, n, [new ParameterSegment(0, n, true)]);
        var badData = Ramp(n);
        badData[5] = float.NaN;
        using var badGrad = Device.FromArray(badData, n);
        using var y = Device.Zeros(n);

        var step = Device.BeginStep();
        using var first = step;
        Gelu.Forward(badGrad, y: y);                     // a NaN met earlier in the step
        AdamW.Step(p, g, m, v, mask, new AdamWOptions(), 1, 1e-2f);
        Assert.That(step.TryFinish(out _), Is.False);
        Assert.That(p.ToArray(), Is.EqualTo(p0));
        Assert.That(m.ToArray(), Is.All.EqualTo(0f));

        step = Device.BeginStep();
        AdamW.Step(p, badGrad, m, v, mask, new AdamWOptions(), 1, 1e-2f);   // AdamW's own gradient check
        Assert.That(step.TryFinish(out var failure), Is.False);
        Assert.That(failure, Does.Contain("gradients"));
        Assert.That(p.ToArray(), Is.EqualTo(p0));

        step = Device.BeginStep();
        AdamW.Step(p, g, m, v, mask, new AdamWOptions(), 1, 1e-2f);
        step.Finish();
        Assert.That(p.ToArray(), Is.Not.EqualTo(p0));
    }

    [Test]
    public void BadTokenIdsAreDeferred()
    {
        using var logits = Device.FromArray(Ramp(4 * 5), 4, 5);
        using var targets = Device.FromArray([1f, 2f, 7f, 0f], 4);
        using var outputs = new CrossEntropyOutput(Device.Zeros(4), Device.Zeros(1), Device.Zeros(4, 5));
        using var step = Device.BeginStep();
        CrossEntropy.Forward(logits, targets, outputs: outputs);
        Assert.That(step.TryFinish(out var failure), Is.False);
        Assert.That(failure, Does.Contain("index 2").And.Contain("[0, 5)"));
    }

    /// <summary>The selective scan's A &lt;= 0 check (a read-back outside a step) is deferred like the others.</summary>
    [Test]
    public void PositiveScanDecayIsDeferred()
    {
        const int b = 1, dc = 3, l = 5, n = 2;
        using var u = Device.FromArray(Ramp(b * dc * l), b, dc, l);
        using var delta = Device.FromArray(Ramp(b * dc * l), b, dc, l);
        using var a = Device.FromArray([-1f, -2f, -1f, 0.5f, -1f, -3f], dc, n);
        using var bm = Device.FromArray(Ramp(b * n * l), b, n, l);
        using var cm = Device.FromArray(Ramp(b * n * l), b, n, l);
        var inputs = new SelectiveScanInputs { U = u, Delta = delta, A = a, B = bm, C = cm };
        Assert.That(() => SelectiveScan.Forward(inputs), Throws.ArgumentException.With.Message.Contains("> 0"));
        using var step = Device.BeginStep();
        using var result = SelectiveScan.Forward(inputs);
        Assert.That(step.TryFinish(out var failure), Is.False);
        Assert.That(failure, Does.Contain("inputs.A").And.Contain("flat index 3").And.Contain("<= 0"));
    }

    [Test]
    public void ChecksOffSkipsFinitenessButNotShapes()
    {
        var data = Ramp(8);
        data[0] = float.NaN;
        using var x = Device.FromArray(data, 8);
        using var y = Device.Zeros(8);
        using var wrong = Device.Zeros(9);
        using var step = Device.BeginStep(StepChecks.Off);
        Assert.DoesNotThrow(() => Relu.Forward(x, y));
        Assert.That(() => Relu.Forward(x, wrong), Throws.ArgumentException);
        Assert.That(step.CheckCount, Is.Zero);
        step.Finish();
    }

    [Test]
    public void OneStepAtATime()
    {
        using var step = Device.BeginStep();
        Assert.That(() => Device.BeginStep(), Throws.InvalidOperationException.With.Message.Contains("already active"));
        step.Dispose();
        using var again = Device.BeginStep();
        Assert.That(again.IsActive, Is.True);
    }
}

public sealed class ManagedTrainingStepTests : TrainingStepTests { protected override Backend Backend => Backend.Managed; }

public sealed class IlgpuCpuTrainingStepTests : TrainingStepTests { protected override Backend Backend => Backend.IlgpuCpu; }
