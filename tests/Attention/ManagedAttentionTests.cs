using NUnit.Framework;
using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// The attention suite on the Managed backend (DESIGN.md section 7): awkward shapes, every score and mask variant,
/// GQA/MQA, 1e3-scale logits, large shapes, determinism and the no-N x M-buffer property.
/// Shapes: B batch, H query heads, Hkv kv heads, N queries, M keys, D head dim.
/// </summary>
public sealed class ManagedAttentionTests : AttentionBackendTests
{
    protected override Backend Backend => Backend.Managed;

    /// <summary>N != M both ways, D not a multiple of 16, key counts not a multiple of the 64-key block.</summary>
    private static IEnumerable<TestCaseData> Shapes()
    {
        (int N, int M, int D, bool Causal)[] shapes =
        [
            (1, 1, 16, false), (1, 17, 24, false), (17, 1, 59, false), (17, 97, 64, true), (97, 17, 72, true),
            (97, 128, 128, false), (128, 200, 16, true), (200, 128, 24, true), (200, 97, 59, false), (128, 1025, 64, true),
            (1025, 200, 72, true), (1025, 17, 16, false), (1, 1025, 128, true), (1025, 1025, 24, true),
        ];
        foreach (var (n, m, d, causal) in shapes)
            yield return new TestCaseData(new AttentionCase(1, 2, 1, n, m, d, Causal: causal)).SetArgDisplayNames($"N{n} M{m} D{d}{(causal ? " causal" : "")}");
    }

    /// <summary>Every combination of Dot/Distance x NormalizeKeys x causal x window x brake at one shape.</summary>
    private static IEnumerable<TestCaseData> Variants()
    {
        foreach (var score in new[] { Score.Dot, Score.Distance })
        foreach (var norm in new[] { false, true })
        foreach (var causal in new[] { false, true })
        foreach (var window in new int?[] { null, 23 })
        foreach (var brake in new[] { false, true })
        {
            var c = new AttentionCase(1, 2, 2, 97, 150, 24, score, norm, causal, window, brake);
            yield return new TestCaseData(c).SetArgDisplayNames(c.ToString());
        }
    }

    /// <summary>Grouped and multi-query heads, batches, logits near 1e3, sinks spanning two key blocks.</summary>
    private static IEnumerable<TestCaseData> Special()
    {
        AttentionCase[] cases =
        [
            new(2, 4, 2, 97, 130, 64, Causal: true, Brake: true),
            new(1, 4, 1, 130, 97, 72, Score.Distance, NormalizeKeys: true, Window: 40),
            new(2, 6, 3, 64, 64, 16, Score.Distance, Causal: true),
            new(1, 2, 1, 128, 200, 64, InputScale: 31),
            new(1, 2, 2, 128, 200, 59, Score.Distance, InputScale: 31),
            new(1, 2, 1, 200, 200, 64, Score.Dot, NormalizeKeys: true, Causal: true, Brake: true, InputScale: 31),
            new(1, 2, 1, 97, 200, 128, Score.Distance, NormalizeKeys: true, Window: 50, InputScale: 31),
            new(1, 2, 1, 97, 150, 24, SinkTokens: 70),
            new(1, 2, 1, 97, 150, 24, Causal: true, SinkTokens: 0),
            new(1, 1, 1, 33, 40, 16, Diagnostics: false, Causal: true),
            new(1, 2, 1, 97, 40, 16, Causal: true, Window: 0, Brake: true),
            new(1, 2, 1, 33, 70, 1, Score.Distance, Causal: true),
            new(1, 1, 1, 40, 90, 256, Score.Distance, NormalizeKeys: true, Brake: true),
            // Key padding (issue 14): lengths at, inside and across 64-key blocks, a full one and an empty one (every
            // key of that batch element hidden: O = 0, Lse = -inf, zero gradients), with every other mask.
            new(3, 2, 1, 17, 33, 64, KeyLengths: [33, 5, 0]),
            new(2, 4, 2, 97, 130, 64, Causal: true, Brake: true, KeyLengths: [64, 129]),
            new(2, 2, 2, 129, 257, 59, Score.Distance, NormalizeKeys: true, KeyLengths: [1, 200]),
            new(2, 2, 1, 97, 150, 24, Window: 30, SinkTokens: 3, KeyLengths: [150, 67], InputScale: 31),
            new(2, 1, 1, 40, 70, 1, Score.Distance, Causal: true, KeyLengths: [0, 41]),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetArgDisplayNames($"{c} sinks{c.SinkTokens}{(c.Diagnostics ? "" : " nodiag")}");
    }

    /// <summary>N = M = 2048: one full forward + backward, the others forward only (the float64 reference is O(N M D)).</summary>
    private static IEnumerable<TestCaseData> Large()
    {
        yield return new TestCaseData(new AttentionCase(1, 1, 1, 2048, 2048, 64, Causal: true, Brake: true), true)
            .SetArgDisplayNames("N2048 D64 causal brake backward");
        yield return new TestCaseData(new AttentionCase(1, 1, 1, 2048, 2048, 128, Score.Distance, NormalizeKeys: true), false)
            .SetArgDisplayNames("N2048 D128 Distance+norm");
        yield return new TestCaseData(new AttentionCase(1, 1, 1, 2048, 2048, 64, Score.Distance, InputScale: 31, Window: 300), false)
            .SetArgDisplayNames("N2048 D64 Distance window x31");
    }

    /// <summary>
    /// Key norms in the hundreds to 1e3 (KeyScale 30-125 at D 16-128): Distance scores of order 1e3-1e5. Before
    /// 2026-12-02 the backward recomputed P from the float32 Lse, whose rounding (up to 2e-3 at these magnitudes)
    /// put dV and dK at 200-5000x the naive float32 reference's error.
    /// </summary>
    private static IEnumerable<TestCaseData> LargeKeyNorms()
    {
        foreach (var score in new[] { Score.Distance, Score.Dot })
        foreach (var causal in new[] { false, true })
        foreach (var (n, m, d, keyScale) in new[] { (37, 61, 64, 40f), (1, 17, 16, 125f), (97, 257, 128, 90f), (131, 97, 24, 60f) })
        {
            var c = new AttentionCase(1, 2, 1, n, m, d, score, Causal: causal, KeyScale: keyScale);
            yield return new TestCaseData(c).SetArgDisplayNames(c.ToString());
        }
        var brake = new AttentionCase(2, 4, 2, 61, 61, 59, Score.Distance, Causal: true, Window: 17, Brake: true, KeyScale: 125f);
        yield return new TestCaseData(brake).SetArgDisplayNames(brake.ToString());
    }

    [TestCaseSource(nameof(LargeKeyNorms))]
    public void LargeKeyNormGradients(AttentionCase c) => CheckAgainstReference(c);

    [TestCaseSource(nameof(Shapes))]
    public void AwkwardShapes(AttentionCase c) => CheckAgainstReference(c);

    [TestCaseSource(nameof(Variants))]
    public void ScoreAndMaskVariants(AttentionCase c) => CheckAgainstReference(c);

    [TestCaseSource(nameof(Special))]
    public void GroupsScalesAndSinks(AttentionCase c) => CheckAgainstReference(c);

    [TestCaseSource(nameof(Large))]
    public void LargeShapes(AttentionCase c, bool backward) => CheckAgainstReference(c, backward);

    /// <summary>
    /// Key padding means exactly "these keys are not there": with KeyLengths[b] = L the output, Lse and dQ equal those of
    /// the same queries over the first L keys alone, dK and dV of the real keys equal theirs, and the padding keys get
    /// exactly zero gradients (no causal mask here: its alignment depends on M).
    /// </summary>
    [TestCase(Score.Dot, false)]
    [TestCase(Score.Distance, true)]
    public void KeyPaddingEqualsDroppingThePaddedKeys(Score score, bool normalizeKeys)
    {
        const int n = 37, m = 150, d = 48, h = 2;
        int[] lengths = [150, 71, 1];
        var b = lengths.Length;
        var q = TestData.Normal(b * h * n * d, 5);
        var k = TestData.Normal(b * h * m * d, 6);
        var v = TestData.Normal(b * h * m * d, 7);
        var dOut = TestData.Normal(b * h * n * d, 8);
        var options = new AttentionOptions { Score = score, NormalizeKeys = normalizeKeys, Diagnostics = true, KeyLengths = lengths };
        using var tq = Device.FromArray(q, b, h, n, d);
        using var tk = Device.FromArray(k, b, h, m, d);
        using var tv = Device.FromArray(v, b, h, m, d);
        using var tdo = Device.FromArray(dOut, b, h, n, d);
        using var fwd = Attention.Forward(tq, tk, tv, options);
        using var grads = Attention.Backward(tdo, tq, tk, tv, fwd, options);
        float[] o = fwd.Output.ToArray(), lse = fwd.Lse.ToArray(), dq = grads.DQ.ToArray(), dk = grads.DK.ToArray(), dv = grads.DV.ToArray();
        for (var bi = 0; bi < b; bi++)
        {
            var l = lengths[bi];
            float[] Rows(float[] x, int rows, int keep) => Enumerable.Range(0, h)
                .SelectMany(hh => x.AsSpan(((bi * h + hh) * rows) * d, keep * d).ToArray()).ToArray();
            using var sq = Device.FromArray(Rows(q, n, n), 1, h, n, d);
            using var sk = Device.FromArray(Rows(k, m, l), 1, h, l, d);
            using var sv = Device.FromArray(Rows(v, m, l), 1, h, l, d);
            using var sdo = Device.FromArray(Rows(dOut, n, n), 1, h, n, d);
            var plain = options with { KeyLengths = null };
            using var f = Attention.Forward(sq, sk, sv, plain);
            using var g = Attention.Backward(sdo, sq, sk, sv, f, plain);
            Assert.That(Rows(o, n, n), Is.EqualTo(f.Output.ToArray()).Within(1e-6f), $"b {bi}: O");
            Assert.That(Enumerable.Range(0, h).SelectMany(hh => lse.AsSpan((bi * h + hh) * n, n).ToArray()), Is.EqualTo(f.Lse.ToArray()).Within(1e-5f), $"b {bi}: Lse");
            Assert.That(Rows(dq, n, n), Is.EqualTo(g.DQ.ToArray()).Within(1e-6f), $"b {bi}: dQ");
            Assert.That(Rows(dk, m, l), Is.EqualTo(g.DK.ToArray()).Within(1e-6f), $"b {bi}: dK of the real keys");
            Assert.That(Rows(dv, m, l), Is.EqualTo(g.DV.ToArray()).Within(1e-6f), $"b {bi}: dV of the real keys");
            for (var hh = 0; hh < h; hh++)
            {
                Assert.That(dk.AsSpan(((bi * h + hh) * m + l) * d, (m - l) * d).ToArray(), Is.All.EqualTo(0f), $"b {bi}: dK of the padding keys");
                Assert.That(dv.AsSpan(((bi * h + hh) * m + l) * d, (m - l) * d).ToArray(), Is.All.EqualTo(0f), $"b {bi}: dV of the padding keys");
            }
        }
    }

    [TestCase(new[] { 5 }, "KeyLengths has length 1")]
    [TestCase(new[] { 5, 34 }, "KeyLengths[1] = 34")]
    [TestCase(new[] { -1, 3 }, "KeyLengths[0] = -1")]
    public void BadKeyLengthsAreRefused(int[] lengths, string message)
    {
        using var q = Device.Zeros(2, 1, 4, 8);
        using var k = Device.Zeros(2, 1, 33, 8);
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward(q, k, k, new AttentionOptions { KeyLengths = lengths }));
        Assert.That(e!.Message, Does.Contain(message));
    }

    [Test]
    public void BackwardIsBitwiseRepeatable() =>
        CheckDeterministic(new AttentionCase(1, 4, 2, 200, 300, 72, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true), 20);

    [Test]
    public void ZeroAndTinyKeysUnderNormalisation([Values] Score score)
    {
        // Keys at or below KeyEpsilon take the (rho / eps) k branch, forward and backward.
        const int b = 1, h = 2, hkv = 1, n = 70, m = 90, d = 24;
        var options = new AttentionOptions { Score = score, NormalizeKeys = true, KeyEpsilon = 1e-3f, Causal = true, Diagnostics = true };
        var p = AttentionParams.Resolve([b, h, n, d], [b, hkv, m, d], [b, hkv, m, d], options);
        var q = TestData.Normal(b * h * n * d, 5); // [B, H, N, D]
        var k = TestData.Normal(b * hkv * m * d, 6); // [B, Hkv, M, D]
        var v = TestData.Normal(b * hkv * m * d, 7); // [B, Hkv, M, D]
        var dOut = TestData.Normal(b * h * n * d, 8); // [B, H, N, D]
        foreach (var j in new[] { 0, 5, 64, 89 }) Array.Clear(k, j * d, d);
        for (var e = 0; e < d; e++) k[33 * d + e] = 1e-5f * (e + 1);

        using var tq = Device.FromArray(q, b, h, n, d);
        using var tk = Device.FromArray(k, b, hkv, m, d);
        using var tv = Device.FromArray(v, b, hkv, m, d);
        using var tdo = Device.FromArray(dOut, b, h, n, d);
        using var fwd = Attention.Forward(tq, tk, tv, options);
        using var grads = Attention.Backward(tdo, tq, tk, tv, fwd, options);
        double[] qd = TestData.ToDouble(q), kd = TestData.ToDouble(k), vd = TestData.ToDouble(v), dd = TestData.ToDouble(dOut);
        var (f64, f32) = (AttentionReference.Forward(p, qd, kd, vd), AttentionReference.Forward(p, q, k, v));
        var (g64, g32) = (AttentionReference.Backward(p, dd, qd, kd, vd), AttentionReference.Backward(p, dOut, q, k, v));
        ErrorRule.Assert2x("O", fwd.Output.ToArray(), f64.Output, f32.Output);
        ErrorRule.Assert2x("Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse);
        ErrorRule.Assert2x("Entropy", fwd.Diagnostics!.Entropy.ToArray(), f64.Entropy, f32.Entropy);
        ErrorRule.Assert2x("dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ);
        ErrorRule.Assert2x("dK", grads.DK.ToArray(), g64.DK, g32.DK);
        ErrorRule.Assert2x("dV", grads.DV.ToArray(), g64.DV, g32.DV);
    }

    [Test]
    public void NoQueryByKeyBuffer()
    {
        // Shapes: B = H = 1, N = M = 2048, D = 64; an N x M float buffer would be 16 MiB.
        const int n = 2048, d = 64;
        var c = new AttentionCase(1, 1, 1, n, n, d, Score.Distance, NormalizeKeys: true, Causal: true, Brake: true);
        var (q, k, v, dOut) = c.Inputs();
        using var tq = Device.FromArray(q, 1, 1, n, d); // [B, H, N, D]
        using var tk = Device.FromArray(k, 1, 1, n, d); // [B, Hkv, M, D]
        using var tv = Device.FromArray(v, 1, 1, n, d); // [B, Hkv, M, D]
        using var tdo = Device.FromArray(dOut, 1, 1, n, d); // [B, H, N, D]
        using var fwd = Attention.Forward(tq, tk, tv, c.Options);
        using var grads = Attention.Backward(tdo, tq, tk, tv, fwd, c.Options);
        // Warm-ups let every worker thread make its per-thread tiles (~0.1 MiB each) before anything is counted.
        for (var warm = 0; warm < 3; warm++)
        {
            Attention.Forward(tq, tk, tv, c.Options, fwd);
            Attention.Backward(tdo, tq, tk, tv, fwd, c.Options, grads);
        }

        // GC.GetAllocatedBytesForCurrentThread misses the worker threads of Parallel.For; the process-wide count does not.
        var before = GC.GetTotalAllocatedBytes(precise: true);
        Attention.Forward(tq, tk, tv, c.Options, fwd);
        var forwardBytes = GC.GetTotalAllocatedBytes(precise: true) - before;
        before = GC.GetTotalAllocatedBytes(precise: true);
        Attention.Backward(tdo, tq, tk, tv, fwd, c.Options, grads);
        var backwardBytes = GC.GetTotalAllocatedBytes(precise: true) - before;

        // Scratch is pooled (the prepared keys, O(M D)) or kept per thread (the tiles): 2026-11-28 a repeated call
        // allocated ~5 KB forward and ~9 KB backward. The bound leaves room for thread-pool threads that join late.
        const long queryByKey = (long)n * n * sizeof(float);
        Assert.That(forwardBytes, Is.LessThan(queryByKey / 4), "forward allocated a quarter of an N x M float buffer or more");
        Assert.That(backwardBytes, Is.LessThan(queryByKey / 4), "backward allocated a quarter of an N x M float buffer or more");
    }
}
