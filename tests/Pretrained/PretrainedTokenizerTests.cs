using NUnit.Framework;
using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>WordPiece tokenisation on each package's vocab.txt: ids are looked up in the file, not remembered.</summary>
[TestFixture(PretrainedModelId.MiniLM)]
[TestFixture(PretrainedModelId.ArcticXs)]
public class PretrainedTokenizerTests(PretrainedModelId id)
{
    private PretrainedTokenizer Tokenizer(List<string>? warnings = null) =>
        new(PretrainedModels.Package(id).VocabText, warn: warnings is null ? _ => { } : warnings.Add);

    [Test]
    public void VocabularyIsUncased()
    {
        var tokenizer = Tokenizer();
        TestContext.Out.WriteLine($"{id}: {tokenizer.Vocabulary.Count} tokens, lower-case {tokenizer.LowerCase}, first {string.Join(" ", tokenizer.Vocabulary.Take(3))}");
        Assert.That(tokenizer.LowerCase, Is.True);
        Assert.That(tokenizer.Encode("Hello WORLD").InputIds, Is.EqualTo(tokenizer.Encode("hello world").InputIds));
    }

    [Test]
    public void HelloWorldIdsAreTheVocabLines()
    {
        var tokenizer = Tokenizer();
        var encoded = tokenizer.Encode("hello world");
        var fromFile = new long[] { tokenizer.Id("[CLS]"), tokenizer.Id("hello"), tokenizer.Id("world"), tokenizer.Id("[SEP]") };
        Assert.That(encoded.InputIds, Is.EqualTo(fromFile));
        // The standard uncased BERT vocabulary, checked against the file above.
        Assert.That(fromFile, Is.EqualTo(new long[] { 101, 7592, 2088, 102 }));
        Assert.That(encoded.AttentionMask, Is.All.EqualTo(1));
        Assert.That(encoded.TokenTypeIds, Is.All.EqualTo(0));
        Assert.That(encoded.Truncated, Is.False);
    }

    [Test]
    public void FixedSentences()
    {
        var tokenizer = Tokenizer();
        foreach (var sentence in new[] { "The quick brown fox jumps over the lazy dog.", "RouteKit runs transformers!", "unaffable" })
        {
            var ids = tokenizer.Encode(sentence).InputIds;
            TestContext.Out.WriteLine($"{sentence} -> {string.Join(" ", ids)} = {string.Join(" ", ids.Select(i => tokenizer.Vocabulary[(int)i]))}");
            Assert.That(ids[0], Is.EqualTo(tokenizer.Id("[CLS]")));
            Assert.That(ids[^1], Is.EqualTo(tokenizer.Id("[SEP]")));
            Assert.That(ids, Has.None.EqualTo(tokenizer.Id("[UNK]")));
        }
        var fox = tokenizer.Encode("The quick brown fox.").InputIds;
        Assert.That(fox, Is.EqualTo(new long[] { tokenizer.Id("[CLS]"), tokenizer.Id("the"), tokenizer.Id("quick"), tokenizer.Id("brown"), tokenizer.Id("fox"), tokenizer.Id("."), tokenizer.Id("[SEP]") }));
        var pieces = tokenizer.Encode("unaffable").InputIds.Skip(1).SkipLast(1).Select(i => tokenizer.Vocabulary[(int)i]).ToList();
        Assert.That(string.Concat(pieces.Select(p => p.StartsWith("##") ? p[2..] : p)), Is.EqualTo("unaffable"));
        Assert.That(pieces.Skip(1), Has.All.StartsWith("##"), "continuation pieces");
    }

    [Test]
    public void UnknownCharacterGivesUnk()
    {
        var tokenizer = Tokenizer();
        const string crab = "\U0001F980";
        Assert.That(tokenizer.Vocabulary, Does.Not.Contain(crab));
        var ids = tokenizer.Encode($"hello {crab} world").InputIds;
        Assert.That(ids, Is.EqualTo(new long[] { tokenizer.Id("[CLS]"), tokenizer.Id("hello"), tokenizer.Id("[UNK]"), tokenizer.Id("world"), tokenizer.Id("[SEP]") }));
    }

    [Test]
    public void LongTextIsTruncatedTo512WithAWarning()
    {
        var warnings = new List<string>();
        var tokenizer = Tokenizer(warnings);
        var text = string.Join(" ", Enumerable.Repeat("hello world", 400)); // 800 words
        var encoded = tokenizer.Encode(text);
        Assert.That(encoded.InputIds, Has.Length.EqualTo(512));
        Assert.That(encoded.AttentionMask, Has.Length.EqualTo(512));
        Assert.That(encoded.Truncated, Is.True);
        Assert.That(encoded.FullLength, Is.EqualTo(802));
        Assert.That(encoded.InputIds[^1], Is.EqualTo(tokenizer.Id("[SEP]")));
        Assert.That(encoded.InputIds[^2], Is.EqualTo(tokenizer.Id("world")), "510 words kept, then [SEP]");
        Assert.That(warnings, Has.Count.EqualTo(1));
        TestContext.Out.WriteLine(warnings[0]);
        Assert.That(warnings[0], Does.Contain("802").And.Contain("512"));
        // Exactly at the limit: no warning.
        warnings.Clear();
        var exact = tokenizer.Encode(string.Join(" ", Enumerable.Repeat("hello", 510)));
        Assert.That(exact.InputIds, Has.Length.EqualTo(512));
        Assert.That(exact.Truncated, Is.False);
        Assert.That(warnings, Is.Empty);
    }
}
