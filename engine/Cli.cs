using System.CommandLine;
using RouteKit.Engine.Experiments;
using Spectre.Console;

namespace RouteKit.Engine;

/// <summary>
/// The <c>routekit</c> command line. Exit codes: 0 every check passed, 1 a check failed, 2 bad usage (nothing ran).
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
        var backend = new Option<string>("--backend")
        {
            Description = "Backend to run on: auto, cuda, opencl, ilgpu-cpu, managed.",
            DefaultValueFactory = _ => "managed",
        };
        backend.AcceptOnlyFromAmong("auto", "cuda", "opencl", "ilgpu-cpu", "managed");
        var small = new Option<bool>("--small") { Description = "Use the small problem grid (seconds, for the simulator)." };

        var devices = new Command("devices", "List the devices every backend can see.");
        devices.SetAction(_ =>
        {
            foreach (var line in Device.Describe()) console.WriteLine(line);
            return 0;
        });

        var identity = new Command("identity", "Check the reframing identity (Dot vs Distance vs Boltzmann) numerically.") { backend, small };
        identity.SetAction(r => RunIdentity(console, Device.ParseBackend(r.GetValue(backend)!), r.GetValue(small)));

        var reproduce = new Command("reproduce", "Run every experiment that exists (now: the identity checks on Managed).");
        reproduce.SetAction(_ => RunIdentity(console, Backend.Managed, small: false));

        var root = new RootCommand("RouteKit: GPU kernels and experiments for content-based routers.") { devices, identity, reproduce };
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) console.WriteLine($"routekit: {e.Message}");
            return 2;
        }
        return parsed.Invoke();
    }

    private static int RunIdentity(IAnsiConsole console, Backend backend, bool small)
    {
        using var device = Device.Create(backend);
        console.WriteLine($"Reframing identity on {device}");
        var rows = IdentityCheck.Run(device, IdentityCheck.Grid(small));
        var table = new Table().AddColumns("check", "problem", "quantity", "max abs error", "threshold", "result");
        foreach (var r in rows)
            table.AddRow(Markup.Escape(r.Check), r.Problem, Markup.Escape(r.Quantity), r.Error.ToString("E2"),
                r.Threshold.ToString("E2"), r.Passed ? "[green]pass[/]" : "[red]FAIL[/]");
        console.Write(table);
        var failed = rows.Count(r => !r.Passed);
        console.WriteLine($"{rows.Count - failed} of {rows.Count} checks passed; thresholds: {string.Join("; ", rows.Select(r => r.Rule).Distinct())}.");
        return failed == 0 ? 0 : 1;
    }
}
