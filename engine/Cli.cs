namespace RouteKit.Engine;

internal static class Cli
{
    public static int Run(string[] args) => 0;
}
