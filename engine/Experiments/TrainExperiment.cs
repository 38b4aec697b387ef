// `routekit train`: trains a byte-level language model whose mixer is any RouteKit router on the fortunes text, and
// writes into results/train/<run-id>/: config.json, metrics.jsonl (train loss every step, validation loss and the
// routing and collapse diagnostics every --eval-every steps), checkpoint.bin (every --checkpoint-every steps and at
// the end; --resume continues from it bit for bit), loss and diagnostics plots, summary.md. Verdict: the final
// validation loss is below the unigram entropy of the training text (a model that learned nothing beyond byte
// frequencies cannot get there).
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Runs;
using RouteKit.Engine.Training;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>One training run's settings, as the command line gives them.</summary>
internal sealed record TrainSettings(ModelConfig Model, TrainOptions Train, int EvalEvery, int CheckpointEvery, string Data)
{
    public JsonObject ToJson() => new()
    {
        ["mixer"] = Model.Mixer.ToString().ToLowerInvariant(),
        ["score"] = Model.Score.ToString().ToLowerInvariant(),
        ["normalize_keys"] = Model.NormalizeKeys,
        ["brake"] = (double)Model.Brake,
        ["layers"] = Model.Layers,
        ["width"] = Model.Width,
        ["heads"] = Model.Heads,
        ["context"] = Model.Context,
        ["tied_head"] = Model.TiedHead,
        ["steps"] = Train.Steps,
        ["batch"] = Train.Batch,
        ["lr"] = Train.LearningRate,
        ["warmup"] = Train.WarmupSteps,
        ["seed"] = Model.Seed,
        ["data_seed"] = Train.DataSeed,
        ["eval_every"] = EvalEvery,
        ["checkpoint_every"] = CheckpointEvery,
        ["data"] = Data,
    };
}

/// <summary>Runs <c>routekit train</c>; see the file header.</summary>
internal static class TrainExperiment
{
    public const string Name = "train";
    public const string CheckpointFile = "checkpoint.bin";

    /// <summary>The run's folder, its final validation loss, the unigram entropy it must beat, and the verdict.</summary>
    public sealed record Result(string RunPath, double ValidationLoss, double UnigramEntropy, bool Passed, TimeSpan Elapsed, double TokensPerSecond);

    public static Result Run(IAnsiConsole console, Device device, TrainSettings s, string outRoot, string? resume, string commandLine,
        Func<int, bool>? stopAfter = null)
    {
        var text = s.Data == "installed" ? FortuneText.LoadInstalled() : FortuneText.LoadSample();
        var options = s.ToJson();
        string? resumePath = null;
        if (resume is not null)
        {
            resumePath = RunFolder.FindResume(outRoot, Name, options, resume);
            if (resumePath is null) console.WriteLine("train: --resume found no earlier run with these options; starting a new run.");
        }
        var devices = new JsonArray { new JsonObject { ["backend"] = RunContext.BackendName(device.Backend), ["name"] = device.Name } };
        using var run = RunFolder.Open(outRoot, Name, options, devices, commandLine, resumePath);
        using var trainer = new Trainer(device, s.Model, s.Train, text.Train, text.Validation);
        var checkpoint = Path.Combine(run.Path, CheckpointFile);
        var recorded = run.Records.Where(r => (string?)r["kind"] == "train").ToDictionary(r => (int)r["step"]!, r => (float)(double)r["loss"]!);
        var mismatches = 0;
        if (resumePath is not null && File.Exists(checkpoint))
        {
            Checkpoint.Load(checkpoint, trainer);
            console.WriteLine($"train: resumed run {run.RunId} at step {trainer.Step} of {s.Train.Steps}.");
        }
        var entropy = text.UnigramEntropyNats;
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train: {s.Model.Mixer} model, {trainer.Model.Parameters.Count:N0} parameters, {s.Train.Steps} steps of {trainer.TokensPerStep} bytes on {device.Name}; text {text.Source}: {text.Train.Length:N0} train / {text.Validation.Length:N0} validation bytes, unigram entropy {entropy:F3} nats."));
        var clock = Stopwatch.StartNew();
        var stepClock = Stopwatch.StartNew();
        var tokensSince = 0L;
        var firstStep = trainer.Step;
        double lastValidation = double.NaN;
        var tokensPerSecond = 0.0;
        while (trainer.Step < s.Train.Steps)
        {
            var r = trainer.TrainStep();
            tokensSince += trainer.TokensPerStep;
            var done = trainer.Step;
            if (recorded.TryGetValue(r.Step, out var before))
            {
                // A step re-run after a resume: it must reproduce what the killed run recorded, bit for bit.
                if (BitConverter.SingleToInt32Bits(before) != BitConverter.SingleToInt32Bits(r.Loss)) mismatches++;
            }
            else
                run.Append(new JsonObject
                {
                    ["key"] = $"train/{r.Step:D6}", ["kind"] = "train", ["step"] = r.Step, ["loss"] = (double)r.Loss, ["lr"] = (double)r.LearningRate,
                    ["grad_norm"] = (double)r.GradientNorm, ["skipped"] = r.Skipped,
                });
            var last = done == s.Train.Steps;
            if (done % s.EvalEvery == 0 || last)
            {
                var seconds = stepClock.Elapsed.TotalSeconds;
                tokensPerSecond = seconds > 0 ? tokensSince / seconds : 0;
                lastValidation = trainer.Evaluate();
                var key = $"val/{done:D6}";
                if (!run.IsDone(key))
                {
                    run.Append(new JsonObject { ["key"] = key, ["kind"] = "val", ["step"] = done, ["loss"] = lastValidation, ["tokens_per_s"] = tokensPerSecond });
                    foreach (var d in Diagnostics.Measure(trainer.Model, done)) if (!run.IsDone((string)d["key"]!)) run.Append(d);
                }
                var remaining = (s.Train.Steps - done) * (clock.Elapsed.TotalSeconds / Math.Max(1, done - firstStep));
                console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {done,6}/{s.Train.Steps}  loss {r.Loss:F4}  val {lastValidation:F4}  {tokensPerSecond:N0} bytes/s  ETA {TimeSpan.FromSeconds(remaining):hh\\:mm\\:ss}"));
                stepClock.Restart();
                tokensSince = 0;
            }
            if (done % s.CheckpointEvery == 0 || last) Checkpoint.Save(checkpoint, trainer, text.Source);
            if (stopAfter?.Invoke(done) == true) break;
        }
        if (double.IsNaN(lastValidation))
        {
            // Resumed a finished run (no step left): its last validation loss is on record; without one, measure it
            // again on the checkpoint's model (evaluation is deterministic).
            var recordedVal = run.Records.LastOrDefault(r => (string?)r["kind"] == "val" && (int)r["step"]! == trainer.Step);
            lastValidation = recordedVal is not null ? (double)recordedVal["loss"]! : trainer.Evaluate();
        }
        var passed = lastValidation < entropy && mismatches == 0;
        Plots.Write(run);
        run.WriteSummary(Summary(run, s, trainer, text, lastValidation, entropy, mismatches, clock.Elapsed));
        var mismatchNote = mismatches > 0 ? $"; {mismatches} re-run step(s) differed from the killed run's record" : "";
        console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"train: validation loss {lastValidation:F4} nats per byte vs unigram entropy {entropy:F4}: {(lastValidation < entropy ? "below (learned)" : "NOT below")}{mismatchNote}. Run folder {run.Path}"));
        return new Result(run.Path, lastValidation, entropy, passed, clock.Elapsed, tokensPerSecond);
    }

    private static string Summary(RunFolder run, TrainSettings s, Trainer trainer, FortuneText text, double validation, double entropy,
        int mismatches, TimeSpan elapsed)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Training run {run.RunId}").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Model: {s.Model.Mixer}, {s.Model.Layers} layers, width {s.Model.Width}, context {s.Model.Context}, " +
            $"{trainer.Model.Parameters.Count:N0} parameters; options `{s.ToJson().ToJsonString()}`.").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Text: {text.Source} ({text.Train.Length:N0} training bytes, {text.Validation.Length:N0} validation bytes, split by document).").AppendLine();
        var verdict = validation < entropy ? "**Below**: the model predicts bytes better than their frequencies alone." : "**Not below.**";
        md.AppendLine(CultureInfo.InvariantCulture, $"Final validation loss **{validation:F4}** nats per byte; unigram entropy of the training text {entropy:F4} nats. {verdict}").AppendLine();
        if (run.Resumed)
            md.AppendLine(mismatches == 0
                ? "Resumed from a checkpoint; every step re-run after the resume reproduced the killed run's recorded loss bit for bit.\n"
                : $"Resumed; {mismatches} re-run step(s) differed from the killed run's record.\n");
        md.AppendLine(CultureInfo.InvariantCulture, $"Wall time of this process: {elapsed.TotalSeconds:F1} s. Plots: [loss](loss.png), [diagnostics](diagnostics.png). Records: [metrics.jsonl]({RunFolder.MetricsFile}).");
        return md.ToString();
    }
}
