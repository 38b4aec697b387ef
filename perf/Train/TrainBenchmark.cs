// Training throughput of the byte-level models (engine/Models) per mixer on one device: bytes (tokens) per second of
// whole optimizer steps (upload the batch, forward, backward, clip, AdamW, the step's one check read and one loss read)
// and model FLOPs utilisation against the FMA peak measured in the same run (perf/Peak/FmaPeak.cs, the larger of a
// measurement before and one after, as gemm does).
//
// Model FLOPs per token (PaLM's appendix B convention, the work the model needs, not what the kernels happen to do):
//   6 N  for the N parameters of every matrix multiply (projections, MLP, head; not the embedding gather, norms, biases),
//   + attention: 6 L T W / 2 x 2 = 6 L T W (QK^T and PV, forward 2 x 2 T W per token over the causal half, x 3 for
//     forward + backward), Distance and NormalizeKeys add O(W) per key, not counted;
//   + Mamba: the scan's ~9 E N per token forward, x 3, and the conv's 2 K E x 3; RG-LRU: O(W) per token, not counted.
// Run: `routekit-perf train [--quick] [--repeats N] [--out DIR] [--backend B]` (DIR gets train-<backend>-<date>.md and .csv).
using System.Globalization;
using System.Text;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Training;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;

namespace RouteKit.Perf.Train;

/// <summary>One mixer's measured training step.</summary>
public sealed record TrainTiming(string Mixer, int Layers, int Width, int Context, int Batch, long MatmulParameters, double FlopsPerToken,
    Timing Step, double TokensPerSecond, double Gflops);

/// <summary>Times whole training steps of each mixer's model; see the file header.</summary>
public static class TrainBenchmark
{
    /// <summary>The model FLOPs of one token's forward + backward (file header).</summary>
    public static (long MatmulParameters, double FlopsPerToken) ModelFlops(ByteLanguageModel model)
    {
        var c = model.Config;
        long matmul = 0;
        foreach (var p in model.Parameters.Infos)
            if (p.Shape.Length == 2 && p.Name != "wte" && !p.Name.EndsWith(".conv_w", StringComparison.Ordinal) && !p.Name.EndsWith(".a_log", StringComparison.Ordinal))
                matmul += p.Length;
        if (c.TiedHead) matmul += (long)ModelConfig.Vocabulary * c.Width;
        double flops = 6.0 * matmul;
        if (c.Mixer == MixerKind.Attention) flops += 6.0 * c.Layers * c.Context * c.Width;
        if (c.Mixer == MixerKind.Mamba) flops += 3.0 * c.Layers * (9.0 * c.Inner * c.States + 2.0 * c.ConvWidth * c.Inner);
        return (matmul, flops);
    }

    /// <summary>Measures the peak, times every mixer and writes a markdown report; 0, or 1 when a step is skipped or not finite.</summary>
    public static int Run(TextWriter output, bool quick, int repeats, Backend backend, LoadCheck load, string? outDir = null, string? command = null)
    {
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"Training throughput, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        using var device = Device.Create(backend);
        var text = FortuneText.LoadSample();
        Bench.Progress("FMA peak");
        var peak = FmaPeak.Measure(trials: quick ? 2 : 5);
        var rows = new List<TrainTiming>();
        var width = quick ? 64 : 256;
        var context = quick ? 64 : 256;
        foreach (var mixer in new[] { MixerKind.Attention, MixerKind.Mamba, MixerKind.Recurrent })
        {
            var config = new ModelConfig
            {
                Mixer = mixer, Layers = 2, Width = width, Context = context, Heads = width / 64, Brake = mixer == MixerKind.Recurrent ? 8f : 1f,
            };
            var options = new TrainOptions { Steps = 1000, Batch = 8, WarmupSteps = 10 };
            Bench.Progress($"{mixer} W={width} T={context} B={options.Batch}");
            using var trainer = new Trainer(device, config, options, text.Train, text.Validation);
            var bad = false;
            var timing = Bench.Time(device, () =>
            {
                var r = trainer.TrainStep();
                bad |= r.Skipped || !float.IsFinite(r.Loss);
            }, repeats, minSampleMs: 0);
            if (bad)
            {
                report.AppendLine($"FAILED: a {mixer} step was skipped or its loss was not finite.");
                output.Write(report);
                return 1;
            }
            var (matmul, perToken) = ModelFlops(trainer.Model);
            var tokens = trainer.TokensPerStep;
            var tps = tokens / (timing.MedianMs / 1e3);
            rows.Add(new TrainTiming(mixer.ToString().ToLowerInvariant(), config.Layers, width, context, options.Batch, matmul, perToken, timing, tps, tps * perToken / 1e9));
        }
        var peakAfter = FmaPeak.Measure(trials: quick ? 2 : 3);
        var wallPeak = Math.Max(peak.GflopsPerSecond, peakAfter.GflopsPerSecond);
        report.AppendLine(string.Create(Bench.Inv,
            $"- device: {device.Name}; FMA peak ({peak.Threads} threads, Vector{peak.VectorBits}, the larger of before {peak.GflopsPerSecond:F1} and after {peakAfter.GflopsPerSecond:F1}): {wallPeak:F1} GFLOP/s"));
        report.AppendLine("- one step = batch upload, forward, backward, global-norm clip, AdamW, the step's check read and the loss read; median of the timed steps after one warm-up step");
        report.AppendLine("- model FLOPs per token: 6 x matmul parameters + attention's 6 L T W (causal) + Mamba's scan and conv; MFU = tokens/s x FLOPs per token / peak (file header of perf/Train/TrainBenchmark.cs)");
        report.AppendLine();
        report.AppendLine("| mixer | L | W | T | B | matmul params | GFLOP per step | median ms | min ms | max ms | bytes/s | GFLOP/s | MFU |");
        report.AppendLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            report.AppendLine(string.Create(Bench.Inv,
                $"| {t.Mixer} | {t.Layers} | {t.Width} | {t.Context} | {t.Batch} | {t.MatmulParameters:N0} | {t.FlopsPerToken * t.Batch * t.Context / 1e9:F3} | {t.Step.MedianMs:F1} | {t.Step.MinMs:F1} | {t.Step.MaxMs:F1} | {t.TokensPerSecond:N0} | {t.Gflops:F1} | {100 * t.Gflops / wallPeak:F1}% |"));
        report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            var csv = new StringBuilder("mixer,layers,width,context,batch,matmul_parameters,flops_per_token,median_ms,min_ms,max_ms,tokens_per_s,gflops,peak_gflops,mfu," + LoadCheck.CsvHeader + "\n");
            foreach (var t in rows)
                csv.AppendLine(string.Create(Bench.Inv,
                    $"{t.Mixer},{t.Layers},{t.Width},{t.Context},{t.Batch},{t.MatmulParameters},{t.FlopsPerToken:F0},{t.Step.MedianMs:F3},{t.Step.MinMs:F3},{t.Step.MaxMs:F3},{t.TokensPerSecond:F1},{t.Gflops:F2},{wallPeak:F1},{t.Gflops / wallPeak:F4},{load.CsvFields}"));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"train-{backend.ToString().ToLowerInvariant()}-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }
}
