using NUnit.Framework;
using RouteKit.Engine.Experiments;
using RouteKit.Engine.Models;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Engine;

/// <summary>
/// The OOD scoring pipeline of `routekit ood` on problems with a known answer: OOD that deactivates units without
/// changing the L1 norm (NAN sees it, L1 cannot), through FeatureNorms directly and through a model's forward.
/// </summary>
public sealed class OodScoringTests : BackendFixture
{
    protected override Backend Backend => Backend.Managed;

    /// <summary>
    /// 16 units. ID rows: 4 random units active at U(1.5, 2.5) (L1 about 8, L0 = 4, NAN about 2); OOD rows: 8 units at
    /// U(0.75, 1.25) (L1 about 8, L0 = 8, NAN about 1). Same L1 distribution, so L1's AUROC is near 0.5; NAN's is 1.
    /// </summary>
    [Test]
    public void DeactivationIsSeenByNanAndNotByL1()
    {
        const int rows = 300, features = 16;
        var rng = new SplitMix64(5);
        float[] Activations(int active, double low, double high)
        {
            var a = new float[rows * features];
            for (var r = 0; r < rows; r++)
            {
                var units = Enumerable.Range(0, features).OrderBy(_ => rng.NextDouble()).Take(active);
                foreach (var u in units) a[r * features + u] = (float)(low + (high - low) * rng.NextDouble());
            }
            return a;
        }
        var id = OodScoring.Norms(Device, Activations(4, 1.5, 2.5), rows, features);
        var ood = OodScoring.Norms(Device, Activations(8, 0.75, 1.25), rows, features);
        var nan = OodScoring.Compare(id.Nan, ood.Nan);
        var l1 = OodScoring.Compare(id.L1, ood.L1);
        Assert.That(nan.Auroc, Is.EqualTo(1.0), "NAN separates completely");
        Assert.That(nan.Fpr95, Is.EqualTo(0.0));
        // Standard error of an AUROC of 0.5 with 300 + 300 samples is about 0.024.
        Assert.That(l1.Auroc, Is.EqualTo(0.5).Within(0.1), "L1 cannot see deactivation");
        Assert.That(l1.Fpr95, Is.GreaterThan(0.7));
    }

    /// <summary>
    /// A 2-2-2 model with identity weights (hidden = ReLU(x), logits = hidden). ID x ~ (6, -3) + N(0, 0.1^2): one unit
    /// at 6 (NAN 6); OOD x ~ (3, 3) + noise: two units at 3 (NAN 3); L1 about 6 in both. Evaluate's norms must equal the
    /// host's, NAN separates, L1 does not, and MSP and energy see the flat logits of OOD. 300 images in batches of 64
    /// (the last one padded).
    /// </summary>
    [Test]
    public void EvaluateReadsTheHiddenLayerThroughTheModel()
    {
        const int count = 300;
        using var model = new ReluMlp(Device, [2, 2, 2], batch: 64, seed: 1);
        model.LoadParameters([1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0]);
        var rng = new SplitMix64(9);
        float[] Inputs(double a, double b) =>
            Enumerable.Range(0, count).SelectMany(_ => new[] { (float)(a + 0.1 * rng.NextNormal()), (float)(b + 0.1 * rng.NextNormal()) }).ToArray();
        var idInputs = Inputs(6, -3);
        var oodInputs = Inputs(3, 3);
        var id = OodScoring.Evaluate(model, idInputs, classifier: true);
        var ood = OodScoring.Evaluate(model, oodInputs, classifier: true);
        foreach (var (scores, inputs) in new[] { (id, idInputs), (ood, oodInputs) })
            for (var i = 0; i < count; i++)
            {
                double h0 = Math.Max(inputs[2 * i], 0f), h1 = Math.Max(inputs[2 * i + 1], 0f);
                Assert.That(scores.L1[0][i], Is.EqualTo(h0 + h1).Within(1e-5), $"L1 of image {i}");
                Assert.That(scores.Nan[0][i], Is.EqualTo((h0 + h1) / ((h0 > 0 ? 1 : 0) + (h1 > 0 ? 1 : 0))).Within(1e-5), $"NAN of image {i}");
                Assert.That(scores.Logits![2 * i], Is.EqualTo(h0).Within(1e-6), $"logit 0 of image {i}");
            }
        double Auroc(string score) => OodScoring.Compare(id.Score(score, 0), ood.Score(score, 0)).Auroc;
        Assert.That(Auroc(OodScoring.Nan), Is.EqualTo(1.0));
        Assert.That(Auroc(OodScoring.L1), Is.EqualTo(0.5).Within(0.1));
        Assert.That(Auroc(OodScoring.Msp), Is.EqualTo(1.0));
        Assert.That(Auroc(OodScoring.Energy), Is.EqualTo(1.0));
        Assert.That(id.Predictions, Is.All.EqualTo(0));
    }

    /// <summary>The output scores and the combinations on logits written out by hand.</summary>
    [Test]
    public void LogitScoresAndCombinationsFollowTheirDefinitions()
    {
        double[] logits = [2, 0, -1, 0, 0, 0];
        var scores = new ImageScores(2, [[4, 1]], [[3, 1]], [[2, 0]], logits, 3, null);
        var lse0 = Math.Log(Math.Exp(2) + 1 + Math.Exp(-1));
        Assert.That(scores.Score(OodScoring.MaxLogit, 0), Is.EqualTo(new[] { 2.0, 0.0 }));
        Assert.That(scores.Score(OodScoring.Energy, 0)[0], Is.EqualTo(lse0).Within(1e-12));
        Assert.That(scores.Score(OodScoring.Energy, 0)[1], Is.EqualTo(Math.Log(3)).Within(1e-12));
        Assert.That(scores.Score(OodScoring.Msp, 0)[0], Is.EqualTo(Math.Exp(2 - lse0)).Within(1e-12));
        Assert.That(scores.Score(OodScoring.Msp, 0)[1], Is.EqualTo(1 / 3.0).Within(1e-12));
        Assert.That(scores.Score(OodScoring.NanMsp, 0)[0], Is.EqualTo(2 * Math.Exp(2 - lse0)).Within(1e-12));
        Assert.That(scores.Score(OodScoring.NanEnergy, 0)[0], Is.EqualTo(Math.Log(2) + lse0).Within(1e-12));
        Assert.That(scores.Score(OodScoring.NanEnergy, 0)[1], Is.EqualTo(Math.Log(OodScoring.DeadNan) + Math.Log(3)).Within(1e-9), "a dead layer stays finite");
        Assert.That(scores.Predictions, Is.EqualTo(new[] { 0, 0 }));
        Assert.Throws<ArgumentException>(() => scores.Score(OodScoring.Reconstruction, 0));
        Assert.Throws<ArgumentException>(() => scores.Score("bogus", 0));
    }

    /// <summary>The ROC curve runs from (0, 0) to (1, 1), never decreases, and its trapezoid area is the AUROC (ties included).</summary>
    [Test]
    public void RocAreaEqualsAuroc()
    {
        double[] id = [0.9, 0.8, 0.8, 0.4, 0.3];
        double[] ood = [0.8, 0.5, 0.2, 0.1];
        var (fpr, tpr) = OodScoring.Roc(id, ood);
        Assert.That((fpr[0], tpr[0], fpr[^1], tpr[^1]), Is.EqualTo((0.0, 0.0, 1.0, 1.0)));
        var area = 0.0;
        for (var i = 1; i < fpr.Length; i++)
        {
            Assert.That(fpr[i], Is.GreaterThanOrEqualTo(fpr[i - 1]));
            Assert.That(tpr[i], Is.GreaterThanOrEqualTo(tpr[i - 1]));
            area += (fpr[i] - fpr[i - 1]) * (tpr[i] + tpr[i - 1]) / 2;
        }
        Assert.That(area, Is.EqualTo(OodScoring.Compare(id, ood).Auroc).Within(1e-12));
    }
}
