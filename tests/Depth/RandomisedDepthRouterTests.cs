using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>
/// The depth router on random cases from a fixed seed (the same cases on every run): shapes (L up to 64, Lq up to L,
/// prime token counts, D from 1 to 72), scores, normalisation, brakes (none, one, per head) and logit magnitudes
/// log-uniform in [1e-2, 1e3], each forward and backward against the float64 reference with the 2x rule.
/// </summary>
public abstract class RandomisedDepthRouterTests : DepthRouterFixture
{
    /// <summary>Cases per run.</summary>
    protected abstract int Count { get; }

    /// <summary>Largest L T H D product drawn (keeps the simulator's cases small).</summary>
    protected abstract int MaxColumnElements { get; }

    /// <summary>Largest depth drawn.</summary>
    protected virtual int MaxLayers => DepthRouterParams.MaxLayers;

    private IEnumerable<DepthCase> Draw()
    {
        var rng = new Random(20261202);
        int[] tokens = [1, 2, 3, 5, 17, 31, 97];
        int[] dims = [1, 3, 8, 16, 24, 59, 64, 72];
        for (var made = 0; made < Count;)
        {
            var l = Math.Min(MaxLayers, rng.Next(4) == 0 ? rng.Next(33, 65) : rng.Next(1, 12));
            var lq = rng.Next(2) == 0 ? l : rng.Next(1, l + 1);
            int t = tokens[rng.Next(tokens.Length)], h = rng.Next(1, 4), d = dims[rng.Next(dims.Length)];
            if (t * h * d * l > MaxColumnElements) continue;
            var logit = MathF.Pow(10, (float)(rng.NextDouble() * 5 - 2)); // s q.k spread, 1e-2 .. 1e3
            var normalize = rng.Next(2) == 0;
            var keyScale = normalize ? 1f : MathF.Pow(10, (float)(rng.NextDouble() * 2 - 1));
            var queryScale = normalize ? logit : logit / keyScale;
            var brakeKind = rng.Next(3);
            made++;
            yield return new DepthCase(lq, l, t, h, d, rng.Next(2) == 0 ? Score.Dot : Score.Distance, normalize,
                brakeKind == 0 ? 0f : (float)rng.NextDouble() * 2, brakeKind == 2, rng.Next(2) == 0, queryScale, keyScale);
        }
    }

    [Test]
    public void RandomCasesMatchReference()
    {
        var seed = 1;
        foreach (var c in Draw()) CheckAgainstReference(c, seed++);
    }
}

/// <summary>Random cases on Managed.</summary>
[TestFixture]
public sealed class ManagedRandomisedDepthRouterTests : RandomisedDepthRouterTests
{
    protected override Backend Backend => Backend.Managed;
    protected override int Count => 24;
    protected override int MaxColumnElements => 1 << 17;
}

/// <summary>Random cases on the ILGPU CPU simulator (small).</summary>
[TestFixture]
public sealed class IlgpuCpuRandomisedDepthRouterTests : RandomisedDepthRouterTests
{
    protected override Backend Backend => Backend.IlgpuCpu;
    protected override int Count => 5;
    protected override int MaxColumnElements => 3000;
    protected override int MaxLayers => 12;
}
