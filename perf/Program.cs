using System.CommandLine;
using System.Text;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Perf.Train;
using RouteKit.Perf.Conv1d;
using RouteKit.Perf.Depth;
using RouteKit.Perf.FeatureNorms;
using RouteKit.Perf.Gemm;
using RouteKit.Perf.Graph;
using RouteKit.Perf.Onnx;
using RouteKit.Perf.Peak;
using RouteKit.Perf.Pretrained;
using RouteKit.Perf.Training;

namespace RouteKit.Perf;

/// <summary>
/// <c>routekit-perf</c>: every command validates against the float64 reference before it times (llm.c) and reports a
/// ratio to a peak or a peer measured in the same run. Every command that times something first passes the load gate
/// (perf/Common/MachineLoad.cs): it records the 1-, 5- and 15-minute load averages in its results and refuses to start
/// when the 1-minute average is above 0.5 per logical core, unless --allow-busy marks the results as taken on a busy
/// machine. Exit codes: 0 done, 1 a validation failed (nothing wrong was timed), 2 bad usage or no such device, 3 the
/// machine was busy (nothing ran).
/// </summary>
public static class Program
{
    private static int Main(string[] args) => Run(args, () => LoadAverages.Read(), Console.Error);

    /// <summary>
    /// Parses and runs one command line. <paramref name="loadAverages"/> gives the load the gate judges (the tests inject
    /// one; the real program reads /proc/loadavg); <paramref name="error"/> receives usage errors and refusals. Reports
    /// go to the console and, with --out, to files.
    /// </summary>
    public static int Run(string[] args, Func<LoadAverages?> loadAverages, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(loadAverages);
        ArgumentNullException.ThrowIfNull(error);
        var command = "routekit-perf " + string.Join(' ', args);
        var allowBusy = new Option<bool>("--allow-busy")
        {
            Description = $"Run even when the 1-minute load average is above {LoadCheck.PerCoreLimit} per logical core; the results are marked as taken on a busy machine.",
        };
        int Gate(ParseResult r, Func<LoadCheck, int> run) =>
            LoadGate.Run(LoadGate.Check(loadAverages(), Environment.ProcessorCount, r.GetValue(allowBusy)), error, run);
        var quick = new Option<bool>("--quick") { Description = "Small grid and few repeats (seconds; for tests and the simulator)." };
        var outDir = new Option<string?>("--out") { Description = "Folder to write the markdown report (and CSV) into." };
        var repeats = new Option<int>("--repeats") { Description = "Timed samples per point (median and spread).", DefaultValueFactory = _ => 7 };
        var backend = new Option<string>("--backend")
        {
            Description = "managed, ilgpu-cpu, cuda or opencl.", DefaultValueFactory = _ => "managed",
        };
        backend.AcceptOnlyFromAmong("managed", "ilgpu-cpu", "cuda", "opencl");

        var list = new Command("list", "Every op and variant with its one-line idea.");
        list.SetAction(_ => List(Console.Out));

        var variant = new Option<int>("--variant") { Description = "Kernel version (see list).", DefaultValueFactory = _ => 1 };
        var shape = new Option<string>("--shape") { Description = "B,H,N,M,D", DefaultValueFactory = _ => "1,4,1024,1024,64" };
        var causal = new Option<bool>("--causal") { Description = "Causal mask." };
        var score = new Option<string>("--score") { Description = "dot or distance.", DefaultValueFactory = _ => "dot" };
        score.AcceptOnlyFromAmong("dot", "distance");
        var normalize = new Option<bool>("--normalize") { Description = "Normalise keys." };
        var attention = new Command("attention", "Validate one attention variant on one shape against the float64 Reference, then time it.")
        {
            variant, shape, causal, score, normalize, backend, repeats, outDir, allowBusy,
        };
        attention.SetAction(r =>
        {
            var s = AttentionShape.Parse(r.GetValue(shape)!, r.GetValue(causal), r.GetValue(score) == "distance" ? Score.Distance : Score.Dot, r.GetValue(normalize));
            if (r.GetValue(variant) is var v && (v < 1 || v > AttentionBenchmark.VariantCount))
            {
                error.WriteLine($"routekit-perf: attention has variants 1..{AttentionBenchmark.VariantCount} (see `routekit-perf list`); got --variant {v}.");
                return 2;
            }
            return Gate(r, load => WithDevice(r.GetValue(backend)!, error, device => RunAttention(device, s, r.GetValue(variant), r.GetValue(repeats), r.GetValue(outDir), command, load)));
        });

        var attentionManaged = new Command("attention-managed", "Managed attention forward/backward grid, GFLOP/s vs the FMA peak.") { quick, outDir, allowBusy };
        attentionManaged.SetAction(r => Gate(r, load => ManagedAttentionBenchmark.Run(r.GetValue(quick), r.GetValue(outDir), command, load)));

        var depth = new Command("depth", "Managed depth router forward/backward (L = 8, 24, 64; T = 4096, H = 8, D = 64), GFLOP/s vs the FMA peak measured in the same run.")
        {
            quick, outDir, allowBusy,
        };
        depth.SetAction(r => Gate(r, load => DepthBenchmark.Run(r.GetValue(quick), r.GetValue(outDir), command, load)));

        var featureNorms = new Command("featurenorms", "Managed feature norms, GB/s vs the read bandwidth (and the memory copy) measured in the same run.")
        {
            quick, outDir, allowBusy,
        };
        featureNorms.SetAction(r => Gate(r, load => FeatureNormsBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command)));

        var conv1d = new Command("conv1d", "Managed causal depthwise Conv1d forward and backward, GB/s vs the read bandwidth (and the memory copy) measured in the same run.")
        {
            quick, outDir, allowBusy,
        };
        conv1d.SetAction(r => Gate(r, load => Conv1dBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command)));

        var gemm = new Command("gemm", "Managed SGEMM (Linear's engine) and ONNX Runtime's MatMul at 512^3, 1024^3, 2048^3: GFLOP/s vs the FMA peak measured in the same run, and Managed / ORT.")
        {
            quick, repeats, outDir, allowBusy,
        };
        gemm.SetAction(r => Gate(r, load => GemmBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command)));

        var denseN = new Option<int>("--dense-n")
        {
            Description = "Queries and keys of the dense-attention comparison, scaled by Nn^2 / N^2 when below Nn (default min(Nn, 8192); 2048 with --quick).",
        };
        var graph = new Command("graph",
            "Managed GraphAttention forward and backward on a Chung-Lu power-law graph of 10^6 edges: edges/s, GFLOP/s vs the FMA peak measured in the same run, and dense Managed attention on the same nodes timed in the same run (time and edges/s vs N^2 pairs/s).")
        {
            quick, repeats, denseN, outDir, allowBusy,
        };
        graph.SetAction(r => Gate(r, load => GraphBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command,
            r.GetValue(denseN))));

        var trainingOps = new Command("training-ops",
            "LayerNorm, RmsNorm, Gelu, Silu, Relu, CrossEntropy, Embedding, AdamW, GradientClip forward and backward: GB/s vs the memory bandwidth measured in the same run.")
        {
            backend, quick, repeats, outDir, allowBusy,
        };
        trainingOps.SetAction(r => Gate(r, load => WithDevice(r.GetValue(backend)!, error,
            device => TrainingOpsBenchmark.Run(Console.Out, device, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command))));

        var train = new Command("train",
            "Whole training steps of the byte-level models per mixer (attention, Mamba, RG-LRU; width 256, context 256, 2 layers): bytes/s and model FLOPs utilisation vs the FMA peak measured in the same run.")
        {
            backend, quick, repeats, outDir, allowBusy,
        };
        train.SetAction(r => Gate(r, load => WithDevice(r.GetValue(backend)!, error, device =>
        {
            var b = device.Backend;
            device.Dispose();
            return TrainBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), b, load, r.GetValue(outDir), command);
        })));

        var scanBackend = new Option<string>("--backend") { Description = "managed (vs a sequential loop) or an ILGPU backend.", DefaultValueFactory = _ => "managed" };
        scanBackend.AcceptOnlyFromAmong("managed", "ilgpu-cpu", "cuda", "opencl");
        var scan = new Command("scan", "Selective scan: validate, then time.") { quick, scanBackend, outDir, allowBusy };
        scan.SetAction(r => Gate(r, load => r.GetValue(scanBackend) == "managed"
            ? ScanBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command)
            : ScanBenchmark.RunDevice(Console.Out, Device.ParseBackend(r.GetValue(scanBackend)!), r.GetValue(quick), load)));

        var deviceName = new Argument<string>("backend") { Description = "cuda, opencl or ilgpu-cpu." };
        var scanDevice = new Command("scan-device", "Alias of `scan --backend B`.") { deviceName, quick, allowBusy };
        scanDevice.SetAction(r => Gate(r, load => ScanBenchmark.RunDevice(Console.Out, Device.ParseBackend(r.GetValue(deviceName)!), r.GetValue(quick), load)));

        var onnxRepeats = new Option<int>("--repeats") { Description = "Interleaved samples per point.", DefaultValueFactory = _ => 9 };
        var onnx = new Command("onnx", "RouteKit Managed vs ONNX Runtime (CPU) on the same attention and feature-norm shapes.") { quick, onnxRepeats, outDir, allowBusy };
        onnx.SetAction(r => Gate(r, load =>
        {
            try
            {
                return OnnxBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(onnxRepeats), r.GetValue(outDir), command, load);
            }
            catch (TypeInitializationException e) when (e.InnerException is DllNotFoundException)
            {
                // The GPU bundle leaves out libonnxruntime.so (perf/gpu/bundle.sh).
                error.WriteLine($"routekit-perf: ONNX Runtime's native library is not in this build ({e.InnerException.Message}); run `onnx` from a build with the SDK.");
                return 2;
            }
        }));

        var pretrainedModel = new Option<string>("--model")
        {
            Description = "minilm (all-MiniLM-L6-v2) or arctic-xs (arctic-embed-xs), or both comma-separated (one table).", DefaultValueFactory = _ => "minilm",
        };
        var pretrainedSentences = new Option<int>("--sentences") { Description = "Sentences per pass (the first N of the fortunes sample).", DefaultValueFactory = _ => 256 };
        var pretrainedReps = new Option<int>("--reps") { Description = "Timed passes per side and batch size (interleaved).", DefaultValueFactory = _ => 5 };
        var pretrainedBatch = new Option<string>("--batch") { Description = "Batch sizes, comma-separated.", DefaultValueFactory = _ => "1,32" };
        var noPeaks = new Option<bool>("--no-peaks") { Description = "Skip the FMA peak and copy bandwidth probes (tests)." };
        var pretrained = new Command("pretrained",
            "Sentences/s of a packaged BERT sentence encoder through RouteKit's ops (Managed) vs ONNX Runtime on the same .onnx and the same batches; embeddings validated first.")
        {
            pretrainedModel, pretrainedSentences, pretrainedReps, pretrainedBatch, noPeaks, outDir, allowBusy,
        };
        pretrained.SetAction(r =>
        {
            Engine.Pretrained.PretrainedModelId[] models;
            int[] batches;
            try
            {
                models = r.GetValue(pretrainedModel)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(PretrainedBenchmark.ParseModel).ToArray();
                batches = r.GetValue(pretrainedBatch)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(b => int.Parse(b, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            }
            catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
            {
                error.WriteLine($"routekit-perf: {e.Message}");
                return 2;
            }
            int sentences = r.GetValue(pretrainedSentences), reps = r.GetValue(pretrainedReps);
            if (models.Length == 0 || batches.Length == 0 || batches.Any(b => b < 1) || reps < 1
                || sentences < 1 || sentences > Engine.Pretrained.PretrainedSentences.Available)
            {
                error.WriteLine($"routekit-perf: pretrained needs a model, batch sizes >= 1, --reps >= 1 and 1 <= --sentences <= {Engine.Pretrained.PretrainedSentences.Available}.");
                return 2;
            }
            return Gate(r, load =>
            {
                try
                {
                    return PretrainedBenchmark.Run(Console.Out, models, sentences, batches, reps, !r.GetValue(noPeaks), r.GetValue(outDir), command, load);
                }
                catch (FileNotFoundException e)
                {
                    // The GPU bundle leaves out the ~90 MB model packages (PretrainedPackage).
                    error.WriteLine($"routekit-perf: {e.Message}");
                    return 2;
                }
            });
        });

        var smoke = new Option<bool>("--smoke") { Description = "Tiny shapes, two repeats: proves the build validates and runs (the simulator's default)." };
        var all = new Command("all", "The standard grid on one backend: validate every point, time it, write one markdown table and a CSV.")
        {
            backend, smoke, outDir, allowBusy,
        };
        all.SetAction(r => Gate(r, load => WithDevice(r.GetValue(backend)!, error, device => StandardGrid.Run(device, r.GetValue(smoke), r.GetValue(outDir), command, load))));

        var bdn = new Command("bdn", "BenchmarkDotNet suites of the Managed ops (attention, feature norms, scan), with GFLOP/s and GB/s columns.");
        var bdnArgs = new Argument<string[]>("args") { Description = "Arguments passed to BenchmarkDotNet (e.g. --filter *Attention*).", Arity = ArgumentArity.ZeroOrMore };
        bdn.Add(bdnArgs);
        bdn.Add(allowBusy);
        bdn.SetAction(r => Gate(r, load => Bdn.ManagedSuites.Run(r.GetValue(bdnArgs) ?? [], load)));

        var root = new RootCommand("routekit-perf: validate-then-time benchmarks of RouteKit's kernels.")
        {
            list, attention, attentionManaged, depth, featureNorms, conv1d, gemm, graph, trainingOps, train, scan, scanDevice, onnx, pretrained, all, bdn,
        };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) error.WriteLine($"routekit-perf: {e.Message}");
            return 2;
        }
        return parsed.Invoke();
    }

    private static int WithDevice(string backendName, TextWriter error, Func<Device, int> run)
    {
        Device device;
        try
        {
            device = Device.Create(Device.ParseBackend(backendName));
        }
        catch (InvalidOperationException e)
        {
            error.WriteLine($"routekit-perf: {e.Message}");
            return 2;
        }
        using (device) return run(device);
    }

    private static int List(TextWriter output)
    {
        output.WriteLine("attention (routekit-perf attention --variant N --backend cuda|opencl|ilgpu-cpu times forward N with backward N; Managed is one fused implementation):");
        for (var i = 0; i < Kernels.Attention.AttentionForward.Variants.Count; i++)
            output.WriteLine($"  forward  {i + 1}. {Kernels.Attention.AttentionForward.Variants[i].Name}: {Kernels.Attention.AttentionForward.Variants[i].Idea}");
        for (var i = 0; i < Kernels.Attention.AttentionBackward.Variants.Count; i++)
            output.WriteLine($"  backward {i + 1}. {Kernels.Attention.AttentionBackward.Variants[i].Name}: {Kernels.Attention.AttentionBackward.Variants[i].Idea}");
        output.WriteLine("  managed  1. AttentionManaged: fused SIMD forward/backward, Parallel.For over (batch, head, row block)");
        output.WriteLine("graph (routekit-perf graph; GPU kernels validated in tests, not yet timed):");
        for (var i = 0; i < Kernels.Graph.GraphAttentionForward.Variants.Count; i++)
            output.WriteLine($"  forward  {i + 1}. {Kernels.Graph.GraphAttentionForward.Variants[i].Name}: {Kernels.Graph.GraphAttentionForward.Variants[i].Idea}");
        for (var i = 0; i < Kernels.Graph.GraphAttentionBackward.Variants.Count; i++)
            output.WriteLine($"  backward {i + 1}. {Kernels.Graph.GraphAttentionBackward.Variants[i].Name}: {Kernels.Graph.GraphAttentionBackward.Variants[i].Idea}");
        output.WriteLine("  managed  1. GraphAttentionManaged: Vector<float> over D, work items of ~2048 edges, hubs split into chunks merged in order");
        output.WriteLine("depth (routekit-perf depth; Managed timed, the ILGPU kernels validated by the tests until a GPU is lent):");
        output.WriteLine($"  forward  1. {Kernels.Depth.DepthForward.Variants[0].Name}: {Kernels.Depth.DepthForward.Variants[0].Idea}");
        output.WriteLine($"  backward 1. {Kernels.Depth.DepthBackward.Variants[0].Name}: {Kernels.Depth.DepthBackward.Variants[0].Idea}");
        output.WriteLine("  managed  1. DepthRouterManaged: one thread per (token, head) column, Vector<float> over D, ManagedParallel over column blocks");
        output.WriteLine("featurenorms (routekit-perf featurenorms):");
        output.WriteLine("  managed  1. FeatureNormsManaged: one pass per row, L1, L2, L0, max and NaN count together, Vector SIMD");
        output.WriteLine("  ilgpu    1. FeatureNormsKernels.Forward: one group per row, group reduction");
        output.WriteLine("conv1d (routekit-perf conv1d):");
        output.WriteLine($"  managed  1. Conv1dManaged: Vector{Conv1dManaged.VectorBits} across channels, K taps in one register, Parallel.For over time-row blocks; dweight/dbias over channel blocks in t order");
        output.WriteLine("  ilgpu    1. Conv1dKernels: one thread per output element (y, dx, dweight, dbias), sums in a fixed order");
        output.WriteLine("gemm (routekit-perf gemm), the engine of Linear:");
        output.WriteLine($"  managed  1. Sgemm: packed panels, {Sgemm.MR} x {Sgemm.NR}-vector register block at Vector{Sgemm.VectorBits}, K blocks of {Sgemm.KC}, tiles over the thread pool");
        output.WriteLine("  ilgpu    1. LinearKernels.Sgemm: 64 x 64 tile per 16 x 16 group, 4 x 4 registers per thread, K steps of 16 in shared memory");
        output.WriteLine("train (routekit-perf train [--backend B]): whole training steps per mixer, MFU vs the FMA peak");
        output.WriteLine("  every    1. ByteLanguageModel + Trainer over the ops above (engine/Models, engine/Training)");
        output.WriteLine("training ops (routekit-perf training-ops [--backend B]), GB/s vs the memory bandwidth:");
        output.WriteLine("  LayerNorm, RmsNorm, Gelu (tanh), Silu, Relu forward and backward; CrossEntropy (fused); Embedding forward and backward; AdamW step; GradientClip");
        output.WriteLine("pretrained (routekit-perf pretrained [--model minilm|arctic-xs] [--batch 1,32]): sentences/s vs ONNX Runtime on the same .onnx");
        output.WriteLine("  managed  1. BertEncoder (engine/Pretrained): Embedding, LayerNorm, Linear, Permute, Attention with key lengths, GELU");
        output.WriteLine("scan (routekit-perf scan [--backend B]):");
        output.WriteLine("  managed  1. SelectiveScanManaged: Vector256 across 8 channels via tile transposes, chunk states saved for the backward");
        output.WriteLine("  ilgpu    1. the kernels below (warp-shuffle scans):");
        foreach (var k in KernelCatalog.Scan()) output.WriteLine($"           {k.Name}");
        output.WriteLine("every GPU kernel instantiation the dispatchers can launch on Cuda (KernelCatalog):");
        foreach (var k in KernelCatalog.ForCuda()) output.WriteLine($"  {k.Name}");
        return 0;
    }

    private static int RunAttention(Device device, AttentionShape s, int variant, int repeats, string? outDir, string command, LoadCheck load)
    {
        if (device.Backend == Backend.Managed && variant != 1)
        {
            Console.Error.WriteLine($"routekit-perf: the Managed backend has one fused attention implementation (variant 1); got --variant {variant}.");
            return 2;
        }
        var report = new StringBuilder();
        Bench.Progress($"peaks of {device}");
        var peak = DevicePeak.Measure(device, quick: device.Backend == Backend.IlgpuCpu);
        var result = AttentionBenchmark.Run(device, s, variant, repeats, peak, Console.Out);
        if (result is null)
        {
            Console.Error.WriteLine("validation failed: not timing a wrong kernel.");
            return 1;
        }
        report.Append(Bench.ReportHeader($"attention variant {variant} on {device}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC", load, command));
        report.AppendLine($"- peak: {peak.How}");
        report.AppendLine($"- {result.Validation}").AppendLine();
        report.AppendLine(AttentionBenchmark.TableHeader).AppendLine(AttentionBenchmark.TableRow(result));
        Console.Out.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, "attention.md"), report.ToString());
            File.WriteAllText(Path.Combine(outDir, "attention.csv"), AttentionBenchmark.CsvHeader + "\n" + AttentionBenchmark.CsvRow(result, load) + "\n");
        }
        return 0;
    }
}
