using System.CommandLine;
using System.CommandLine.Parsing;
using System.Text.RegularExpressions;
using RouteKit.Engine.Experiments;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine;

/// <summary>
/// The <c>routekit</c> command line. Exit codes: 0 every check passed, 1 a check failed, 2 bad usage (one line, nothing ran).
/// </summary>
internal static class Cli
{
    public static int Run(string[] args, TextWriter? output = null)
    {
        var console = output is null ? AnsiConsole.Console : AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output), Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors,
        });
        // Tables written to a file or a pipe keep full rows instead of wrapping at a guessed 80 columns.
        if (output is not null || Console.IsOutputRedirected) console.Profile.Width = 240;
        var interactive = output is null && !Console.IsOutputRedirected && console.Profile.Capabilities.Interactive;

        var backend = new Option<string>("--backend")
        {
            Description = "Backends to run on: all (managed, ilgpu-cpu at small shapes, cuda and opencl when present), auto, cuda, opencl, ilgpu-cpu, managed.",
            DefaultValueFactory = _ => "all",
        };
        backend.AcceptOnlyFromAmong("all", "auto", "cuda", "opencl", "ilgpu-cpu", "managed");
        var outDir = new Option<string>("--out") { Description = "Root folder of the run folders <out>/<experiment>/<run-id>/.", DefaultValueFactory = _ => "results" };
        var seed = new Option<int>("--seed") { Description = "Seed of every random input (0 to 2147483647).", DefaultValueFactory = _ => 1 };
        seed.Validators.Add(r =>
        {
            // Non-numbers are already reported by the parser; this adds the range.
            if (r.Tokens.Count > 0 && int.TryParse(r.Tokens[0].Value, out var value) && value < 0)
                r.AddError($"--seed must be 0 or more, got {value}.");
        });
        var profile = new Option<string>("--profile")
        {
            Description = "Problem sizes: smoke (seconds), small (the reproduce profile: under a minute on 2 cores), full (larger shapes and finer grids: minutes on Managed, meant for a GPU).",
            DefaultValueFactory = _ => "small",
        };
        profile.AcceptOnlyFromAmong("smoke", "small", "full");
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue an interrupted run: alone, the newest run of the experiment with the same experiment, profile, seed and " +
                "backends; with a run id, that run (its options must match). Completed points are skipped, not recomputed.",
            Arity = ArgumentArity.ZeroOrOne,
        };
        Option[] common = [backend, outDir, seed, profile, resume];

        var devices = new Command("devices", "List the devices every backend can see.");
        devices.SetAction(_ =>
        {
            foreach (var line in Device.Describe()) console.WriteLine(line);
            return 0;
        });

        var shard = new Option<string?>("--shard")
        {
            Description = "Run shard i of n of the sweep (its points i, i+n, ...) into its own run folder, e.g. one per GPU of a Slurm job array; `routekit merge` joins the shards.",
        };

        var model = new Option<string>("--model")
        {
            Description = "Which pretrained encoder: minilm (all-MiniLM-L6-v2), arctic-xs (Snowflake arctic-embed-xs), or all.",
            DefaultValueFactory = _ => "all",
        };

        Command Experiment(string name, string description, Func<RunContext, int> body, bool sharded = false)
        {
            var command = new Command(name, description);
            foreach (var o in common) command.Options.Add(o);
            if (sharded) command.Options.Add(shard);
            command.SetAction(r =>
            {
                var resumeValue = r.GetResult(resume) is null ? null : r.GetValue(resume) ?? "";
                List<Device> opened = [];
                try
                {
                    if (name == Reproduce.Name && resumeValue is { Length: > 0 })
                        throw new UsageException("reproduce --resume takes no run id: each experiment resumes its newest run with the same options.");
                    var root = r.GetValue(outDir)!;
                    if (File.Exists(root)) throw new UsageException($"--out {root}: that is a file, not a folder.");
                    var skipped = new List<string>();
                    opened = OpenDevices(r.GetValue(backend)!, skipped);
                    var ctx = new RunContext(console, interactive, root, r.GetValue(seed), Enum.Parse<RunProfile>(r.GetValue(profile)!, ignoreCase: true),
                        resumeValue, opened, "routekit " + string.Join(' ', args))
                    {
                        Shard = sharded && r.GetValue(shard) is { } text ? Shard.Parse(text) : null,
                        Model = r.GetResult(model) is null ? "all" : r.GetValue(model)!,
                    };
                    if (name == Reproduce.Name) OodExperiment.PickDevice(ctx); // refuses an ILGPU-simulator-only reproduce before any work
                    if (name == Reproduce.Name) PretrainedExperiment.CheckAvailable([.. PretrainedExperiment.Models.Values]);
                    if (name == PretrainedExperiment.Name) PretrainedExperiment.CheckAvailable(PretrainedExperiment.ParseModels(ctx.Model));
                    foreach (var experiment in name == Reproduce.Name ? [IdentityExperiment.Name, Blindness.Name, RouterSweeps.SignatureName, RouterSweeps.BrakeName, GraphExperiment.Name, DepthExperiment.Name, OodExperiment.Name, PretrainedExperiment.Name] : new[] { name })
                        RunFolder.FindResume(root, experiment, ctx.Options(experiment), resumeValue);
                    foreach (var line in skipped) console.WriteLine(line);
                    return body(ctx);
                }
                catch (UsageException e)
                {
                    console.WriteLine($"routekit: {e.Message}");
                    return 2;
                }
                finally
                {
                    foreach (var d in opened) d.Dispose();
                }
            });
            return command;
        }

        var identity = Experiment(IdentityExperiment.Name,
            "Check the reframing identity (Dot vs Distance vs Boltzmann, forward and gradients) against the float64 reference.",
            ctx => IdentityExperiment.Run(ctx).Failed == 0 ? 0 : 1);
        var blindness = Experiment(Blindness.Name,
            "Key-magnitude blindness: TV distance between Dot and Distance attention rows as key norms spread (log-normal sigma).",
            ctx => Blindness.Run(ctx).Failed == 0 ? 0 : 1);
        var ood = Experiment(OodExperiment.Name,
            "OOD detection with the feature norm and NAN (ICCV 2023): an MLP on Fashion-MNIST vs MNIST, flips, inversion, jigsaw and noise.",
            ctx => OodExperiment.Run(ctx).Passed ? 0 : 1);
        var reproduce = Experiment(Reproduce.Name,
            "Run every experiment (identity, blindness, a small training run per mixer, signature, brake, ood) and write <out>/reproduce/<run-id>/report.md.",
            ctx => Reproduce.Run(ctx).Passed ? 0 : 1);

        var signature = Experiment(RouterSweeps.SignatureName,
            "Paper A's collapse signature: train the byte LM with every router (attention dot/distance/normalised keys, Mamba, RG-LRU) over seeds, " +
            "with the content-free ablation; concentration, collapse and onset per router and layer, with verdicts.",
            ctx => RouterSweeps.Run(ctx, RouterSweeps.SignatureName).Missing == 0 ? 0 : 1, sharded: true);
        var brakeSweep = Experiment(RouterSweeps.BrakeName,
            "Paper A's brake sweep: onset of concentration against each router's positional brake (ALiBi factor, Mamba decay scale, RG-LRU c).",
            ctx => RouterSweeps.Run(ctx, RouterSweeps.BrakeName).Missing == 0 ? 0 : 1, sharded: true);
        var graph = Experiment(GraphExperiment.Name,
            "Graph attention over a kNN graph of Fashion-MNIST images: node classification; per layer concentration (entropy, max prob, self-mass) and " +
            "over-smoothing (effective rank, residual ratio, mean cosine) for Dot, Distance and normalised keys over the graph brake, with verdicts.",
            ctx =>
            {
                var r = GraphExperiment.Run(ctx);
                return r.Missing == 0 && GraphExperiment.Learned(r) ? 0 : 1;
            }, sharded: true);
        var depth = Experiment(DepthExperiment.Name,
            "Routing over depth: the byte LM with a depth router between blocks (each block reads a routed mix of all earlier outputs); " +
            "concentration over depth (entropy, max prob, embedding mass) and collapse against the depth brake m for Dot, Distance and normalised keys, with verdicts.",
            ctx =>
            {
                var r = DepthExperiment.Run(ctx);
                return r.Missing == 0 && DepthExperiment.Learned(r) ? 0 : 1;
            }, sharded: true);
        var pretrained = Experiment(PretrainedExperiment.Name,
            "Run pretrained sentence encoders (MiniLM-L6, arctic-embed-xs; ONNX files from NuGet) through RouteKit's ops: equality with ONNX Runtime, " +
            "and per layer and head sink mass on [CLS]/[SEP], entropy, max prob, key-norm stratification, Dot vs Distance TV, collapse over depth, with verdicts.",
            ctx => PretrainedExperiment.Run(ctx, PretrainedExperiment.ParseModels(ctx.Model)).Passed ? 0 : 1);
        pretrained.Options.Add(model);
        var merge = MergeCommand(console, outDir, args);
        var readme = ReadmeCommand(console);

        var train = TrainCommand(console, outDir, resume, args);

        var root = new RootCommand("RouteKit: GPU kernels and experiments for content-based routers.") { devices, identity, blindness, ood, reproduce, train, signature, brakeSweep, graph, depth, pretrained, merge, readme };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            // One line: the parser's multi-line messages (lists of allowed values) are folded onto it.
            console.WriteLine($"routekit: {Regex.Replace(string.Join(" ", parsed.Errors.Select(e => e.Message)), @"\s+", " ").Trim()}");
            return 2;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = output ?? Console.Out, EnableDefaultExceptionHandler = false });
    }

    // `routekit merge <dirs...>`: joins the shard folders of one sweep into a new run folder with its report.
    private static Command MergeCommand(IAnsiConsole console, Option<string> outDir, string[] args)
    {
        var dirs = new Argument<string[]>("runs") { Description = "The shard run folders to join (all of one experiment, profile and seed).", Arity = ArgumentArity.OneOrMore };
        var command = new Command("merge", "Join the shard run folders of a signature, brake, graph or depth sweep into one run folder and report.") { dirs, outDir };
        command.SetAction(r =>
        {
            try
            {
                var root = r.GetValue(outDir)!;
                if (File.Exists(root)) throw new UsageException($"--out {root}: that is a file, not a folder.");
                var result = Merge.Run(console, r.GetValue(dirs)!, root, "routekit " + string.Join(' ', args));
                return result.Missing == 0 ? 0 : 1;
            }
            catch (UsageException e)
            {
                console.WriteLine($"routekit: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    // `routekit readme <reproduce run> [--file README.md]`: the README's measured-claims section from a reproduce run.
    private static Command ReadmeCommand(IAnsiConsole console)
    {
        var run = new Argument<string>("run") { Description = "A reproduce run folder (results/reproduce/<run-id>)." };
        var file = new Option<string>("--file") { Description = "The README to update.", DefaultValueFactory = _ => "README.md" };
        var command = new Command("readme", "Replace README.md's \"what the seed papers claim\" block with a reproduce run's section and copy its plots to docs/results/.") { run, file };
        command.SetAction(r =>
        {
            try
            {
                ReadmeSection.Apply(console, r.GetValue(run)!, r.GetValue(file)!);
                return 0;
            }
            catch (UsageException e)
            {
                console.WriteLine($"routekit: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    // `routekit train`: one model on one device (auto: Cuda, then OpenCL, then Managed).
    private static Command TrainCommand(IAnsiConsole console, Option<string> outDir, Option<string?> resume, string[] args)
    {
        Option<T> Opt<T>(string name, string description, T value) => new(name) { Description = description, DefaultValueFactory = _ => value };
        var mixer = Opt("--mixer", "The token mixer: attention, mamba or recurrent (RG-LRU).", "attention");
        mixer.AcceptOnlyFromAmong("attention", "mamba", "recurrent");
        var score = Opt("--score", "Attention scores: dot or distance.", "dot");
        score.AcceptOnlyFromAmong("dot", "distance");
        var normalizeKeys = new Option<bool>("--normalize-keys") { Description = "Normalise attention keys to a common norm." };
        var brake = new Option<float?>("--brake") { Description = "Attention: factor on ALiBi's slopes (default 0, none); recurrent: the RG-LRU constant c (default 8)." };
        var layers = Opt("--layers", "Blocks.", 2);
        var width = Opt("--width", "Model width.", 64);
        var heads = Opt("--heads", "Attention heads.", 4);
        var context = Opt("--context", "Context length in bytes.", 64);
        var steps = Opt("--steps", "Optimizer steps.", 300);
        var batch = Opt("--batch", "Sequences per batch.", 8);
        var lr = Opt("--lr", "Peak learning rate (cosine decay to a tenth, linear warm-up).", 3e-3);
        var warmup = Opt("--warmup", "Warm-up steps.", 20);
        var seed = Opt("--seed", "Seed of the parameters and of the batch sampler.", 1);
        var evalEvery = Opt("--eval-every", "Validation loss and diagnostics every k steps.", 50);
        var checkpointEvery = Opt("--checkpoint-every", "Checkpoint every k steps (and at the end).", 50);
        var data = Opt("--data", "Text: sample (the committed fortunes sample, the default everywhere) or installed (Debian's fortunes package).", "sample");
        data.AcceptOnlyFromAmong("sample", "installed");
        var backend = Opt("--backend", "Device: auto (Cuda, then OpenCL, then Managed), cuda, opencl, ilgpu-cpu, managed.", "auto");
        backend.AcceptOnlyFromAmong("auto", "cuda", "opencl", "ilgpu-cpu", "managed");
        var command = new Command("train", "Train a byte-level language model whose mixer is a RouteKit router on English text; metrics.jsonl, plots, checkpoints.")
        {
            mixer, score, normalizeKeys, brake, layers, width, heads, context, steps, batch, lr, warmup, seed, evalEvery, checkpointEvery, data,
            backend, outDir, resume,
        };
        command.SetAction(r =>
        {
            try
            {
                var kind = Enum.Parse<Models.MixerKind>(r.GetValue(mixer)!, ignoreCase: true);
                var model = new Models.ModelConfig
                {
                    Mixer = kind, Score = r.GetValue(score) == "distance" ? Score.Distance : Score.Dot, NormalizeKeys = r.GetValue(normalizeKeys),
                    Brake = r.GetValue(brake) ?? (kind == Models.MixerKind.Recurrent ? 8f : 0f),
                    Layers = r.GetValue(layers), Width = r.GetValue(width), Heads = r.GetValue(heads), Context = r.GetValue(context), Seed = r.GetValue(seed),
                };
                var options = new Training.TrainOptions
                {
                    Steps = r.GetValue(steps), Batch = r.GetValue(batch), LearningRate = r.GetValue(lr), WarmupSteps = r.GetValue(warmup), DataSeed = r.GetValue(seed),
                };
                if (model.Validate() is { } bad) throw new UsageException(bad);
                if (options.Validate() is { } badTrain) throw new UsageException(badTrain);
                if (r.GetValue(evalEvery) < 1) throw new UsageException($"--eval-every {r.GetValue(evalEvery)}: wanted at least 1.");
                if (r.GetValue(checkpointEvery) < 1) throw new UsageException($"--checkpoint-every {r.GetValue(checkpointEvery)}: wanted at least 1.");
                if (r.GetValue(data) == "installed" && !Data.FortuneText.IsInstalled())
                    throw new UsageException($"--data installed: no fortunes under {Data.FortuneText.InstalledDirectory} (apt-get install fortunes); use --data sample.");
                var root = r.GetValue(outDir)!;
                if (File.Exists(root)) throw new UsageException($"--out {root}: that is a file, not a folder.");
                var resumeValue = r.GetResult(resume) is null ? null : r.GetValue(resume) ?? "";
                var settings = new TrainSettings(model, options, r.GetValue(evalEvery), r.GetValue(checkpointEvery), r.GetValue(data)!);
                RunFolder.FindResume(root, TrainExperiment.Name, settings.ToJson(), resumeValue);
                Device device;
                try
                {
                    device = Device.Create(Device.ParseBackend(r.GetValue(backend)!));
                }
                catch (InvalidOperationException e)
                {
                    throw new UsageException($"--backend {r.GetValue(backend)}: {e.Message}");
                }
                using (device)
                    return TrainExperiment.Run(console, device, settings, root, resumeValue, "routekit " + string.Join(' ', args)).Passed ? 0 : 1;
            }
            catch (UsageException e)
            {
                console.WriteLine($"routekit: {e.Message}");
                return 2;
            }
        });
        return command;
    }

    // Opens every device the run needs before any work, so a missing GPU is a usage error (exit 2), not a crash mid-run.
    private static List<Device> OpenDevices(string backend, List<string> skipped)
    {
        if (backend != "all")
        {
            try
            {
                return [Device.Create(Device.ParseBackend(backend))];
            }
            catch (InvalidOperationException e)
            {
                throw new UsageException($"--backend {backend}: {e.Message}");
            }
        }
        var devices = new List<Device> { Device.Create(Backend.Managed), Device.Create(Backend.IlgpuCpu) };
        foreach (var gpu in new[] { Backend.Cuda, Backend.OpenCL })
        {
            try
            {
                devices.Add(Device.Create(gpu));
            }
            catch (InvalidOperationException)
            {
                skipped.Add($"{RunContext.BackendName(gpu)}: not available here, skipped (see `routekit devices`).");
            }
        }
        return devices;
    }
}
