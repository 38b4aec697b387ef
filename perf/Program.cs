using RouteKit.Perf.FeatureNorms;

namespace RouteKit.Perf;

internal static class Program
{
    private static int Main(string[] args) => args.FirstOrDefault() switch
    {
        "featurenorms" => FeatureNormsBenchmark.Run(Console.Out, args.Contains("--quick")),
        _ => Usage(),
    };

    private static int Usage()
    {
        Console.Error.WriteLine("usage: routekit-perf featurenorms [--quick]");
        return 2;
    }
}
