using RouteKit.Engine.Data;

namespace RouteKit.Engine.Pretrained;

/// <summary>
/// Real English sentences for the pretrained checks: the documents of the embedded fortunes sample
/// (engine/Data/samples/fortunes.txt.gz, Debian's <c>fortunes</c>, licence in LICENSE-fortunes.txt), in file order, with
/// runs of whitespace collapsed to one space. Always the embedded sample, so every machine checks the same texts.
/// </summary>
public static class PretrainedSentences
{
    /// <summary>The first <paramref name="count"/> documents of the sample.</summary>
    /// <exception cref="ArgumentOutOfRangeException">count is below 1 or above the sample's document count.</exception>
    public static IReadOnlyList<string> Load(int count)
    {
        var all = All.Value;
        if (count < 1 || count > all.Count)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"the fortunes sample holds {all.Count} documents.");
        return all.Take(count).ToList();
    }

    /// <summary>How many documents the sample holds.</summary>
    public static int Available => All.Value.Count;

    private static readonly Lazy<IReadOnlyList<string>> All = new(() =>
        FortuneText.SampleDocuments()
            .Select(d => string.Join(' ', d.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)))
            .Where(d => d.Length > 0).ToList());
}
