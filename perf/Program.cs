using RouteKit.Perf.Attention;

namespace RouteKit.Perf;

/// <summary>
/// Entry point. Commands: <c>attention-managed [--quick] [--out DIR]</c> (validate, then time the Managed attention).
/// The full <c>routekit-perf</c> command line replaces this switch later; the commands are classes it can call.
/// </summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "attention-managed")
        {
            var quick = args.Contains("--quick");
            var outIndex = Array.IndexOf(args, "--out");
            var outDir = outIndex >= 0 && outIndex + 1 < args.Length ? args[outIndex + 1] : null;
            return ManagedAttentionBenchmark.Run(quick, outDir, "dotnet run -c Release --project perf -- " + string.Join(' ', args));
        }
        Console.Error.WriteLine("usage: RouteKit.Perf attention-managed [--quick] [--out DIR]");
        return 2;
    }
}
