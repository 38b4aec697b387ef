// The committed samples of engine/Data/samples/ (README.md there says what they are and how they were made), embedded in
// this assembly by RouteKit.Engine.csproj under the names RouteKit.Engine.Data.samples.<file name>.
using System.Reflection;

namespace RouteKit.Engine.Data;

/// <summary>Opens the data samples embedded in RouteKit.Engine.dll.</summary>
public static class Samples
{
    /// <summary>Prefix of the samples' resource names.</summary>
    public const string ResourcePrefix = "RouteKit.Engine.Data.samples.";

    /// <summary>The file names of the embedded samples (as in engine/Data/samples/).</summary>
    public static IReadOnlyList<string> Names =>
        [.. typeof(Samples).Assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..]).Order(StringComparer.Ordinal)];

    /// <summary>Opens the embedded sample <paramref name="fileName"/> (still compressed, as committed).</summary>
    /// <exception cref="FileNotFoundException">No sample of that name is embedded.</exception>
    public static Stream Open(string fileName)
    {
        Assembly assembly = typeof(Samples).Assembly;
        return assembly.GetManifestResourceStream(ResourcePrefix + fileName)
            ?? throw new FileNotFoundException(
                $"no embedded sample '{fileName}' in {assembly.GetName().Name}; embedded: {string.Join(", ", Names)}", fileName);
    }

    /// <summary>Reads an embedded pair of gzip IDX files, images <c>[N, rows, columns]</c> and labels <c>[N]</c>, as a dataset.</summary>
    /// <exception cref="FileNotFoundException">Either sample is not embedded.</exception>
    /// <exception cref="InvalidDataException">Either file is invalid, or they do not match.</exception>
    public static ImageDataset ReadImages(string imagesFile, string labelsFile, string name)
    {
        using var images = Open(imagesFile);
        using var labels = Open(labelsFile);
        return Idx.ToImages(Idx.Read(images, imagesFile), imagesFile, Idx.Read(labels, labelsFile), labelsFile, name);
    }
}
