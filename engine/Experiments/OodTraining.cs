// Training of the two models of `routekit ood`: the ReLU MLP classifier (CrossEntropy on the labels) and the label-free
// autoencoder (SquaredError against the input). One loop for both, in Trainer's shape: each epoch a fresh permutation of
// the training images (SplitMix64, so a seed gives the same run), batches of B rows (a last partial batch is dropped;
// the next epoch's permutation reaches those images), and per step: upload, BeginStep, forward, loss gradient, backward,
// global-norm clip, AdamW with a cosine schedule, TryFinish (the step's one read of its checks), one read of the loss.
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Experiments;

/// <summary>Optimisation settings of one model of `routekit ood`.</summary>
/// <param name="Epochs">Passes over the training images.</param>
/// <param name="Batch">Rows per step.</param>
/// <param name="LearningRate">Peak AdamW rate (cosine decay to a tenth, warm-up over the first 5% of steps).</param>
/// <param name="Seed">Seed of the initial weights and of the batch order.</param>
internal sealed record OodTrainSettings(int Epochs, int Batch, double LearningRate, int Seed)
{
    /// <summary>AdamW's decoupled weight decay (matrices only).</summary>
    public const float WeightDecay = 1e-4f;

    /// <summary>Global gradient-norm clip.</summary>
    public const float ClipNorm = 5f;
}

/// <summary>What a training loop measured.</summary>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="EpochLosses">Mean training loss of each epoch.</param>
/// <param name="SkippedSteps">Steps whose checks failed (AdamW skipped them).</param>
internal sealed record OodTrainLog(int Steps, double[] EpochLosses, int SkippedSteps);

/// <summary>The training loop of both models; see the file header.</summary>
internal static class OodTraining
{
    /// <summary>Trains <paramref name="model"/> (outputs = classes) with CrossEntropy on <paramref name="data"/>'s labels.</summary>
    public static OodTrainLog TrainClassifier(ReluMlp model, ImageDataset data, OodTrainSettings s)
    {
        if (model.Widths[^1] != data.Classes)
            throw new ArgumentException($"the model has {model.Widths[^1]} outputs; {data.Name} has {data.Classes} classes.", nameof(model));
        var device = model.Device;
        using var targets = device.Zeros(model.Batch);
        using var ce = new CrossEntropyOutput(device.Zeros(model.Batch), device.Zeros(1), device.Zeros(model.Batch, data.Classes));
        var hostTargets = new float[model.Batch];
        var one = new float[1];
        return Train(model, data, s,
            rows =>
            {
                for (var i = 0; i < rows.Length; i++) hostTargets[i] = data.Labels[rows[i]];
                targets.CopyFrom(hostTargets);
            },
            () =>
            {
                CrossEntropy.Forward(model.Output, targets, outputs: ce);
                return ce.DLogits;
            },
            () =>
            {
                ce.Mean.CopyTo(one);
                return one[0];
            });
    }

    /// <summary>Trains <paramref name="model"/> (outputs = inputs) to reconstruct <paramref name="data"/>'s images: no labels read.</summary>
    public static OodTrainLog TrainAutoencoder(ReluMlp model, ImageDataset data, OodTrainSettings s)
    {
        if (model.Widths[^1] != model.Widths[0])
            throw new ArgumentException($"an autoencoder's output width must equal its input width; got [{string.Join(", ", model.Widths)}].", nameof(model));
        using var loss = new SquaredError(model.Output);
        var target = new float[model.Batch * data.Pixels];
        return Train(model, data, s,
            rows =>
            {
                for (var i = 0; i < rows.Length; i++) data.Image(rows[i]).CopyTo(target.AsSpan(i * data.Pixels));
                loss.SetTarget(target);
            },
            loss.Backward,
            loss.Loss);
    }

    private static OodTrainLog Train(ReluMlp model, ImageDataset data, OodTrainSettings s, Action<int[]> setTargets, Func<Tensor> lossGradient,
        Func<double> readLoss)
    {
        if (model.Widths[0] != data.Pixels)
            throw new ArgumentException($"the model reads {model.Widths[0]} inputs; {data.Name} has {data.Pixels} pixels per image.", nameof(model));
        var stepsPerEpoch = data.Count / model.Batch;
        if (stepsPerEpoch < 1)
            throw new ArgumentException($"{data.Name} has {data.Count} images, fewer than one batch of {model.Batch}.", nameof(data));
        if (s.Epochs < 1) throw new ArgumentException($"epochs is {s.Epochs}; wanted at least 1.", nameof(s));
        var device = model.Device;
        var ps = model.Parameters;
        var total = s.Epochs * stepsPerEpoch;
        var warmup = Math.Max(1, total / 20);
        var schedule = new CosineSchedule(s.LearningRate, s.LearningRate / 10, Math.Min(warmup, total - 1), total);
        var adam = new AdamWOptions { WeightDecay = OodTrainSettings.WeightDecay };
        var rng = new SplitMix64(0xA0761D6478BD642FUL ^ (ulong)(uint)s.Seed);
        using var norm = device.Zeros(1);
        var order = Enumerable.Range(0, data.Count).ToArray();
        var rows = new int[model.Batch];
        var input = new float[model.Batch * data.Pixels];
        var losses = new double[s.Epochs];
        int step = 0, skipped = 0;
        for (var epoch = 0; epoch < s.Epochs; epoch++)
        {
            for (var i = order.Length - 1; i > 0; i--)
            {
                var j = (int)rng.NextInt(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
            var sum = 0.0;
            for (var b = 0; b < stepsPerEpoch; b++)
            {
                Array.Copy(order, b * model.Batch, rows, 0, model.Batch);
                for (var i = 0; i < rows.Length; i++) data.Image(rows[i]).CopyTo(input.AsSpan(i * data.Pixels));
                model.Input.CopyFrom(input);
                setTargets(rows);
                using (var check = device.BeginStep())
                {
                    model.Forward();
                    model.Backward(lossGradient());
                    GradientClip.ClipGlobalNorm(ps.Gradients, OodTrainSettings.ClipNorm, norm);
                    AdamW.Step(ps.Values, ps.Gradients, ps.M, ps.V, ps.Decay, adam, step + 1, (float)schedule.LearningRate(step));
                    if (!check.TryFinish(out _)) skipped++;
                }
                sum += readLoss();
                step++;
            }
            losses[epoch] = sum / stepsPerEpoch;
        }
        return new OodTrainLog(step, losses, skipped);
    }
}
