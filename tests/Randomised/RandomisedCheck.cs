using System.Diagnostics;
using System.Globalization;
using CsCheck;
using NUnit.Framework;
using NUnit.Framework.Internal;

namespace RouteKit.Tests.Randomised;

/// <summary>
/// Runs a randomised property over cases drawn by a CsCheck generator, reproducibly. CsCheck's own <c>Sample</c>
/// replays only the first iteration from a given seed and draws the rest from fresh random seeds, so CI would see
/// different cases on every run; here every case seed comes from one master seed (a constant unless
/// ROUTEKIT_RANDOM_SEED says otherwise) and the test's name, so every run draws the same cases. On a failure the
/// search shrinks CsCheck's way: it keeps drawing cases, runs only those CsCheck sizes as smaller than the smallest
/// failure so far, and reports the smallest that still fails, with the seeds that replay it.
/// <para>Environment: ROUTEKIT_RANDOM_SEED (a master seed, decimal or 0x-hex), ROUTEKIT_RANDOM_CASES (a count, "500", or
/// a multiplier of each test's CI count, "10x"), ROUTEKIT_RANDOM_REPLAY (a case seed from a failure message: run only
/// that case; use with --filter on the failing test).</para>
/// </summary>
public static class RandomisedCheck
{
    /// <summary>The master seed CI uses.</summary>
    public const ulong DefaultSeed = 0x2026_1201_5EED;

    /// <summary>The master seed of this run.</summary>
    public static ulong Seed { get; } = ParseSeed(Environment.GetEnvironmentVariable("ROUTEKIT_RANDOM_SEED")) ?? DefaultSeed;

    private static readonly ulong? Replay = ParseSeed(Environment.GetEnvironmentVariable("ROUTEKIT_RANDOM_REPLAY"));

    /// <summary>The number of cases to run for a test whose CI count is <paramref name="ciCases"/>.</summary>
    public static int Cases(int ciCases)
    {
        var s = Environment.GetEnvironmentVariable("ROUTEKIT_RANDOM_CASES")?.Trim();
        if (string.IsNullOrEmpty(s)) return ciCases;
        if (s.EndsWith('x') || s.EndsWith('X'))
            return Math.Max(1, (int)Math.Round(ciCases * double.Parse(s[..^1], CultureInfo.InvariantCulture)));
        return Math.Max(1, int.Parse(s, CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// Draws <see cref="Cases"/>(<paramref name="ciCases"/>) cases from <paramref name="gen"/> and calls
    /// <paramref name="check"/> on each with a data seed derived from the case seed (for the case's tensors); fails
    /// with the smallest failing case found within <paramref name="shrinkSeconds"/>.
    /// </summary>
    public static void Run<T>(string name, Gen<T> gen, Action<T, int> check, int ciCases, Func<T, string>? print = null,
        double shrinkSeconds = 20)
    {
        print ??= v => v?.ToString() ?? "null";
        var stream = Fnv1a(name);
        var cases = Cases(ciCases);
        var clock = Stopwatch.StartNew();
        if (Replay is { } only)
        {
            var (v, _) = Draw(gen, stream, only);
            TestContext.Out.WriteLine($"{name}: replaying case seed 0x{only:X16}: {print(v)}");
            check(v, DataSeed(only));
            return;
        }
        TestContext.Out.WriteLine($"{name}: master seed 0x{Seed:X16} (ROUTEKIT_RANDOM_SEED), {cases} cases");

        for (var i = 0; i < cases; i++)
        {
            var caseSeed = CaseSeed(i);
            var (value, size) = Draw(gen, stream, caseSeed);
            if (Failure(check, value, caseSeed) is not { } message) continue;

            // Shrink: keep drawing (deterministically) and run only candidates CsCheck sizes as smaller.
            var first = (Value: value, Seed: caseSeed, Message: message);
            var best = first;
            var bestSize = size;
            int shrinks = 0, tried = 0;
            var shrinkClock = Stopwatch.StartNew();
            for (var j = cases; j < cases + 200_000 && shrinkClock.Elapsed.TotalSeconds < shrinkSeconds; j++)
            {
                var candidateSeed = CaseSeed(j);
                var (candidate, candidateSize) = Draw(gen, stream, candidateSeed);
                if (!Size.IsLessThan(candidateSize, bestSize)) continue;
                tried++;
                if (Failure(check, candidate, candidateSeed) is not { } m) continue;
                (best, bestSize) = ((candidate, candidateSeed, m), candidateSize);
                shrinks++;
            }
            Assert.Fail(
                $"{name}: case {i + 1} of {cases} failed (master seed 0x{Seed:X16}: ROUTEKIT_RANDOM_SEED). " +
                $"Shrunk {shrinks} times ({tried} smaller candidates run in {shrinkClock.Elapsed.TotalSeconds:F0} s) to\n" +
                $"  {print(best.Value)}\n  (case seed 0x{best.Seed:X16}: ROUTEKIT_RANDOM_REPLAY=0x{best.Seed:X16} reruns it)\n" +
                $"  {best.Message}\n" +
                $"First failure: {print(first.Value)} (case seed 0x{first.Seed:X16})\n  {first.Message}");
        }
        TestContext.Out.WriteLine($"{name}: {cases} cases passed in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>
    /// A log-uniform float in [10^lo, 10^hi], shrinking towards 10^lo. Built on an integer grid because CsCheck's
    /// Gen.Double[lo, hi] favours "simple" values: about half its draws in [-2, 3] are exactly 0 (so 10^e = 1).
    /// </summary>
    public static Gen<float> LogUniform(double lo, double hi) =>
        Gen.Int[0, 100_000].Select(i => (float)Math.Pow(10, lo + (hi - lo) * i / 100_000));

    /// <summary>One of <paramref name="values"/> (CsCheck shrinks towards the first).</summary>
    public static Gen<T> OneOf<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    // Runs one case with assertion results isolated, so a failing candidate during shrinking leaves no trace on the
    // test's own result; returns the failure's message, or null on a pass. Any exception is a failure.
    private static string? Failure<T>(Action<T, int> check, T value, ulong caseSeed)
    {
        using var isolated = new TestExecutionContext.IsolatedContext();
        try
        {
            check(value, DataSeed(caseSeed));
            return null;
        }
        catch (AssertionException e)
        {
            return e.Message.Trim();
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}\n{e.StackTrace}";
        }
    }

    private static (T Value, Size Size) Draw<T>(Gen<T> gen, uint stream, ulong caseSeed)
    {
        var value = gen.Generate(new PCG(stream, caseSeed), null, out var size);
        return (value, size);
    }

    private static ulong CaseSeed(int index) => SplitMix64(Seed + 0x9E3779B97F4A7C15UL * (ulong)(index + 1));

    private static int DataSeed(ulong caseSeed) => (int)(caseSeed % 1_000_000_000UL) + 1;

    private static ulong SplitMix64(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // A stable hash (string.GetHashCode is randomised per process).
    private static uint Fnv1a(string s)
    {
        var h = 2166136261u;
        foreach (var c in s) h = (h ^ c) * 16777619u;
        return h;
    }

    private static ulong? ParseSeed(string? s)
    {
        s = s?.Trim();
        if (string.IsNullOrEmpty(s)) return null;
        return s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.Parse(s[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture)
            : ulong.Parse(s, CultureInfo.InvariantCulture);
    }
}
