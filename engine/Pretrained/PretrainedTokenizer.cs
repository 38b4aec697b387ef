using FastBertTokenizer;

namespace RouteKit.Engine.Pretrained;

/// <summary>The ids of one encoded text: input_ids, attention_mask and token_type_ids, as the ONNX graph takes them.</summary>
/// <param name="InputIds">WordPiece ids, [CLS] first and [SEP] last.</param>
/// <param name="AttentionMask">1 for every token (no padding).</param>
/// <param name="TokenTypeIds">0 for every token (one segment).</param>
/// <param name="Truncated">Whether the text was longer than the limit and was cut.</param>
/// <param name="FullLength">The token count before truncation (with [CLS] and [SEP]).</param>
public sealed record EncodedText(long[] InputIds, long[] AttentionMask, long[] TokenTypeIds, bool Truncated, int FullLength);

/// <summary>
/// WordPiece tokenisation with FastBertTokenizer (MIT) on a package's vocab.txt. The packages ship no tokenizer_config.json
/// or sentence_bert_config.json (only model.onnx and vocab.txt), so lower-casing is decided from the vocabulary itself:
/// a vocabulary with no letter that has a lower-case form outside its bracketed special tokens is uncased (the uncased
/// BERT vocabulary does hold 'ℝ', an upper-case letter without a lower-case form, as BERT's lower() leaves it), and input is lower-cased (and
/// accents stripped, as BERT's uncased basic tokenizer does). The length limit defaults to
/// <see cref="DefaultMaxTokens"/> (the model's position table allows that many); longer text is cut to the limit as
/// sentence-transformers does (first limit-1 tokens, then [SEP]) with a warning.
/// </summary>
public sealed class PretrainedTokenizer
{
    /// <summary>The default limit on tokens per text, [CLS] and [SEP] included.</summary>
    public const int DefaultMaxTokens = 512;

    private readonly BertTokenizer _tokenizer = new();
    private readonly Action<string> _warn;

    /// <summary>A tokenizer over a vocab.txt text.</summary>
    /// <param name="vocabText">One token a line; line i is id i.</param>
    /// <param name="maxTokens">The limit per text, [CLS] and [SEP] included.</param>
    /// <param name="warn">Where truncation warnings go (default: standard error).</param>
    public PretrainedTokenizer(string vocabText, int maxTokens = DefaultMaxTokens, Action<string>? warn = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 2);
        Vocabulary = vocabText.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (Vocabulary.Count > 0 && Vocabulary[^1].Length == 0) Vocabulary = Vocabulary.Take(Vocabulary.Count - 1).ToList();
        LowerCase = !Vocabulary.Any(t => !(t.StartsWith('[') && t.EndsWith(']')) && t.Any(c => char.ToLowerInvariant(c) != c));
        MaxTokens = maxTokens;
        _warn = warn ?? (m => Console.Error.WriteLine(m));
        using var reader = new StringReader(vocabText);
        _tokenizer.LoadVocabulary(reader, LowerCase);
    }

    /// <summary>The vocabulary lines (index = id).</summary>
    public IReadOnlyList<string> Vocabulary { get; }

    /// <summary>Whether input is lower-cased (decided from the vocabulary).</summary>
    public bool LowerCase { get; }

    /// <summary>The limit per text, [CLS] and [SEP] included.</summary>
    public int MaxTokens { get; }

    /// <summary>The id of a vocabulary token (its line index).</summary>
    /// <exception cref="KeyNotFoundException">Not in the vocabulary.</exception>
    public int Id(string token)
    {
        for (int i = 0; i < Vocabulary.Count; i++) if (Vocabulary[i] == token) return i;
        throw new KeyNotFoundException($"'{token}' is not in the vocabulary.");
    }

    /// <summary>Encodes one text, truncating to <see cref="MaxTokens"/> with a warning.</summary>
    public EncodedText Encode(string text)
    {
        // Enough room for every token: at most one per character, plus [CLS] and [SEP].
        int room = Math.Max(MaxTokens, text.Length + 2);
        var (ids, _, _) = _tokenizer.Encode(text, room);
        var all = ids.ToArray();
        bool truncated = all.Length > MaxTokens;
        var kept = all;
        if (truncated)
        {
            kept = new long[MaxTokens];
            Array.Copy(all, kept, MaxTokens - 1);
            kept[^1] = all[^1]; // [SEP]
            _warn($"warning: text of {all.Length} tokens truncated to {MaxTokens} (the model's max sequence length).");
        }
        var mask = new long[kept.Length];
        Array.Fill(mask, 1L);
        return new EncodedText(kept, mask, new long[kept.Length], truncated, all.Length);
    }
}
