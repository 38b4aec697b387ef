using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;
using NUnit.Framework;

namespace RouteKit.Tests.Packaging;

/// <summary>
/// Issue 15: RouteKit installs the .NET way (README "Install"). Packs the library (`RouteKit`, kernels inside) and the two
/// tools (`RouteKit.Engine` = `routekit`, `RouteKit.Perf` = `routekit-perf`) from the projects `dotnet test` has just
/// built (`dotnet pack Engine.sln --no-build`) into a temporary folder, under a version unique to this run, then installs
/// each tool into a temporary tool path outside the repository and runs it there, and builds a throwaway console
/// project that references the library package and runs one attention forward on the Managed backend (that project
/// builds in the background while the tools install and run: the console test runs last and waits for it).
/// A private packages folder (with the machine's NuGet cache as a read-only fallback folder) and the unique version keep
/// a RouteKit of the same version cached earlier from masking what was just packed, and leave the cache untouched.
/// Measured 2026-12-02 on the shared 2-core machine (`--filter Category=Packaging`): 30.7 s at load average ~100, 58.6 s
/// at ~30-40, 71.6 s at 40-200; `routekit identity --profile smoke` is the largest part (14-39 s: its IlgpuCpu half runs
/// ILGPU's thread-per-GPU-thread simulator, about 18 s of CPU; `--backend managed` alone takes about 1 s), then the pack
/// (6-16 s). A fully private packages folder without the fallback would download RouteKit's four dependencies (3.3 s here).
/// </summary>
[TestFixture]
[Category("Packaging")]
[NonParallelizable]
public sealed class PackagingTests
{
#if DEBUG
    private const string Configuration = "Debug";
#else
    private const string Configuration = "Release";
#endif

    private string temp = null!;
    private string feed = null!;
    private string version = null!;
    private readonly Stopwatch clock = new();
    private const int B = 1, H = 2, Hkv = 1, N = 3, M = 5, D = 4;
    private readonly float[] q = Data(B * H * N * D, 0.1), k = Data(B * Hkv * M * D, 1.3), v = Data(B * Hkv * M * D, 2.9);
    private string app = null!;
    private Task<Result> appBuild = null!;

    [OneTimeSetUp]
    public void Pack()
    {
        clock.Start();
        temp = Directory.CreateTempSubdirectory("routekit-packaging-").FullName;
        feed = Path.Combine(temp, "feed");
        // SemVer 2 prerelease, unique per run: 0.0.0-packtest.<UTC time>.<pid>.
        version = $"0.0.0-packtest.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";
        // The tools carry only this machine's native libraries (Directory.Build.targets, RouteKitNativeRids): 22 MB instead
        // of 130 MB for routekit, a fifth of the compression and extraction; the assets this machine loads are the same.
        Dotnet(RepositoryRoot(), TimeSpan.FromMinutes(6),
            "pack", "Engine.sln", "--no-build", "-c", Configuration, "-o", feed, $"-p:Version={version}",
            $"-p:RouteKitNativeRids={string.Join("%3B", NativeRids())}");
        foreach (var id in new[] { "RouteKit", "RouteKit.Engine", "RouteKit.Perf" })
            Assert.That(File.Exists(Path.Combine(feed, $"{id}.{version}.nupkg")), Is.True,
                $"{id}.{version}.nupkg not packed; the feed holds: {string.Join(", ", Directory.GetFiles(feed).Select(Path.GetFileName))}");
        Assert.That(Directory.GetFiles(feed, "*.nupkg").Select(Path.GetFileName), Has.None.StartWith("RouteKit.Kernels").And.None.StartWith("RouteKit.Tests"),
            "only the library and the two tools are packable");
        TestContext.Progress.WriteLine($"packaging: packed in {clock.Elapsed.TotalSeconds:F1} s");
        // The console project restores and builds (single-threaded, mostly) while the tools install and run.
        app = WriteConsoleProject();
        appBuild = Task.Run(() => Execute("dotnet", app, TimeSpan.FromMinutes(4), [("NUGET_PACKAGES", Path.Combine(temp, "packages"))],
            ["build", "-c", "Release", "--disable-build-servers", "-p:ImportDirectoryBuildProps=false", "-p:ImportDirectoryBuildTargets=false"]));
    }

    [OneTimeTearDown]
    public void Clean()
    {
        try { appBuild?.Wait(TimeSpan.FromMinutes(5)); } catch (AggregateException) { } // never delete under a running build
        if (temp is not null && Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
        TestContext.Progress.WriteLine($"packaging: {clock.Elapsed.TotalSeconds:F1} s in all");
    }

    [Test]
    public void LibraryPackageCarriesTheKernelsDocsReadmeAndSymbols()
    {
        using var package = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"RouteKit.{version}.nupkg"));
        var entries = package.Entries.Select(e => e.FullName).ToList();
        Assert.That(entries, Is.SupersetOf(new[]
        {
            "lib/net10.0/RouteKit.dll", "lib/net10.0/RouteKit.xml",
            "lib/net10.0/RouteKit.Kernels.dll", "lib/net10.0/RouteKit.Kernels.xml", "README.md",
        }));
        Assert.That(entries, Has.None.EndsWith(".pdb"), "pdbs go to the .snupkg");
        string nuspec;
        using (var reader = new StreamReader(package.GetEntry("RouteKit.nuspec")!.Open())) nuspec = reader.ReadToEnd();
        Assert.That(nuspec, Does.Contain("<readme>README.md</readme>").And.Contain("<description>").And.Contain("<repository type=\"git\""));
        Assert.That(nuspec, Does.Contain("id=\"ILGPU\"").And.Contain("id=\"ILGPU.Algorithms\""), "the kernels' dependencies");
        Assert.That(nuspec, Does.Not.Contain("id=\"RouteKit.Kernels\""), "the kernels ship inside, not as a package of their own");

        using var symbols = System.IO.Compression.ZipFile.OpenRead(Path.Combine(feed, $"RouteKit.{version}.snupkg"));
        Assert.That(symbols.Entries.Select(e => e.FullName), Is.SupersetOf(new[] { "lib/net10.0/RouteKit.pdb", "lib/net10.0/RouteKit.Kernels.pdb" }));
    }

    [Test]
    public void RoutekitToolRunsFromItsToolPathOutsideTheRepository()
    {
        var tools = Path.Combine(temp, "tools-engine");
        var work = Directory.CreateDirectory(Path.Combine(temp, "work-engine")).FullName;
        // --ignore-failed-sources: the local feed is enough, an unreachable nuget.org must not fail the install.
        Dotnet(work, TimeSpan.FromMinutes(3), "tool", "install", "RouteKit.Engine", "--tool-path", tools, "--add-source", feed, "--version", version, "--ignore-failed-sources");
        var routekit = Path.Combine(tools, "routekit");

        var devices = Run(routekit, work, TimeSpan.FromMinutes(1), "devices");
        Assert.That(devices, Does.Contain("managed: Managed").And.Contain("ilgpu-cpu: CPUAccelerator"));

        // The identity check on Managed and on ILGPU's CPU simulator (ILGPU from the tool's folder).
        var identity = Run(routekit, work, TimeSpan.FromMinutes(3), "identity", "--profile", "smoke");
        var passed = Regex.Match(identity, @"(\d+) of (\d+) checks passed");
        Assert.That(passed.Success && passed.Groups[1].Value == passed.Groups[2].Value && int.Parse(passed.Groups[1].Value) > 0, Is.True, identity);
        Assert.That(identity, Does.Contain("│ managed ").And.Contain("│ ilgpu-cpu "));
        Assert.That(Directory.GetFiles(Path.Combine(work, "results", "identity"), "summary.md", SearchOption.AllDirectories), Has.Length.EqualTo(1),
            "the run folder is written under the working directory");

        // A plot: SkiaSharp's native library from the tool's runtimes/ folder.
        var blindness = Run(routekit, work, TimeSpan.FromMinutes(2), "blindness", "--profile", "smoke", "--backend", "managed");
        var png = Directory.GetFiles(Path.Combine(work, "results", "blindness"), "*.png", SearchOption.AllDirectories);
        Assert.That(png, Is.Not.Empty, blindness);
        Assert.That(new FileInfo(png[0]).Length, Is.GreaterThan(1000), blindness);

        // ONNX Runtime (the `pretrained` comparison, tens of seconds) is not run here: its native library for this machine
        // must be in the installed tool where the host looks for it (listed in the deps.json), and load.
        var any = Directory.GetDirectories(Path.Combine(tools, ".store"), "any", SearchOption.AllDirectories).Single();
        var deps = File.ReadAllText(Path.Combine(any, "RouteKit.Engine.deps.json"));
        var library = OperatingSystem.IsWindows() ? "onnxruntime.dll" : OperatingSystem.IsMacOS() ? "libonnxruntime.dylib" : "libonnxruntime.so";
        var relative = NativeRids().Select(rid => $"runtimes/{rid}/native/{library}").FirstOrDefault(r => File.Exists(Path.Combine(any, r)));
        if (relative is null)
        {
            // ONNX Runtime 1.31.1 ships natives for linux-x64, linux-arm64, osx-arm64, win-x64 and win-arm64 only.
            Assert.That(new[] { "linux-x64", "linux-arm64", "osx-arm64", "win-x64", "win-arm64" }, Does.Not.Contain(NativeRids()[1]),
                $"no {library} in the installed tool for {string.Join(", ", NativeRids())}");
            return;
        }
        Assert.That(deps, Does.Contain(relative), "the host finds native assets through the deps.json");
        Assert.That(NativeLibrary.TryLoad(Path.Combine(any, relative), out var handle), Is.True, $"{relative} does not load");
        NativeLibrary.Free(handle);
    }

    [Test]
    [DependsOnTest(nameof(RoutekitToolRunsFromItsToolPathOutsideTheRepository), AllowFailure = true)]
    public void RoutekitPerfToolRunsFromItsToolPath()
    {
        var tools = Path.Combine(temp, "tools-perf");
        var work = Directory.CreateDirectory(Path.Combine(temp, "work-perf")).FullName;
        Dotnet(work, TimeSpan.FromMinutes(3), "tool", "install", "RouteKit.Perf", "--tool-path", tools, "--add-source", feed, "--version", version, "--ignore-failed-sources");
        var list = Run(Path.Combine(tools, "routekit-perf"), work, TimeSpan.FromMinutes(1), "list");
        Assert.That(list, Does.Contain("TiledKernel").And.Contain("QueryKernel+KeyKernel").And.Contain("SelectiveScanForward"));
    }

    [Test]
    [DependsOnTest(nameof(RoutekitPerfToolRunsFromItsToolPath), AllowFailure = true)] // last: its project builds meanwhile
    public void ConsoleProjectReferencingThePackageRunsAttentionOnManaged()
    {
        var build = appBuild.GetAwaiter().GetResult();
        Assert.That(build.Code, Is.Zero, build.Message);
        Assert.That(Directory.Exists(Path.Combine(temp, "packages", "routekit", version)), Is.True,
            "RouteKit restored from the local feed into the private packages folder");
        var text = Run("dotnet", app, TimeSpan.FromMinutes(1), Path.Combine(app, "bin", "Release", "net10.0", "app.dll"));

        var lines = text.Split('\n').Select(l => l.Trim()).ToList();
        Assert.That(lines, Does.Contain("backend Managed"), text);
        float[] Numbers(string prefix) =>
            [.. (lines.SingleOrDefault(l => l.StartsWith(prefix + " ", StringComparison.Ordinal)) ?? throw new AssertionException($"no '{prefix}' line in:\n{text}"))
                [(prefix.Length + 1)..].Split(' ').Select(s => float.Parse(s, CultureInfo.InvariantCulture))];
        var output = Numbers("output");
        var lse = Numbers("lse");

        // The same attention in float64 here: softmax_j(q_i . k_j / sqrt(D)) v_j, the one key/value head shared by both heads.
        Assert.That(output, Has.Length.EqualTo(B * H * N * D), text);
        Assert.That(lse, Has.Length.EqualTo(B * H * N), text);
        var scale = 1 / Math.Sqrt(D);
        for (var h = 0; h < H; h++)
            for (var i = 0; i < N; i++)
            {
                var z = new double[M];
                for (var j = 0; j < M; j++)
                    for (var d = 0; d < D; d++)
                        z[j] += scale * q[(h * N + i) * D + d] * k[j * D + d];
                var max = z.Max();
                var sum = z.Sum(x => Math.Exp(x - max));
                Assert.That(lse[h * N + i], Is.EqualTo(max + Math.Log(sum)).Within(1e-5), $"Lse[{h},{i}]");
                for (var d = 0; d < D; d++)
                {
                    var o = 0.0;
                    for (var j = 0; j < M; j++) o += Math.Exp(z[j] - max) / sum * v[j * D + d];
                    Assert.That(output[(h * N + i) * D + d], Is.EqualTo(o).Within(1e-5), $"O[{h},{i},{d}]");
                }
            }
    }

    private static float[] Data(int count, double phase) => [.. Enumerable.Range(0, count).Select(i => (float)Math.Sin(0.7 * i + phase))];

    /// <summary>
    /// A console project outside the repository (no Directory.Build.* of ours) that references the packed RouteKit: its
    /// nuget.config takes RouteKit from the local feed only (source mapping), the rest from nuget.org; a private packages
    /// folder receives RouteKit, with the machine's NuGet cache as a read-only fallback for its dependencies (no download).
    /// </summary>
    private string WriteConsoleProject()
    {
        static string Literal(float[] a) => string.Join(", ", a.Select(x => x.ToString("R", CultureInfo.InvariantCulture) + "f"));
        var dir = Directory.CreateDirectory(Path.Combine(temp, "app")).FullName;
        File.WriteAllText(Path.Combine(dir, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="local" value="{feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" protocolVersion="3" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="local"><package pattern="RouteKit" /></packageSource>
                <packageSource key="nuget.org"><package pattern="*" /></packageSource>
              </packageSourceMapping>
              <fallbackPackageFolders>
                <add key="machine" value="{MachinePackageRoot()}" />
              </fallbackPackageFolders>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(dir, "app.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="RouteKit" Version="[{version}]" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), $$"""
            using System.Globalization;
            using RouteKit;

            using var device = Device.Create(Backend.Managed);
            using var q = device.FromArray([{{Literal(q)}}], {{B}}, {{H}}, {{N}}, {{D}});
            using var k = device.FromArray([{{Literal(k)}}], {{B}}, {{Hkv}}, {{M}}, {{D}});
            using var v = device.FromArray([{{Literal(v)}}], {{B}}, {{Hkv}}, {{M}}, {{D}});
            using var forward = Attention.Forward(q, k, v, new AttentionOptions());
            Console.WriteLine($"backend {device.Backend}");
            Console.WriteLine("output " + string.Join(" ", forward.Output.ToArray().Select(x => x.ToString("R", CultureInfo.InvariantCulture))));
            Console.WriteLine("lse " + string.Join(" ", forward.Lse.ToArray().Select(x => x.ToString("R", CultureInfo.InvariantCulture))));
            """);
        return dir;
    }

    /// <summary>This machine's RID and the RIDs it falls back to for native assets: e.g. linux-x64, linux-x64, linux, unix-x64, unix.</summary>
    private static string[] NativeRids()
    {
        var os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
        var arch = RuntimeInformation.OSArchitecture.ToString().ToLowerInvariant();
        var rids = new List<string> { RuntimeInformation.RuntimeIdentifier, $"{os}-{arch}", os };
        if (!OperatingSystem.IsWindows()) rids.AddRange([$"unix-{arch}", "unix"]);
        return [.. rids];
    }

    /// <summary>The NuGet packages folder this build restored from (stamped into RouteKit.Engine.dll): a read-only fallback.</summary>
    private static string MachinePackageRoot() =>
        typeof(global::RouteKit.Engine.Data.Samples).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "RouteKitNuGetPackageRoot").Value!.TrimEnd('/', '\\');

    private static string RepositoryRoot()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d is not null && !File.Exists(Path.Combine(d.FullName, "Engine.sln"))) d = d.Parent;
        return d?.FullName ?? throw new DirectoryNotFoundException("Engine.sln not found above the test directory.");
    }

    private static string Dotnet(string directory, TimeSpan limit, params string[] args) => Dotnet(directory, limit, [], args);

    private static string Dotnet(string directory, TimeSpan limit, (string Name, string Value)[] environment, params string[] args) =>
        Run("dotnet", directory, limit, environment, args);

    private static string Run(string file, string directory, TimeSpan limit, params string[] args) => Run(file, directory, limit, [], args);

    private sealed record Result(int Code, string Text, string Message);

    /// <summary>Runs a command to its end; fails the test with its exit code, stdout and stderr unless it exits 0.</summary>
    private static string Run(string file, string directory, TimeSpan limit, (string Name, string Value)[] environment, string[] args)
    {
        var result = Execute(file, directory, limit, environment, args);
        Assert.That(result.Code, Is.Zero, result.Message);
        return result.Text;
    }

    /// <summary>Runs a command to its end (killed after <paramref name="limit"/>, exit code -1): its exit code, its stdout and
    /// stderr, and a message that names the command and holds both. No assertion: safe off the test's thread.</summary>
    private static Result Execute(string file, string directory, TimeSpan limit, (string Name, string Value)[] environment, string[] args)
    {
        var start = new ProcessStartInfo(file)
        {
            WorkingDirectory = directory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in args) start.ArgumentList.Add(a);
        // The MSBuild of the `dotnet test` that runs this test must not leak into the child's own.
        foreach (var name in start.Environment.Keys.Where(k => k.StartsWith("MSBuild", StringComparison.OrdinalIgnoreCase)).ToList())
            start.Environment.Remove(name);
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1";
        start.Environment["DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE"] = "1";
        foreach (var (name, value) in environment) start.Environment[name] = value;
        var command = $"{file} {string.Join(' ', args)} (in {directory})";
        var timer = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start " + command);
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var finished = process.WaitForExit(limit);
        if (!finished) process.Kill(entireProcessTree: true);
        process.WaitForExit();
        TestContext.Progress.WriteLine($"packaging: {timer.Elapsed.TotalSeconds:F1} s  {file} {string.Join(' ', args)}");
        var code = finished ? process.ExitCode : -1;
        var what = finished ? $"exited {code}" : $"ran past {limit} and was killed";
        return new Result(code, stdout.Result + stderr.Result, $"{command} {what}\nstdout:\n{stdout.Result}\nstderr:\n{stderr.Result}");
    }
}
