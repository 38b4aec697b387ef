// English text for byte-level language models: the fortune cookies of Debian's "fortunes" package (fortune-mod, BSD).
//
// Source: every fortune file at the top of /usr/share/games/fortunes when installed (the files without a .dat or .u8
// suffix, in ordinal name order; subfolders such as off/, the offensive set, are never read), else the embedded sample
// (32 of the package's 43 files, engine/Data/samples/README.md).
//
// Documents: a file is split at lines holding only "%"; CRLF becomes LF, trailing whitespace is dropped, empty
// documents are skipped, leading indentation is kept (attributions are indented with tabs). Files are read as UTF-8
// (all 43 of fortunes 1:1.99.1-7.3 are valid UTF-8; an invalid byte would become U+FFFD).
//
// Split: a document is validation when a 64-bit hash of its UTF-8 bytes is 0 mod 10 (about 10%), otherwise train. The
// decision depends on the text alone, never on file order or position, and identical documents (a few quotes appear in
// more than one file) always fall on the same side, so no validation document is also a train document.
//
// Bytes: vocabulary 256 (UTF-8 bytes); each document is followed by one 0x1E byte (ASCII record separator), which the
// text never contains, so a model sees where documents end and the separator count equals the document count.
using System.Text;

namespace RouteKit.Engine.Data;

/// <summary>Fortune-cookie text as UTF-8 bytes, split into train and validation by a hash of each document.</summary>
public sealed class FortuneText
{
    /// <summary>Where Debian's <c>fortunes</c> and <c>fortunes-min</c> packages put the fortune files.</summary>
    public const string InstalledDirectory = "/usr/share/games/fortunes";

    /// <summary>The byte that ends every document in <see cref="Train"/> and <see cref="Validation"/> (ASCII record separator).</summary>
    public const byte DocumentSeparator = 0x1E;

    /// <summary>Vocabulary size of the byte streams.</summary>
    public const int Vocabulary = 256;

    /// <summary>A document is validation when its hash is 0 modulo this (so about 1 in 10).</summary>
    public const int ValidationModulus = 10;

    private const string SampleName = "fortunes.txt.gz";

    private FortuneText(string source, byte[] train, byte[] validation, int trainDocuments, int validationDocuments)
    {
        Source = source;
        Train = train;
        Validation = validation;
        TrainDocuments = trainDocuments;
        ValidationDocuments = validationDocuments;
        UnigramEntropyBits = UnigramEntropy(train);
    }

    /// <summary>Where the text came from: the directory and file count, or the embedded sample.</summary>
    public string Source { get; }

    /// <summary>Train documents as UTF-8, each followed by <see cref="DocumentSeparator"/>.</summary>
    public byte[] Train { get; }

    /// <summary>Validation documents as UTF-8, each followed by <see cref="DocumentSeparator"/>.</summary>
    public byte[] Validation { get; }

    /// <summary>Number of documents in <see cref="Train"/>.</summary>
    public int TrainDocuments { get; }

    /// <summary>Number of documents in <see cref="Validation"/>.</summary>
    public int ValidationDocuments { get; }

    /// <summary>Entropy of the byte frequencies of <see cref="Train"/> in bits: the loss of the best model that ignores context.</summary>
    public double UnigramEntropyBits { get; }

    /// <summary><see cref="UnigramEntropyBits"/> in nats (the unit of a cross-entropy loss computed with natural logs).</summary>
    public double UnigramEntropyNats => UnigramEntropyBits * Math.Log(2);

    /// <summary>True when <paramref name="directory"/> holds at least one fortune file.</summary>
    public static bool IsInstalled(string directory = InstalledDirectory) => Directory.Exists(directory) && FortuneFiles(directory).Count > 0;

    /// <summary>The installed fortunes when present, else the embedded sample; <see cref="Source"/> says which.</summary>
    public static FortuneText Load() => IsInstalled() ? LoadInstalled() : LoadSample();

    /// <summary>Reads every fortune file at the top of <paramref name="directory"/> (not its subfolders), in ordinal name order.</summary>
    /// <exception cref="DirectoryNotFoundException">The directory does not exist.</exception>
    /// <exception cref="FileNotFoundException">It holds no fortune file.</exception>
    public static FortuneText LoadInstalled(string directory = InstalledDirectory)
    {
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"no fortune directory {directory} (apt-get install fortunes fortunes-min)");
        var files = FortuneFiles(directory);
        if (files.Count == 0)
            throw new FileNotFoundException($"{directory} holds no fortune files (files without a .dat or .u8 suffix)");
        var documents = files.SelectMany(f => SplitDocuments(File.ReadAllText(f, Encoding.UTF8)));
        return FromDocuments(documents, $"{directory} ({files.Count} files)");
    }

    /// <summary>Reads the embedded sample (engine/Data/samples/fortunes.txt.gz), whatever is installed.</summary>
    public static FortuneText LoadSample() => FromDocuments(SampleDocuments(), $"embedded sample {SampleName}");

    /// <summary>The embedded sample's documents, in file order (<see cref="SplitDocuments"/>).</summary>
    public static IReadOnlyList<string> SampleDocuments()
    {
        using var compressed = Samples.Open(SampleName);
        using var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionMode.Decompress);
        using var reader = new StreamReader(gzip, Encoding.UTF8);
        return SplitDocuments(reader.ReadToEnd());
    }

    /// <summary>Splits <paramref name="documents"/> into train and validation by <see cref="IsValidation(string)"/>, keeping their order within each part.</summary>
    /// <exception cref="ArgumentException">A document contains the separator character U+001E.</exception>
    public static FortuneText FromDocuments(IEnumerable<string> documents, string source)
    {
        ArgumentNullException.ThrowIfNull(documents);
        using var train = new MemoryStream();
        using var validation = new MemoryStream();
        int trainCount = 0, validationCount = 0;
        foreach (string document in documents)
        {
            if (document.Contains((char)DocumentSeparator))
                throw new ArgumentException($"a document contains the separator U+001E: \"{document[..Math.Min(40, document.Length)]}...\"", nameof(documents));
            byte[] bytes = Encoding.UTF8.GetBytes(document);
            bool isValidation = IsValidation(bytes);
            var target = isValidation ? validation : train;
            target.Write(bytes);
            target.WriteByte(DocumentSeparator);
            if (isValidation)
                validationCount++;
            else
                trainCount++;
        }
        return new FortuneText(source, train.ToArray(), validation.ToArray(), trainCount, validationCount);
    }

    /// <summary>
    /// Splits the text of a fortune file at lines holding only "%" (CRLF or LF). Each document keeps its lines joined by
    /// LF, without trailing whitespace; empty documents are dropped.
    /// </summary>
    public static IReadOnlyList<string> SplitDocuments(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var documents = new List<string>();
        var current = new StringBuilder();
        foreach (string rawLine in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (rawLine == "%")
            {
                Flush();
                continue;
            }
            current.Append(rawLine).Append('\n');
        }
        Flush();
        return documents;

        void Flush()
        {
            string document = current.ToString().TrimEnd();
            if (document.Length > 0)
                documents.Add(document);
            current.Clear();
        }
    }

    /// <summary>True when the document with these UTF-8 bytes belongs to validation: its 64-bit hash is 0 mod <see cref="ValidationModulus"/>.</summary>
    public static bool IsValidation(ReadOnlySpan<byte> utf8Document) => Hash(utf8Document) % ValidationModulus == 0;

    /// <summary>True when <paramref name="document"/> belongs to validation (see <see cref="IsValidation(ReadOnlySpan{byte})"/>).</summary>
    public static bool IsValidation(string document) => IsValidation(Encoding.UTF8.GetBytes(document));

    /// <summary>Entropy in bits of the byte frequencies of <paramref name="bytes"/>: -sum_b p_b log2 p_b (0 for an empty span).</summary>
    public static double UnigramEntropy(ReadOnlySpan<byte> bytes)
    {
        Span<long> counts = stackalloc long[Vocabulary];
        counts.Clear();
        foreach (byte b in bytes)
            counts[b]++;
        double entropy = 0;
        foreach (long count in counts)
        {
            if (count == 0)
                continue;
            double p = (double)count / bytes.Length;
            entropy -= p * Math.Log2(p);
        }
        return entropy;
    }

    private static List<string> FortuneFiles(string directory) =>
        [.. new DirectoryInfo(directory).EnumerateFiles()
            .Where(f => f.LinkTarget is null && !f.Name.EndsWith(".dat", StringComparison.Ordinal) && !f.Name.EndsWith(".u8", StringComparison.Ordinal))
            .Select(f => f.FullName).Order(StringComparer.Ordinal)];

    // FNV-1a 64, then the SplitMix64 finaliser so that the low digits the modulus reads are well mixed. Fixed forever:
    // changing it moves documents between train and validation.
    private static ulong Hash(ReadOnlySpan<byte> bytes)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in bytes)
            h = (h ^ b) * 1099511628211UL;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
        return h ^ (h >> 31);
    }
}
