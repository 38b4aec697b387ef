using NUnit.Framework;

namespace RouteKit.Tests.Api;

/// <summary>The training loop of README.md ("Training in your own loop"), verbatim but for the data, runs and learns.</summary>
public sealed class ReadmeTrainingExampleTests
{
    [Test]
    public void ReadmeLoopLearnsASeparableProblem()
    {
        // Data: class c puts a bump on input feature c (plus noise); a linear layer separates it.
        var rng = new Random(5);
        float[] NextInputs(int step)
        {
            var data = new float[64 * 32];
            var labels = NextTargets(step);
            for (var t = 0; t < 64; t++)
            {
                for (var i = 0; i < 32; i++) data[t * 32 + i] = (float)(rng.NextDouble() - 0.5);
                data[t * 32 + (int)labels[t]] += 2f;
            }
            return data;
        }
        float[] NextTargets(int step) => Enumerable.Range(0, 64).Select(t => (float)((t * 7 + step) % 10)).ToArray();
        var first = float.NaN;

        // --- README.md ---
        const int tokens = 64, inputs = 32, classes = 10, steps = 100;
        using var device = Device.Create(Backend.Managed);                     // README: Device.Create()
        using var flat = device.Zeros(classes * inputs + classes);
        using var grads = device.Zeros(flat.Length);
        using var m = device.Zeros(flat.Length);
        using var v = device.Zeros(flat.Length);
        Tensor w = flat.Slice(0, classes, inputs), b = flat.Slice(classes * inputs, classes);
        using var decay = DecayMask.Create(device, flat.Length, [new(0, classes * inputs, true), new(classes * inputs, classes, false)]);
        using var x = device.Zeros(tokens, inputs);
        using var targets = device.Zeros(tokens);
        using var logits = device.Zeros(tokens, classes);
        using var norm = device.Zeros(1);
        using var loss = new CrossEntropyOutput(device.Zeros(tokens), device.Zeros(1), device.Zeros(tokens, classes));
        var g = new LinearGradients(device.Zeros(tokens, inputs), grads.Slice(0, classes, inputs), grads.Slice(classes * inputs, classes));
        var schedule = new CosineSchedule(3e-2, 3e-3, warmupSteps: 10, totalSteps: steps);
        var mean = new float[1];
        for (var step = 0; step < steps; step++)
        {
            x.CopyFrom(NextInputs(step)); targets.CopyFrom(NextTargets(step));
            using (var check = device.BeginStep())
            {
                Linear.Forward(x, w, b, logits);
                CrossEntropy.Forward(logits, targets, outputs: loss);
                Linear.Backward(loss.DLogits, x, w, hasBias: true, g);
                GradientClip.ClipGlobalNorm(grads, 1f, norm);
                AdamW.Step(flat, grads, m, v, decay, new AdamWOptions(), step + 1, (float)schedule.LearningRate(step));
                if (!check.TryFinish(out var why)) Console.WriteLine($"step {step} skipped: {why}");
            }
            loss.Mean.CopyTo(mean);
            // --- end of README.md ---
            if (step == 0) first = mean[0];
        }
        Assert.That(first, Is.EqualTo(Math.Log(10)).Within(0.05), "zero weights start at log(classes)");
        Assert.That(mean[0], Is.LessThan(0.3f), $"loss after 100 steps (from {first})");
    }
}
