using RouteKit.Perf.Attention;
using RouteKit.Perf.FeatureNorms;

namespace RouteKit.Perf;

/// <summary>
/// Entry point of <c>routekit-perf</c>. Every command validates against the float64 reference before it times.
/// The full command line (issue 6) replaces this switch later; the commands are classes it can call.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage: routekit-perf <command> [--quick]
          attention-managed [--quick] [--out DIR]  Managed attention forward/backward, GFLOP/s vs the FMA peak
          featurenorms [--quick]                   Managed feature norms, GB/s vs memory copy
          scan [--quick]                           Managed selective scan vs a single-threaded loop
          scan-device <backend> [--quick]          selective scan on an ILGPU backend (cuda, ilgpu-cpu, ...)
        """;

    private static int Main(string[] args)
    {
        var quick = args.Contains("--quick");
        switch (args.FirstOrDefault())
        {
            case "attention-managed":
                var outIndex = Array.IndexOf(args, "--out");
                var outDir = outIndex >= 0 && outIndex + 1 < args.Length ? args[outIndex + 1] : null;
                return ManagedAttentionBenchmark.Run(quick, outDir, "dotnet run -c Release --project perf -- " + string.Join(' ', args));
            case "featurenorms":
                return FeatureNormsBenchmark.Run(Console.Out, quick);
            case "scan":
                return ScanBenchmark.Run(Console.Out, quick);
            case "scan-device" when args.Length > 1:
                return ScanBenchmark.RunDevice(Console.Out, Device.ParseBackend(args[1]), quick);
            default:
                Console.Error.WriteLine(Usage);
                return 2;
        }
    }
}
