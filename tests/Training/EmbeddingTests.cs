using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>The embedding gather and its deterministic backward on each backend against the float64 reference.</summary>
public abstract class EmbeddingTests : BackendFixture
{
    /// <summary>The (T tokens, V vocabulary, C channels) shapes this backend runs.</summary>
    protected abstract (int Tokens, int Vocabulary, int Channels)[] Shapes { get; }

    // Ids with repeats on purpose (a few hot tokens), so the backward sums several rows into one.
    private static int[] Ids(int tokens, int vocabulary, int seed)
    {
        var rng = new Random(seed);
        var ids = new int[tokens];
        for (var t = 0; t < tokens; t++) ids[t] = rng.Next(2) == 0 ? rng.Next(Math.Min(3, vocabulary)) : rng.Next(vocabulary);
        return ids;
    }

    private static float[] AsFloats(int[] ids) => Array.ConvertAll(ids, v => (float)v);

    [Test]
    public void ForwardAndBackwardMatchReference()
    {
        foreach (var (tokens, vocabulary, channels) in Shapes)
        {
            var what = $"T {tokens} V {vocabulary} C {channels}";
            var table = TestData.Normal(vocabulary * channels, tokens + channels);
            var ids = Ids(tokens, vocabulary, tokens * 7 + vocabulary);
            var dOut = TestData.Normal(tokens * channels, channels, 3f);
            var initial = TestData.Normal(vocabulary * channels, 5, 0.5f);
            using var tTable = Device.FromArray(table, vocabulary, channels);
            using var tIds = Device.FromArray(AsFloats(ids), tokens);
            using var output = Embedding.Forward(tTable, tIds);
            Assert.That(output.ToArray(), Is.EqualTo(EmbeddingReference.Forward(table, ids, channels)), $"{what}: gather is exact");
            using var tdOut = Device.FromArray(dOut, tokens, channels);
            using var dTable = Device.FromArray(initial, vocabulary, channels);
            Embedding.Backward(tdOut, tIds, dTable);
            var r64 = EmbeddingReference.Backward(TestData.ToDouble(dOut), ids, channels, TestData.ToDouble(initial));
            var r32 = EmbeddingReference.Backward(dOut, ids, channels, initial);
            ErrorRule.Assert2x($"{what} dTable", dTable.ToArray(), r64, r32);
        }
    }

    [Test]
    public void BackwardIsBitwiseRepeatable()
    {
        var (tokens, vocabulary, channels) = Shapes[^1];
        var ids = Ids(tokens, vocabulary, 3);
        using var tIds = Device.FromArray(AsFloats(ids), tokens);
        using var dOut = Device.FromArray(TestData.Normal(tokens * channels, 4, 100f), tokens, channels);
        using var a = Device.Zeros(vocabulary, channels);
        using var b = Device.Zeros(vocabulary, channels);
        Embedding.Backward(dOut, tIds, a);
        Embedding.Backward(dOut, tIds, b);
        Assert.That(b.ToArray(), Is.EqualTo(a.ToArray()));
    }

    [Test]
    public void BadInputIsRefusedAndOutputsAreUntouched()
    {
        int vocabulary = 4, channels = 3, tokens = 2;
        using var table = Device.FromArray(TestData.Normal(vocabulary * channels, 1), vocabulary, channels);
        using var good = Device.FromArray([0f, 3f], tokens);
        using var output = Device.FromArray(Enumerable.Repeat(7f, tokens * channels).ToArray(), tokens, channels);
        using var dOut = Device.FromArray(TestData.Normal(tokens * channels, 2), tokens, channels);
        using var dTable = Device.FromArray(Enumerable.Repeat(7f, vocabulary * channels).ToArray(), vocabulary, channels);
        void Refused(string param, Action call)
        {
            var e = Assert.Throws<ArgumentException>(() => call())!;
            Assert.That(e.ParamName, Is.EqualTo(param), e.Message);
            Assert.That(output.ToArray(), Is.All.EqualTo(7f), $"{param}: output touched");
            Assert.That(dTable.ToArray(), Is.All.EqualTo(7f), $"{param}: dTable touched");
        }
        foreach (var bad in new[] { 4f, -1f, 0.5f, float.NaN, float.PositiveInfinity })
        {
            using var ids = Device.FromArray([1f, bad], tokens);
            Refused("ids", () => Embedding.Forward(table, ids, output));
            Refused("ids", () => Embedding.Backward(dOut, ids, dTable));
        }
        var nan = TestData.Normal(tokens * channels, 2);
        nan[1] = float.NaN;
        using (var dOutNan = Device.FromArray(nan, tokens, channels)) Refused("dOut", () => Embedding.Backward(dOutNan, good, dTable));
        using (var wrong = Device.Zeros(tokens + 1, channels)) Refused("output", () => Embedding.Forward(table, good, wrong));
        using (var wrong = Device.Zeros(tokens, channels + 1)) Refused("dOut", () => Embedding.Backward(wrong, good, dTable));
        using (var ids2 = Device.FromArray([0f, 1f, 2f, 3f], 2, 2)) Refused("ids", () => Embedding.Forward(table, ids2, output));
        using var other = Device.Create(Backend.Managed);
        using var foreign = other.FromArray([0f, 1f], tokens);
        Refused("ids", () => Embedding.Forward(table, foreign, output));
        // T = V: dTable [V, C] could be dOut [T, C] itself.
        using var square = Device.FromArray(TestData.Normal(vocabulary * channels, 3), vocabulary, channels);
        using var idsV = Device.FromArray([0f, 1f, 2f, 3f], vocabulary);
        var e = Assert.Throws<ArgumentException>(() => Embedding.Backward(square, idsV, square))!;
        Assert.That(e.ParamName, Is.EqualTo("dTable"), e.Message);
    }
}

/// <summary>Embedding on the Managed backend, awkward T, C and V up to ~1000.</summary>
public sealed class ManagedEmbeddingTests : EmbeddingTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Managed;
    /// <inheritdoc />
    protected override (int Tokens, int Vocabulary, int Channels)[] Shapes =>
        [(1, 1, 1), (7, 5, 33), (33, 1000, 7), (127, 997, 127), (127, 3, 64)];
}

/// <summary>The exact GPU kernels on ILGPU's CPU simulator, tiny shapes.</summary>
public sealed class IlgpuCpuEmbeddingTests : EmbeddingTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.IlgpuCpu;
    /// <inheritdoc />
    protected override (int Tokens, int Vocabulary, int Channels)[] Shapes => [(1, 1, 1), (7, 5, 33), (33, 40, 7)];
}

/// <summary>The kernels on a real GPU (skipped where none is found).</summary>
[Category("Gpu")]
public sealed class CudaEmbeddingTests : EmbeddingTests
{
    /// <inheritdoc />
    protected override Backend Backend => Backend.Cuda;
    /// <inheritdoc />
    protected override (int Tokens, int Vocabulary, int Channels)[] Shapes =>
        [(1, 1, 1), (7, 5, 33), (33, 1000, 7), (127, 997, 127), (127, 3, 64)];
}

/// <summary>The reference's dTable against central finite differences, in float64.</summary>
public sealed class EmbeddingReferenceTests
{
    [Test]
    public void DTableMatchesFiniteDifferences()
    {
        // Loss L = sum(w * Forward(table)), so dL/dOut = w and dL/dTable is what Backward gives for dOut = w.
        int vocabulary = 4, channels = 3;
        int[] ids = [2, 0, 2, 3, 2];
        var table = TestData.ToDouble(TestData.Normal(vocabulary * channels, 1));
        var w = TestData.ToDouble(TestData.Normal(ids.Length * channels, 2));
        var grad = EmbeddingReference.Backward(w, ids, channels, new double[table.Length]);
        double Loss()
        {
            var o = EmbeddingReference.Forward(table, ids, channels);
            var s = 0.0;
            for (var i = 0; i < o.Length; i++) s += w[i] * o[i];
            return s;
        }
        const double h = 1e-6;
        for (var i = 0; i < table.Length; i++)
        {
            var saved = table[i];
            table[i] = saved + h;
            var up = Loss();
            table[i] = saved - h;
            var down = Loss();
            table[i] = saved;
            Assert.That(grad[i], Is.EqualTo((up - down) / (2 * h)).Within(1e-8), $"dTable[{i}]");
        }
        Assert.That(grad.Skip(channels).Take(channels), Is.All.EqualTo(0.0), "row 1 has no token");
    }
}
