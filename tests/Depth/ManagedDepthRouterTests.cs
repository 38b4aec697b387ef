using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>The depth-router suite on the Managed backend: the brief's awkward shapes at full size.</summary>
[TestFixture]
public sealed class ManagedDepthRouterTests : DepthRouterBackendTests
{
    protected override Backend Backend => Backend.Managed;

    private static IEnumerable<TestCaseData> Cases()
    {
        DepthCase[] cases =
        [
            new(1, 1, 17, 2, 16),
            new(2, 2, 97, 1, 59, Score.Distance),
            new(7, 7, 17, 3, 64, NormalizeKeys: true, Brake: 0.7f),
            new(1, 7, 97, 2, 59, Score.Distance, NormalizeKeys: true, Brake: 0.2f, PerHead: true),
            new(64, 64, 1, 2, 16, Score.Distance, Brake: 0.05f),
            new(3, 64, 17, 1, 64, NormalizeKeys: true),
            // A large brake: only the query's own layer counts (P one-hot up to e^-40).
            new(7, 7, 17, 2, 16, Brake: 40f),
            // Logits around 1e3 (q and k x 31 at D = 64: s q.k ~ 1e3), and Distance with key norms in the hundreds.
            new(7, 7, 17, 2, 64, InputScale: 31f),
            new(5, 7, 17, 2, 59, Score.Distance, Brake: 1f, KeyScale: 31f),
            new(7, 7, 17, 2, 64, Score.Distance, NormalizeKeys: true, InputScale: 31f),
        ];
        foreach (var c in cases)
            yield return new TestCaseData(c).SetName($"Managed {c}");
    }

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(DepthCase c) => CheckAgainstReference(c);
}
