using System.Text.Json.Nodes;
using Spectre.Console;

namespace RouteKit.Engine.Runs;

/// <summary>Problem sizes: smoke (seconds, for tests), small (the reproduce profile, minutes on 2 cores), full.</summary>
internal enum RunProfile
{
    /// <summary>Tiny grids: every code path, seconds.</summary>
    Smoke,

    /// <summary>The reproduce profile: well under 10 minutes on 2 cores with Managed.</summary>
    Small,

    /// <summary>Larger shapes and finer grids, for a GPU or a night.</summary>
    Full,
}

/// <summary>What every experiment command receives once the command line has been parsed and validated.</summary>
internal sealed record RunContext(
    IAnsiConsole Console, bool Interactive, string OutRoot, int Seed, RunProfile Profile, string? Resume, IReadOnlyList<Device> Devices, string CommandLine)
{
    /// <summary>The shard of a sharded sweep (`--shard i/n`); null for a whole run.</summary>
    public Experiments.Shard? Shard { get; init; }

    /// <summary>`routekit pretrained --model`: minilm, arctic-xs or all.</summary>
    public string Model { get; init; } = "all";

    /// <summary>The options a resumed run must share with the run it continues (and that config.json records).</summary>
    public JsonObject Options(string experiment)
    {
        var options = new JsonObject
        {
            ["experiment"] = experiment,
            ["profile"] = Profile.ToString().ToLowerInvariant(),
            ["seed"] = Seed,
            ["backends"] = new JsonArray(Devices.Select(d => (JsonNode)BackendName(d.Backend)).ToArray()),
        };
        if (Shard is { } shard) options["shard"] = shard.ToString();
        if (experiment == Experiments.PretrainedExperiment.Name) options["model"] = Model.Trim().ToLowerInvariant();
        return options;
    }

    /// <summary>The Managed device when the run has one, else its first device: where host-bound work runs.</summary>
    public Device ManagedOrFirst => Devices.FirstOrDefault(d => d.Backend == Backend.Managed) ?? Devices[0];

    /// <summary>Backend and device name of every device this run uses.</summary>
    public JsonArray DeviceList() =>
        new(Devices.Select(d => (JsonNode)new JsonObject { ["backend"] = BackendName(d.Backend), ["name"] = d.Name }).ToArray());

    /// <summary>Opens the run folder of <paramref name="experiment"/>: new, or the one --resume selects.</summary>
    public RunFolder OpenRun(string experiment)
    {
        var options = Options(experiment);
        var resumePath = RunFolder.FindResume(OutRoot, experiment, options, Resume);
        if (Resume is "" && resumePath is null)
            Console.WriteLine($"--resume: no earlier {experiment} run with these options under {Path.Combine(OutRoot, experiment)}; starting a new one.");
        var run = RunFolder.Open(OutRoot, experiment, options, DeviceList(), CommandLine, resumePath);
        Console.WriteLine($"{experiment}: {(run.Resumed ? "resuming" : "writing")} {run.Path}");
        return run;
    }

    /// <summary>The command-line spelling of a backend.</summary>
    public static string BackendName(Backend b) => b switch
    {
        Backend.IlgpuCpu => "ilgpu-cpu",
        _ => b.ToString().ToLowerInvariant(),
    };
}
