// `routekit-perf pretrained`: sentence embeddings per second of a packaged BERT sentence encoder (all-MiniLM-L6-v2 or
// arctic-embed-xs) run through RouteKit's ops on the Managed backend (engine/Pretrained/BertEncoder.cs) against ONNX
// Runtime running the same .onnx file (engine/Pretrained/OnnxRuntimeEncoder.cs), at each batch size asked for.
//
// Both sides get the very same BertBatch objects: the first S sentences of the fortunes sample, tokenised once, sorted
// by token count (stable, so ties keep sample order) and cut into batches of B, each padded to its longest text. One
// timed pass encodes all S sentences, batch after batch, from BertBatch to L2-normalised sentence embeddings: RouteKit's
// BertEncoder.Embed (forward, read-back, pooling) and ORT's LastHiddenState (input tensors, Run, output copy) followed by
// the same BertEncoder.Pool.
//
// Validate, then time: the first pass of each side is also the check (and the warm-up: JIT, ORT's first-run planning,
// RouteKit's workspaces): over all S sentences, max |RouteKit - ORT| <= 1e-4 and min cosine >= 0.99999, else the command
// prints the failure and exits 1 without timing anything. Then one more untimed pass of each, then `reps` timed passes
// interleaved (RouteKit, ORT, RouteKit, ...) so that other load on a shared machine falls on both alike.
//
// Threads: ORT's IntraOpNumThreads is set to the Managed backend's fan-out, ManagedParallel's SlotCount =
// max(Environment.ProcessorCount, 1) (the caller plus ProcessorCount - 1 pool workers), with OnnxRuntimeEncoder's other
// options (inter-op 1, sequential, default graph optimisation level and spinning).
using System.Diagnostics;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using RouteKit.Engine.Pretrained;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;

namespace RouteKit.Perf.Pretrained;

/// <summary>The wall times of one side over the timed passes, each pass encoding every sentence once.</summary>
/// <param name="MedianS">Median seconds per pass.</param>
/// <param name="MinS">Fastest pass, seconds.</param>
public sealed record PassTiming(double MedianS, double MinS);

/// <summary>One batch size's result.</summary>
/// <param name="BatchSize">B, texts per batch (the last batch may hold fewer).</param>
/// <param name="Batches">Batches per pass.</param>
/// <param name="Sentences">Sentences per pass.</param>
/// <param name="RealTokens">Tokens of the texts ([CLS] and [SEP] included), per pass.</param>
/// <param name="PaddedTokens">B x T summed over the batches, per pass: what both sides compute.</param>
/// <param name="RouteKit">RouteKit Managed timing.</param>
/// <param name="Ort">ONNX Runtime timing.</param>
public sealed record PretrainedRow(int BatchSize, int Batches, int Sentences, long RealTokens, long PaddedTokens, PassTiming RouteKit, PassTiming Ort)
{
    /// <summary>RouteKit's sentences/s over ORT's, from the medians: above 1 RouteKit is faster.</summary>
    public double Ratio => Ort.MedianS / RouteKit.MedianS;
}

/// <summary>RouteKit's BERT encoder vs ONNX Runtime on the same model file and batches.</summary>
public static class PretrainedBenchmark
{
    /// <summary>Largest allowed |RouteKit - ORT| over every embedding entry.</summary>
    public const double MaxAbsLimit = 1e-4;

    /// <summary>Smallest allowed cosine between a sentence's two embeddings.</summary>
    public const double MinCosineLimit = 0.99999;

    /// <summary>The threads RouteKit's Managed backend fans out to (ManagedParallel.SlotCount): the ORT side gets as many.</summary>
    public static int ManagedThreads => ManagedParallel.SlotCount;

    /// <summary>The command-line name of a model.</summary>
    public static string Slug(PretrainedModelId id) => id switch
    {
        PretrainedModelId.MiniLM => "minilm",
        PretrainedModelId.ArcticXs => "arctic-xs",
        _ => throw new ArgumentOutOfRangeException(nameof(id)),
    };

    /// <summary>Parses "minilm" or "arctic-xs".</summary>
    public static PretrainedModelId ParseModel(string slug) => slug switch
    {
        "minilm" => PretrainedModelId.MiniLM,
        "arctic-xs" => PretrainedModelId.ArcticXs,
        _ => throw new ArgumentException($"unknown model '{slug}': minilm or arctic-xs.", nameof(slug)),
    };

    /// <summary>The pooling each model card prescribes: mean for all-MiniLM-L6-v2, [CLS] for arctic-embed-xs.</summary>
    public static SentencePooling Pooling(PretrainedModelId id) => id == PretrainedModelId.ArcticXs ? SentencePooling.Cls : SentencePooling.Mean;

    /// <summary>
    /// Runs every model at every batch size and writes the report (and, with <paramref name="outDir"/>,
    /// pretrained-managed-vs-ort-&lt;date&gt;.md). 0, or 1 when a validation failed (nothing was timed after it).
    /// </summary>
    /// <param name="output">Receives the validation lines and the report.</param>
    /// <param name="models">Models, in order.</param>
    /// <param name="sentences">S, sentences per pass (the first S of the fortunes sample).</param>
    /// <param name="batchSizes">Batch sizes, in order.</param>
    /// <param name="reps">Timed passes per side and batch size.</param>
    /// <param name="peaks">Measure the FMA peak and copy bandwidth first (about a second on a quiet machine; tests skip them).</param>
    /// <param name="outDir">Folder for the markdown file, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="load">The load check taken at the command's start.</param>
    public static int Run(TextWriter output, IReadOnlyList<PretrainedModelId> models, int sentences, IReadOnlyList<int> batchSizes, int reps,
        bool peaks, string? outDir, string command, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(batchSizes);
        ArgumentNullException.ThrowIfNull(load);
        ArgumentOutOfRangeException.ThrowIfLessThan(reps, 1);
        if (models.Count == 0) throw new ArgumentException("no model.", nameof(models));
        if (batchSizes.Count == 0 || batchSizes.Any(b => b < 1)) throw new ArgumentException("batch sizes must be 1 or more.", nameof(batchSizes));
        if (sentences < 1 || sentences > PretrainedSentences.Available)
            throw new ArgumentOutOfRangeException(nameof(sentences), sentences, $"1 to {PretrainedSentences.Available} (the fortunes sample).");

        var started = DateTime.UtcNow;
        string peakLine = "- peaks: not measured (--no-peaks)";
        if (peaks)
        {
            Bench.Progress("pretrained: FMA peak and copy bandwidth");
            var fma = FmaPeak.Measure();
            var copy = CopyBandwidth.Measure(256L << 20, 5);
            peakLine = string.Create(Bench.Inv,
                $"- peaks measured in this run: FMA {fma.GflopsPerSecond:F1} GFLOP/s wall ({fma.Threads} threads, {fma.VectorBits}-bit), copy {copy:F1} GB/s (read + write, 256 MiB, median of 5)");
        }
        using var defaults = new SessionOptions();
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"BERT sentence encoders: RouteKit Managed vs ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU), {started:yyyy-MM-dd HH:mm} UTC", load, command));
        report.AppendLine(peakLine);
        report.AppendLine($"- threads: RouteKit Managed fans out to {ManagedThreads} (ManagedParallel: the caller + ProcessorCount - 1 pool workers); " +
                          $"ONNX Runtime IntraOpNumThreads = {ManagedThreads}, InterOpNumThreads = 1, sequential, graph optimisation {defaults.GraphOptimizationLevel} (default), spinning default");
        report.AppendLine($"- sentences: the first {sentences} documents of the fortunes sample, tokenised once, sorted by token count (stable), cut into batches; " +
                          "both sides get exactly the same BertBatch objects");
        report.AppendLine("- one pass = every sentence once, BertBatch to L2-normalised embeddings: RouteKit BertEncoder.Embed; ORT LastHiddenState + BertEncoder.Pool");
        report.AppendLine(string.Create(Bench.Inv,
            $"- validate, then time: the first pass of each side is checked (max abs <= {MaxAbsLimit:G}, min cosine >= {MinCosineLimit}) and warms up; one more untimed pass each, then {reps} timed passes interleaved RouteKit, ORT, ..."));

        var sections = new List<(PretrainedModelId Id, BertStructure Structure, List<PretrainedRow> Rows)>();
        var validations = new List<string>();
        foreach (var id in models)
        {
            Bench.Progress($"pretrained {Slug(id)}: load package, parse, tokenise");
            var package = PretrainedPackage.Load(id);
            var structure = BertStructure.Read(OnnxModel.Parse(package.ModelBytes));
            var tokenizer = new PretrainedTokenizer(package.VocabText, warn: _ => { });
            var texts = PretrainedSentences.Load(sentences).Select(tokenizer.Encode).OrderBy(t => t.InputIds.Length).ToList();
            var pooling = Pooling(id);
            var rows = new List<PretrainedRow>();
            using var device = Device.Create(Backend.Managed);
            using var encoder = new BertEncoder(device, structure, pooling);
            using var ort = new OnnxRuntimeEncoder(package.ModelBytes, structure, ManagedThreads);
            foreach (var size in batchSizes)
            {
                var batches = texts.Chunk(size).Select(c => new BertBatch(c, structure.MaxPositions)).ToList();
                float[][] RouteKitPass()
                {
                    var all = new List<float[]>(sentences);
                    foreach (var batch in batches) all.AddRange(encoder.Embed(batch));
                    return [.. all];
                }
                float[][] OrtPass()
                {
                    var all = new List<float[]>(sentences);
                    foreach (var batch in batches)
                        all.AddRange(BertEncoder.Pool(ort.LastHiddenState(batch), batch.Lengths, batch.Tokens, structure.Hidden, pooling));
                    return [.. all];
                }

                Bench.Progress($"pretrained {Slug(id)} batch {size}: validate");
                var (maxAbs, minCos) = Compare(OrtPass(), RouteKitPass());
                var ok = maxAbs <= MaxAbsLimit && minCos >= MinCosineLimit;
                var line = string.Create(Bench.Inv,
                    $"validation {Slug(id)} ({pooling} pooling) batch {size}: {sentences} sentences, max |RouteKit - ORT| {maxAbs:E2} (limit {MaxAbsLimit:G}), " +
                    $"min cosine {minCos:F9} (limit {MinCosineLimit}): {(ok ? "passed" : "FAILED")}");
                output.WriteLine(line);
                if (!ok)
                {
                    output.WriteLine("validation failed: not timing an encoder whose embeddings differ from ONNX Runtime's.");
                    return 1;
                }
                validations.Add(line);

                Bench.Progress($"pretrained {Slug(id)} batch {size}: warm up, then {reps} interleaved passes each");
                RouteKitPass();
                OrtPass();
                double[] rk = new double[reps], or = new double[reps];
                var clock = new Stopwatch();
                for (var r = 0; r < reps; r++)
                {
                    clock.Restart();
                    RouteKitPass();
                    rk[r] = clock.Elapsed.TotalSeconds;
                    clock.Restart();
                    OrtPass();
                    or[r] = clock.Elapsed.TotalSeconds;
                }
                rows.Add(new PretrainedRow(size, batches.Count, sentences, batches.Sum(b => (long)b.Lengths.Sum()), batches.Sum(b => (long)b.Batch * b.Tokens),
                    new PassTiming(Bench.Median(rk), rk.Min()), new PassTiming(Bench.Median(or), or.Min())));
            }
            sections.Add((id, structure, rows));
        }

        report.AppendLine();
        foreach (var line in validations) report.AppendLine($"- {line}");
        report.AppendLine().AppendLine(TableHeader);
        foreach (var (id, structure, rows) in sections)
            foreach (var row in rows)
                report.AppendLine(TableRow(id, structure, row));
        report.AppendLine();
        report.AppendLine("Times are seconds per pass (median and min over the timed passes); sentences/s and tokens/s from the median; tokens are the texts' own " +
                          "([CLS] and [SEP] included), padding excluded (padded = B x T summed over batches, what both sides compute). RouteKit / ORT: sentences/s ratio " +
                          "from the medians, above 1 RouteKit is faster.");
        report.AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"pretrained-managed-vs-ort-{started:yyyy-MM-dd}.md"), report.ToString());
        }
        return 0;
    }

    /// <summary>The markdown table's header (two lines).</summary>
    public const string TableHeader =
        "| model | L x C | batch | batches | tokens (padded) | RouteKit median s | min s | RouteKit sentences/s | tokens/s | ORT median s | min s | ORT sentences/s | tokens/s | RouteKit / ORT |\n" +
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

    /// <summary>One row of the table.</summary>
    public static string TableRow(PretrainedModelId id, BertStructure structure, PretrainedRow x)
    {
        ArgumentNullException.ThrowIfNull(structure);
        ArgumentNullException.ThrowIfNull(x);
        return string.Create(Bench.Inv,
            $"| {Slug(id)} | {structure.Layers} x {structure.Hidden} | {x.BatchSize} | {x.Batches} | {x.RealTokens} ({x.PaddedTokens}) | " +
            $"{x.RouteKit.MedianS:F3} | {x.RouteKit.MinS:F3} | {x.Sentences / x.RouteKit.MedianS:F1} | {x.RealTokens / x.RouteKit.MedianS:F0} | " +
            $"{x.Ort.MedianS:F3} | {x.Ort.MinS:F3} | {x.Sentences / x.Ort.MedianS:F1} | {x.RealTokens / x.Ort.MedianS:F0} | {x.Ratio:F2}x |");
    }

    /// <summary>Max |expected - actual| over every entry and the smallest per-sentence cosine: <see cref="BertEncoder.Compare"/>.</summary>
    public static (double MaxAbs, double MinCosine) Compare(float[][] expected, float[][] actual) => BertEncoder.Compare(expected, actual);
}
