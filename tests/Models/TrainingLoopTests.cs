using NUnit.Framework;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Training;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Models;

/// <summary>Each mixer's model learns on the committed fortunes sample: the loss of 50 Managed steps falls.</summary>
public sealed class TrainingLoopTests
{
    private static readonly Lazy<FortuneText> Text = new(FortuneText.LoadSample);

    [TestCase(MixerKind.Attention)]
    [TestCase(MixerKind.Mamba)]
    [TestCase(MixerKind.Recurrent)]
    public void LossFallsOnManaged(MixerKind mixer)
    {
        using var device = Device.Create(Backend.Managed);
        var config = new ModelConfig { Mixer = mixer, Layers = 2, Width = 32, Context = 32, Heads = 4, Brake = mixer == MixerKind.Attention ? 1f : 8f };
        var options = new TrainOptions { Steps = 50, Batch = 8, LearningRate = 3e-3, WarmupSteps = 5 };
        using var trainer = new Trainer(device, config, options, Text.Value.Train, Text.Value.Validation);
        var before = trainer.Evaluate();
        var losses = new List<float>();
        for (var s = 0; s < options.Steps; s++)
        {
            var r = trainer.TrainStep();
            Assert.That(r.Skipped, Is.False, $"step {s} skipped");
            Assert.That(float.IsFinite(r.Loss), $"step {s} loss {r.Loss}");
            losses.Add(r.Loss);
        }
        var after = trainer.Evaluate();
        TestContext.Out.WriteLine($"{mixer}: validation {before:F3} -> {after:F3} nats; first losses {string.Join(", ", losses.Take(3).Select(l => l.ToString("F3")))}, last {losses[^1]:F3}");
        Assert.That(before, Is.EqualTo(Math.Log(256)).Within(0.1), "an untrained model predicts bytes nearly uniformly");
        Assert.That(after, Is.LessThan(before - 1.0), "50 steps cut the validation loss by more than 1 nat per byte");
        Assert.That(losses.Skip(40).Average(), Is.LessThan(losses.Take(5).Average() - 1.0));
    }
}

/// <summary>A whole Managed training step of each model (batch upload, forward, backward, clip, AdamW, the step's check
/// read and the loss read) allocates under 256 bytes once warm (the issue asked for 1 KB), measured on the real loop.</summary>
public sealed class TrainingStepAllocationTests
{
    private static readonly Lazy<FortuneText> Text = new(FortuneText.LoadSample);

    [Test]
    public void AManagedStepAllocatesUnder256Bytes(
        [Values(MixerKind.Attention, MixerKind.Mamba, MixerKind.Recurrent)] MixerKind mixer,
        [Values(false, true)] bool rotatingPool)
    {
        var config = new ModelConfig { Mixer = mixer, Layers = 2, Width = 64, Context = 64, Heads = 2, Brake = mixer == MixerKind.Recurrent ? 8f : 1f };
        var best = BytesPerStep(config, rotatingPool);
        TestContext.Out.WriteLine($"{mixer}{(rotatingPool ? " (rotating pool)" : "")}: {best} bytes per training step after warm-up");
        // The issue's bound is 1 KB; measured 0 bytes in every case since the scratch moved to worker slots, and the
        // per-thread scratch this guards against cost 0.8-31 KB per step on a rotating pool, so the bound is 256 bytes.
        Assert.That(best, Is.LessThan(256));
    }

    /// <summary>The same for a depth-routed model (issue 13): every block reads a DepthRouter mix of earlier outputs.</summary>
    [Test]
    public void ADepthRoutedManagedStepAllocatesUnder256Bytes([Values(false, true)] bool rotatingPool)
    {
        var config = new ModelConfig { Mixer = MixerKind.Attention, Layers = 3, Width = 64, Context = 64, Heads = 2, Brake = 1f, DepthRouted = true, DepthBrake = 0.5f };
        var best = BytesPerStep(config, rotatingPool);
        TestContext.Out.WriteLine($"depth-routed{(rotatingPool ? " (rotating pool)" : "")}: {best} bytes per training step after warm-up");
        Assert.That(best, Is.LessThan(256));
    }

    // rotatingPool: the thread pool serves every call from a different thread (PoolChurn), as on the CI machine where
    // per-thread scratch was allocated again and again (2026-12-02). The meter counts this thread and the op workers'
    // bodies (not the thread pool's own bookkeeping, which the process-wide count also sees); the smallest of three
    // windows of 5 steps is the step's own figure.
    private static long BytesPerStep(ModelConfig config, bool rotatingPool)
    {
        using var churn = rotatingPool ? new PoolChurn() : null;
        using var device = Device.Create(Backend.Managed);
        using var trainer = new Trainer(device, config, new TrainOptions { Steps = 100, Batch = 4 }, Text.Value.Train, Text.Value.Validation);
        for (var s = 0; s < 3; s++) trainer.TrainStep();
        using var meter = Allocations.Meter();
        var best = long.MaxValue;
        for (var window = 0; window < 3; window++)
        {
            var before = Allocations.Now();
            for (var s = 0; s < 5; s++) trainer.TrainStep();
            best = Math.Min(best, (Allocations.Now() - before) / 5);
        }
        return best;
    }
}
