using System.Text;
using NUnit.Framework;
using RouteKit.Engine.Data;

namespace RouteKit.Tests.Data;

/// <summary>The fortunes reader: document splitting, the hash split, the byte streams and the unigram entropy.</summary>
public sealed class FortuneTextTests
{
    private static readonly Lazy<FortuneText> Sample = new(FortuneText.LoadSample);

    [Test]
    public void SplitsAtPercentLinesOnly()
    {
        const string text = "%\nfirst line\n\tsecond, indented\n%\r\n\n%\n100% sure\n%%\n % \nlast\n\n";
        var documents = FortuneText.SplitDocuments(text);
        Assert.That(documents, Is.EqualTo(new[] { "first line\n\tsecond, indented", "100% sure\n%%\n % \nlast" }));
    }

    [Test]
    public void SplitDependsOnTheTextNotTheOrder()
    {
        var documents = Enumerable.Range(0, 500).Select(i => $"Document {i}: {new string('x', i % 7)} said the cat.").ToList();
        var forward = FortuneText.FromDocuments(documents, "forward");
        var again = FortuneText.FromDocuments(documents, "again");
        var reversed = FortuneText.FromDocuments(Enumerable.Reverse(documents), "reversed");

        Assert.That(again.Train, Is.EqualTo(forward.Train));
        Assert.That(again.Validation, Is.EqualTo(forward.Validation));
        Assert.That(Documents(reversed.Train).Order(), Is.EqualTo(Documents(forward.Train).Order()));
        Assert.That(Documents(reversed.Validation).Order(), Is.EqualTo(Documents(forward.Validation).Order()));
        Assert.That(forward.TrainDocuments + forward.ValidationDocuments, Is.EqualTo(500));
        Assert.That(forward.ValidationDocuments, Is.InRange(25, 80), "about 10% of 500");
    }

    [Test]
    public void DuplicatesFallOnOneSide()
    {
        var documents = new[] { "To be or not to be.", "Ask not.", "To be or not to be.", "Ask not." };
        var text = FortuneText.FromDocuments(documents, "duplicates");
        Assert.That(Documents(text.Train).Intersect(Documents(text.Validation)), Is.Empty);
        Assert.That(text.TrainDocuments + text.ValidationDocuments, Is.EqualTo(4));
    }

    [Test]
    public void RefusesTheSeparatorInsideADocument()
    {
        var e = Assert.Throws<ArgumentException>(() => FortuneText.FromDocuments(["a\u001Eb"], "bad"));
        Assert.That(e!.Message, Does.Contain("U+001E"));
    }

    [Test]
    public void SampleLoadsWithoutThePackage()
    {
        var text = Sample.Value;
        Assert.That(text.Source, Does.Contain("embedded sample"));
        Assert.That(text.Train.Length, Is.InRange(1_200_000, 1_600_000), "the sample is 1.61 MB of text");
        Assert.That(text.TrainDocuments + text.ValidationDocuments, Is.InRange(7_000, 12_000));
        double fraction = (double)text.ValidationDocuments / (text.TrainDocuments + text.ValidationDocuments);
        Assert.That(fraction, Is.InRange(0.08, 0.12));
        Assert.That(text.Train.Count(b => b == FortuneText.DocumentSeparator), Is.EqualTo(text.TrainDocuments));
        Assert.That(text.Validation.Count(b => b == FortuneText.DocumentSeparator), Is.EqualTo(text.ValidationDocuments));
        Assert.That(text.Train[^1], Is.EqualTo(FortuneText.DocumentSeparator));
        Assert.DoesNotThrow(() => new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(text.Train));
    }

    [Test]
    public void SampleSplitIsDisjointAndStable()
    {
        var text = Sample.Value;
        var train = Documents(text.Train).ToHashSet();
        var validation = Documents(text.Validation).ToList();
        Assert.That(validation.Where(train.Contains), Is.Empty);
        Assert.That(validation.All(FortuneText.IsValidation), Is.True);
        Assert.That(train.Any(FortuneText.IsValidation), Is.False);
        var again = FortuneText.LoadSample();
        Assert.That(again.Validation.AsSpan().SequenceEqual(text.Validation), Is.True);
    }

    [Test]
    public void SampleEntropyIsThatOfEnglish()
    {
        var text = Sample.Value;
        // Lower-case letters and space alone: Shannon's ~4.1 bits for 27-symbol English.
        var letters = text.Train.Where(b => b == ' ' || char.IsAsciiLetter((char)b)).Select(b => (byte)char.ToLowerInvariant((char)b)).ToArray();
        Assert.That(FortuneText.UnigramEntropy(letters), Is.InRange(4.0, 4.25));
        // All bytes: capitals, digits, punctuation, newlines and tab indentation add about half a bit (4.76 measured).
        Assert.That(text.UnigramEntropyBits, Is.InRange(4.5, 5.0));
        Assert.That(text.UnigramEntropyNats, Is.EqualTo(text.UnigramEntropyBits * Math.Log(2)).Within(1e-12));
        // Validation bytes follow the same letter frequencies.
        Assert.That(FortuneText.UnigramEntropy(text.Validation), Is.EqualTo(text.UnigramEntropyBits).Within(0.1));
    }

    [Test]
    public void EntropyOfKnownDistributions()
    {
        var uniform = Enumerable.Range(0, 256 * 3).Select(i => (byte)i).ToArray();
        Assert.That(FortuneText.UnigramEntropy(uniform), Is.EqualTo(8.0).Within(1e-12));
        Assert.That(FortuneText.UnigramEntropy(new byte[100]), Is.EqualTo(0.0));
        Assert.That(FortuneText.UnigramEntropy("abab"u8), Is.EqualTo(1.0).Within(1e-12));
        Assert.That(FortuneText.UnigramEntropy([]), Is.EqualTo(0.0));
    }

    [Test]
    public void ReadsAFortuneDirectoryButNotItsSubfoldersOrIndexes()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"routekit-fortunes-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(dir, "off"));
        try
        {
            File.WriteAllText(Path.Combine(dir, "b"), "Second file.\n%\n");
            File.WriteAllText(Path.Combine(dir, "a"), "First.\n%\nAlso first.\n%\n");
            File.WriteAllBytes(Path.Combine(dir, "a.dat"), [0, 0, 0, 2, 0x1E]);
            File.WriteAllText(Path.Combine(dir, "a.u8"), "not read\n%\n");
            File.WriteAllText(Path.Combine(dir, "off", "rude"), "never read\n%\n");
            var text = FortuneText.LoadInstalled(dir);
            var all = Documents(text.Train).Concat(Documents(text.Validation)).Order().ToList();
            Assert.That(all, Is.EqualTo(new[] { "Also first.", "First.", "Second file." }));
            Assert.That(text.Source, Does.Contain("2 files"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void InstalledPackageHasMoreThanTheSample()
    {
        Assume.That(FortuneText.IsInstalled(), Is.True, "fortunes package not installed");
        var text = FortuneText.Load();
        Assert.That(text.Source, Does.StartWith(FortuneText.InstalledDirectory));
        Assert.That(text.TrainDocuments, Is.GreaterThan(Sample.Value.TrainDocuments));
        // Every sample document is in the package, on the same side.
        var installedValidation = Documents(text.Validation).ToHashSet();
        Assert.That(Documents(Sample.Value.Validation).All(installedValidation.Contains), Is.True);
        Assert.That(text.UnigramEntropyBits, Is.InRange(4.5, 5.0));
    }

    private static IEnumerable<string> Documents(byte[] bytes) =>
        Encoding.UTF8.GetString(bytes).Split((char)FortuneText.DocumentSeparator, StringSplitOptions.RemoveEmptyEntries);
}
