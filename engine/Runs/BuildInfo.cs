using System.Diagnostics;
using System.Reflection;

namespace RouteKit.Engine.Runs;

/// <summary>The git commit this runner was built from, for config.json.</summary>
internal static class BuildInfo
{
    /// <summary>
    /// The commit stamped in at build time (see RouteKit.Engine.csproj), with "+dirty" when tracked files differed
    /// from it; when the build had no git, <c>git rev-parse HEAD</c> at run time; otherwise "unknown".
    /// </summary>
    public static string GitCommit { get; } = Read();

    private static string Read()
    {
        var meta = typeof(BuildInfo).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value);
        if (meta.TryGetValue("RouteKitGitCommit", out var commit) && commit is { Length: > 0 } && commit != "unknown")
            return meta.TryGetValue("RouteKitGitDirty", out var dirty) && dirty == "true" ? commit + "+dirty" : commit;
        return FromGit() ?? "unknown";
    }

    private static string? FromGit()
    {
        try
        {
            using var git = Process.Start(new ProcessStartInfo("git", "rev-parse HEAD")
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
                WorkingDirectory = AppContext.BaseDirectory,
            });
            if (git is null) return null;
            var text = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return git.ExitCode == 0 && text.Length > 0 ? text : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No git on this machine (the GPU machine has none): the caller records "unknown".
            return null;
        }
    }
}
