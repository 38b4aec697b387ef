// The training loop of a ByteLanguageModel (issue 11): random windows of the training bytes, AdamW with a cosine
// schedule and global-norm clipping, validation on fixed windows, checkpoints that resume bit for bit. One step:
// upload the batch, BeginStep, forward, backward, clip, AdamW, Finish (the one read-back of the step's checks) and one
// read of the loss. Nothing is allocated inside a step after the first.
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Training;

/// <summary>Optimisation settings of a training run.</summary>
public sealed record TrainOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 200;
    /// <summary>Sequences per batch.</summary>
    public int Batch { get; init; } = 8;
    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 3e-3;
    /// <summary>Final learning rate as a fraction of the peak.</summary>
    public double MinLearningRateFraction { get; init; } = 0.1;
    /// <summary>Linear warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 20;
    /// <summary>AdamW's decoupled weight decay (matrices and embeddings only).</summary>
    public float WeightDecay { get; init; } = 0.1f;
    /// <summary>AdamW's beta2.</summary>
    public float Beta2 { get; init; } = 0.95f;
    /// <summary>Global gradient norm clip.</summary>
    public float ClipNorm { get; init; } = 1f;
    /// <summary>Seed of the batch sampler.</summary>
    public int DataSeed { get; init; } = 1;
    /// <summary>Validation batches (fixed windows spread over the validation text).</summary>
    public int ValidationBatches { get; init; } = 4;

    /// <summary>Null when usable, else one line saying what is wrong.</summary>
    public string? Validate()
    {
        if (Steps < 1) return $"--steps {Steps}: wanted at least 1.";
        if (Batch < 1 || Batch > 4096) return $"--batch {Batch}: wanted 1 to 4096.";
        if (!(LearningRate > 0 && LearningRate < 1)) return $"--lr {LearningRate}: wanted a value in (0, 1).";
        if (WarmupSteps < 0) return $"--warmup {WarmupSteps}: wanted 0 or more.";
        if (ValidationBatches < 1) return $"validation batches {ValidationBatches}: wanted at least 1.";
        return null;
    }
}

/// <summary>One step's measured values.</summary>
/// <param name="Step">0-based step just taken.</param>
/// <param name="Loss">Mean training loss of the step's batch (nats per byte).</param>
/// <param name="LearningRate">The rate used.</param>
/// <param name="GradientNorm">Global gradient norm before clipping.</param>
/// <param name="Skipped">True when a check of the step failed and AdamW skipped the update.</param>
public readonly record struct StepResult(int Step, float Loss, float LearningRate, float GradientNorm, bool Skipped);

/// <summary>Trains one model on one byte corpus; see the file header.</summary>
public sealed class Trainer : IDisposable
{
    private readonly byte[] train, validation;
    private readonly float[] hostIds, hostTargets;
    private readonly float[] one = new float[1];
    private readonly Tensor norm;
    private readonly CosineSchedule schedule;
    private readonly AdamWOptions adam;

    /// <summary>Builds the model and the loop.</summary>
    /// <exception cref="ArgumentException">A configuration is invalid or a corpus is shorter than one window.</exception>
    public Trainer(Device device, ModelConfig config, TrainOptions options, byte[] train, byte[] validation)
    {
        if (options.Validate() is { } problem) throw new ArgumentException(problem, nameof(options));
        if (config.Validate() is { } bad) throw new ArgumentException(bad, nameof(config));
        if (train.Length < config.Context + 2 || validation.Length < config.Context + 2)
            throw new ArgumentException(
                $"the corpus has {train.Length:N0} training and {validation.Length:N0} validation bytes; a window of --context {config.Context} needs {config.Context + 2}.");
        Options = options;
        this.train = train;
        this.validation = validation;
        Model = new ByteLanguageModel(device, config, options.Batch);
        var rows = options.Batch * config.Context;
        hostIds = new float[rows];
        hostTargets = new float[rows];
        norm = device.Zeros(1);
        schedule = new CosineSchedule(options.LearningRate, options.LearningRate * options.MinLearningRateFraction,
            Math.Min(options.WarmupSteps, options.Steps - 1), options.Steps);
        adam = new AdamWOptions { Beta2 = options.Beta2, WeightDecay = options.WeightDecay };
        DataRng = new SplitMix64(0xD1B54A32D192ED03UL ^ (ulong)options.DataSeed);
    }

    /// <summary>The model being trained.</summary>
    public ByteLanguageModel Model { get; }
    /// <summary>The options.</summary>
    public TrainOptions Options { get; }
    /// <summary>Steps taken so far (the next step's 0-based index).</summary>
    public int Step { get; internal set; }
    /// <summary>The batch sampler's generator (its state is the data cursor a checkpoint saves).</summary>
    public SplitMix64 DataRng { get; }

    /// <summary>Bytes of context processed per step (B x T).</summary>
    public int TokensPerStep => Options.Batch * Model.Config.Context;

    /// <summary>Takes one optimizer step on a fresh random batch and returns its loss (two small reads: checks and loss).</summary>
    public StepResult TrainStep()
    {
        var t = Model.Config.Context;
        for (var b = 0; b < Options.Batch; b++)
        {
            var start = (int)DataRng.NextInt(train.Length - t - 1);
            Fill(train, start, b * t, t);
        }
        Model.Ids.CopyFrom(hostIds);
        Model.Targets.CopyFrom(hostTargets);
        var lr = (float)schedule.LearningRate(Step);
        var device = Model.Device;
        var ps = Model.Parameters;
        bool ok;
        using (var step = device.BeginStep())
        {
            Model.Forward();
            Model.Backward();
            GradientClip.ClipGlobalNorm(ps.Gradients, Options.ClipNorm, norm);
            AdamW.Step(ps.Values, ps.Gradients, ps.M, ps.V, ps.Decay, adam, Step + 1, lr);
            ok = step.TryFinish(out _);
        }
        Model.Loss.CopyTo(one);
        var loss = one[0];
        norm.CopyTo(one);
        var result = new StepResult(Step, loss, lr, one[0], !ok);
        Step++;
        return result;
    }

    /// <summary>Mean loss over the fixed validation windows (forward only).</summary>
    public double Evaluate()
    {
        var t = Model.Config.Context;
        var windows = Options.ValidationBatches * Options.Batch;
        var span = validation.Length - t - 1;
        var total = 0.0;
        for (var k = 0; k < Options.ValidationBatches; k++)
        {
            for (var b = 0; b < Options.Batch; b++)
            {
                var w = k * Options.Batch + b;
                Fill(validation, (int)((long)span * w / windows), b * t, t);
            }
            Model.Ids.CopyFrom(hostIds);
            Model.Targets.CopyFrom(hostTargets);
            Model.Forward();
            Model.Loss.CopyTo(one);
            total += one[0];
        }
        return total / Options.ValidationBatches;
    }

    private void Fill(byte[] bytes, int start, int offset, int t)
    {
        for (var i = 0; i < t; i++)
        {
            hostIds[offset + i] = bytes[start + i];
            hostTargets[offset + i] = bytes[start + i + 1];
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Model.Dispose();
        norm.Dispose();
    }
}
