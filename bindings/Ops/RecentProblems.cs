// The last problems an op resolved on this calling thread, reused while the key (shapes and graph sizes), the options
// object and the contents of its BrakeSlopes array are the same, so a training step that calls an op with the same
// arguments every step does not allocate a new params record (issue 11). The Attention.Resolved pattern, shared by
// GraphAttention and DepthRouter. An options record is immutable but for the contents of its BrakeSlopes array, which
// are compared against a copy taken when the entry was stored. Nothing is cached when resolving throws.
namespace RouteKit;

/// <summary>
/// A small most-recently-stored cache of resolved problems of one op, owned by one calling thread: obtain it with
/// <c>ManagedParallel.WorkerLocal&lt;RecentProblems&lt;TOptions, TProblem&gt;&gt;()</c> (never share it across threads).
/// </summary>
internal sealed class RecentProblems<TOptions, TProblem> where TOptions : class where TProblem : class
{
    /// <summary>Entries kept (one per layer of a model, up to this many).</summary>
    private const int Slots = 16;

    /// <summary>The longest key (three rank-4 shapes and a few sizes).</summary>
    public const int MaxKey = 16;

    private readonly Entry[] entries = CreateEntries();
    private int next;

    /// <summary>The problem stored for this key, options object and slopes, or null.</summary>
    public TProblem? Find(ReadOnlySpan<int> key, TOptions? options, float[]? slopes)
    {
        foreach (var e in entries)
            if (e.Problem is { } hit && ReferenceEquals(e.Options, options) && key.SequenceEqual(e.Key.AsSpan(0, e.KeyLength))
                && (slopes is null ? e.Slopes is null : e.Slopes is not null && slopes.AsSpan().SequenceEqual(e.Slopes)))
                return hit;
        return null;
    }

    /// <summary>Stores a freshly resolved problem (replacing the oldest entry) and returns it.</summary>
    public TProblem Store(ReadOnlySpan<int> key, TOptions? options, float[]? slopes, TProblem problem)
    {
        var e = entries[next];
        next = (next + 1) % Slots;
        key.CopyTo(e.Key);
        e.KeyLength = key.Length;
        e.Options = options;
        e.Slopes = slopes is null ? null : (float[])slopes.Clone();
        e.Problem = problem;
        return problem;
    }

    private static Entry[] CreateEntries()
    {
        var entries = new Entry[Slots];
        for (var i = 0; i < Slots; i++) entries[i] = new Entry();
        return entries;
    }

    private sealed class Entry
    {
        public readonly int[] Key = new int[MaxKey];
        public int KeyLength;
        public TOptions? Options;
        public float[]? Slopes;
        public TProblem? Problem;
    }
}
