using System.CommandLine;
using System.Text;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Collapse;
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
        // --variant of every non-attention command: checked against the op's versions (KernelVariants) before the load
        // gate, a device or a kernel; exit 2 with the valid range.
        var opVariant = new Option<int>("--variant") { Description = "Kernel version on the chosen backend, from 1 (see `routekit-perf list`).", DefaultValueFactory = _ => 1 };
        int Versioned(ParseResult r, OpVariants op, Backend on, Func<int> run)
        {
            var wrong = KernelVariants.Error(op, on, r.GetValue(opVariant));
            if (wrong is null) return run();
            error.WriteLine(wrong);
            return 2;
        }
        // For the commands whose benchmark files print no version line (after Versioned checked it): say which version
        // this run times.
        int Announced(ParseResult r, OpVariants op, Backend on, Func<int> run)
        {
            var n = r.GetValue(opVariant);
            var v = op.Select(on, n);
            Console.Out.WriteLine($"# {op.Op}: version {n} of {op.For(on).Count} ({op.BackendLabel(on)}): {v.Name}: {v.Idea}");
            return run();
        }

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
            opVariant, quick, outDir, allowBusy,
        };
        depth.SetAction(r => Versioned(r, KernelVariants.Depth, Backend.Managed,
            () => Gate(r, load => Announced(r, KernelVariants.Depth, Backend.Managed, () => DepthBenchmark.Run(r.GetValue(quick), r.GetValue(outDir), command, load)))));

        var featureNorms = new Command("featurenorms", "Feature norms (one version on one backend), GB/s vs the read bandwidth (and the memory copy) measured in the same run.")
        {
            opVariant, backend, quick, outDir, allowBusy,
        };
        featureNorms.SetAction(r =>
        {
            var on = Device.ParseBackend(r.GetValue(backend)!);
            return Versioned(r, KernelVariants.FeatureNorms, on, () => Gate(r, load =>
                FeatureNormsBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command, on, r.GetValue(opVariant))));
        });

        var collapse = new Command("collapse",
            "Collapse reductions (Gram, column sums, unit column sums, row deviations; one version on one backend): validated with the measures against the float64 Reference, then GB/s vs the read bandwidth measured in the same run (and GFLOP/s for the Gram).")
        {
            opVariant, backend, quick, outDir, allowBusy,
        };
        collapse.SetAction(r =>
        {
            var on = Device.ParseBackend(r.GetValue(backend)!);
            return Versioned(r, KernelVariants.Collapse, on, () => Gate(r, load =>
                CollapseBenchmark.Run(Console.Out, on, r.GetValue(opVariant), r.GetValue(quick), load, r.GetValue(outDir), command)));
        });

        var conv1d = new Command("conv1d", "Managed causal depthwise Conv1d forward and backward, GB/s vs the read bandwidth (and the memory copy) measured in the same run.")
        {
            opVariant, quick, outDir, allowBusy,
        };
        conv1d.SetAction(r => Versioned(r, KernelVariants.Conv1d, Backend.Managed,
            () => Gate(r, load => Announced(r, KernelVariants.Conv1d, Backend.Managed, () => Conv1dBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command)))));

        var gemm = new Command("gemm", "Managed SGEMM (Linear's engine) and ONNX Runtime's MatMul at 512^3, 1024^3, 2048^3: GFLOP/s vs the FMA peak measured in the same run, and Managed / ORT.")
        {
            opVariant, quick, repeats, outDir, allowBusy,
        };
        gemm.SetAction(r => Versioned(r, KernelVariants.Gemm, Backend.Managed,
            () => Gate(r, load => Announced(r, KernelVariants.Gemm, Backend.Managed, () => GemmBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command)))));

        var denseN = new Option<int>("--dense-n")
        {
            Description = "Queries and keys of the dense-attention comparison, scaled by Nn^2 / N^2 when below Nn (default min(Nn, 8192); 2048 with --quick).",
        };
        var graph = new Command("graph",
            "Managed GraphAttention forward and backward on a Chung-Lu power-law graph of 10^6 edges: edges/s, GFLOP/s vs the FMA peak measured in the same run, and dense Managed attention on the same nodes timed in the same run (time and edges/s vs N^2 pairs/s).")
        {
            opVariant, quick, repeats, denseN, outDir, allowBusy,
        };
        graph.SetAction(r => Versioned(r, KernelVariants.Graph, Backend.Managed, () => Gate(r, load => Announced(r, KernelVariants.Graph, Backend.Managed,
            () => GraphBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command, r.GetValue(denseN))))));

        var trainingOps = new Command("training-ops",
            "LayerNorm, RmsNorm, Gelu, Silu, Relu, CrossEntropy, Embedding, AdamW, GradientClip forward and backward: GB/s vs the memory bandwidth measured in the same run.")
        {
            opVariant, backend, quick, repeats, outDir, allowBusy,
        };
        trainingOps.SetAction(r =>
        {
            var on = Device.ParseBackend(r.GetValue(backend)!);
            return Versioned(r, KernelVariants.TrainingOps, on, () => Gate(r, load => WithDevice(r.GetValue(backend)!, error, device => Announced(r, KernelVariants.TrainingOps, on,
                () => TrainingOpsBenchmark.Run(Console.Out, device, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command)))));
        });

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

        var child = new Option<string?>("--child") { Description = "Internal: run as the child process of this restriction and print one result line.", Hidden = true };
        var widths = new Command("widths",
            "Managed attention and selective scan at each SIMD width, one child process per width (DOTNET_EnableAVX512=0, then also DOTNET_EnableAVX2=0): GFLOP/s, % of each child's FMA peak, ratio to the widest.")
        {
            quick, repeats, outDir, allowBusy, child,
        };
        widths.SetAction(r => r.GetValue(child) is { } restriction
            ? Widths.WidthsBenchmark.Child(Console.Out, restriction, r.GetValue(quick), r.GetValue(repeats))
            : Gate(r, load => Widths.WidthsBenchmark.Run(Console.Out, r.GetValue(quick), r.GetValue(repeats), load, r.GetValue(outDir), command)));

        var scanBackend = new Option<string>("--backend") { Description = "managed (vs a sequential loop) or an ILGPU backend.", DefaultValueFactory = _ => "managed" };
        scanBackend.AcceptOnlyFromAmong("managed", "ilgpu-cpu", "cuda", "opencl");
        var scanOp = new Option<string>("--op") { Description = "selective (Mamba's selective scan) or linear (the linear recurrence h_t = a_t h_{t-1} + x_t).", DefaultValueFactory = _ => "selective" };
        scanOp.AcceptOnlyFromAmong("selective", "linear");
        var scan = new Command("scan", "Selective scan or linear recurrence (--op): validate one version against the float64 Reference, then time.")
        {
            scanOp, opVariant, quick, scanBackend, outDir, allowBusy,
        };
        scan.SetAction(r =>
        {
            var on = Device.ParseBackend(r.GetValue(scanBackend)!);
            var n = r.GetValue(opVariant);
            if (r.GetValue(scanOp) == "linear")
                return Versioned(r, KernelVariants.LinearRecurrence, on, () => Gate(r, load =>
                    LinearRecurrenceBenchmark.Run(Console.Out, on, n, r.GetValue(quick), load, r.GetValue(outDir), command)));
            return Versioned(r, KernelVariants.Scan, on, () => Gate(r, load => on == Backend.Managed
                ? ScanBenchmark.Run(Console.Out, r.GetValue(quick), load, r.GetValue(outDir), command, n)
                : ScanBenchmark.RunDevice(Console.Out, on, r.GetValue(quick), load, n)));
        });

        var deviceName = new Argument<string>("backend") { Description = "cuda, opencl or ilgpu-cpu." };
        var scanDevice = new Command("scan-device", "Alias of `scan --backend B`.") { deviceName, opVariant, quick, allowBusy };
        scanDevice.SetAction(r =>
        {
            var on = Device.ParseBackend(r.GetValue(deviceName)!);
            return Versioned(r, KernelVariants.Scan, on, () => Gate(r, load => ScanBenchmark.RunDevice(Console.Out, on, r.GetValue(quick), load, r.GetValue(opVariant))));
        });

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
            list, attention, attentionManaged, depth, featureNorms, collapse, conv1d, gemm, graph, trainingOps, train, scan, scanDevice, onnx, pretrained, widths, all, bdn,
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
        KernelVariants.Print(output);
        output.WriteLine("train (routekit-perf train [--backend B]): whole training steps per mixer, MFU vs the FMA peak");
        output.WriteLine("  every    1. ByteLanguageModel + Trainer over the ops above (engine/Models, engine/Training)");
        output.WriteLine("pretrained (routekit-perf pretrained [--model minilm|arctic-xs] [--batch 1,32]): sentences/s vs ONNX Runtime on the same .onnx");
        output.WriteLine("  managed  1. BertEncoder (engine/Pretrained): Embedding, LayerNorm, Linear, Permute, Attention with key lengths, GELU");
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
