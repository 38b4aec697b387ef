// Per-image OOD scores of a trained ReluMlp (higher = more in-distribution) and their comparison, for `routekit ood`.
//
// Shapes: N images, B the model's batch, C classes, F_l the width of hidden layer l.
//   logits                     [N, C]  host, float64 from the model's float32 output
//   L1, L2, NAN of layer l     [N]     FeatureNorms.Forward on the post-ReLU activations [B, F_l], batch by batch
//
// Scores:
//   msp                 max_c softmax(logits)_c                    (Hendrycks and Gimpel 2017)
//   max_logit           max_c logits_c                             (Hendrycks et al. 2022)
//   energy              logsumexp_c logits_c = -E(x) at T = 1      (Liu et al. 2020)
//   l1, l2              the hidden layer's feature norms
//   nan                 L1 / L0, L0 = #active (> 0) units           (Park et al., ICCV 2023, eq. 10; 0 where L0 = 0)
//   nan_x_msp           NAN * MSP                                   (both positive: the paper's product)
//   nan_x_exp_energy    ln NAN + energy = ln(NAN * sum_c exp(logit_c)): the product of NAN with exp(energy), which is
//                       positive where energy itself may be negative; taken in logs so it never overflows. AUROC and
//                       FPR depend only on the order, which the log keeps. A dead layer (NAN = 0) counts as NAN = 1e-30.
//   neg_recon_error     -(1/P) |x - decoder(encoder(x))|^2 for the autoencoder (the label-free baseline)
// AUROC and FPR at 95% TPR come from OodMetrics (ID = positives).
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Experiments;

/// <summary>Every score of every image of one image set; see the file header.</summary>
internal sealed record ImageScores(int Count, double[][] L1, double[][] L2, double[][] Nan, double[]? Logits, int Classes, double[]? NegReconstruction)
{
    /// <summary>Predicted class of each image (null for a model without logits).</summary>
    public int[]? Predictions => Logits is null ? null : Enumerable.Range(0, Count).Select(i => ArgMax(Logits.AsSpan(i * Classes, Classes))).ToArray();

    /// <summary>The score <paramref name="score"/> (one of <see cref="OodScoring.AllScores"/>) of every image; norms from hidden layer <paramref name="layer"/>.</summary>
    /// <exception cref="ArgumentException">An unknown score, or a logit score of a model without logits.</exception>
    public double[] Score(string score, int layer) => score switch
    {
        OodScoring.L1 => L1[layer],
        OodScoring.L2 => L2[layer],
        OodScoring.Nan => Nan[layer],
        OodScoring.Msp => PerImage(row => Math.Exp(Max(row) - LogSumExp(row))),
        OodScoring.MaxLogit => PerImage(Max),
        OodScoring.Energy => PerImage(LogSumExp),
        OodScoring.NanMsp => Combine(Score(OodScoring.Msp, layer), Nan[layer], (msp, nan) => nan * msp),
        OodScoring.NanEnergy => Combine(Score(OodScoring.Energy, layer), Nan[layer], (energy, nan) => Math.Log(Math.Max(nan, OodScoring.DeadNan)) + energy),
        OodScoring.Reconstruction => NegReconstruction ?? throw new ArgumentException("this model has no reconstruction error (not an autoencoder).", nameof(score)),
        _ => throw new ArgumentException($"unknown score '{score}'; known: {string.Join(", ", OodScoring.AllScores)}.", nameof(score)),
    };

    private double[] PerImage(Func<double[], double> f)
    {
        if (Logits is null) throw new ArgumentException("this model has no logits (an autoencoder): only norm and reconstruction scores exist.");
        var row = new double[Classes];
        var result = new double[Count];
        for (var i = 0; i < Count; i++)
        {
            Logits.AsSpan(i * Classes, Classes).CopyTo(row);
            result[i] = f(row);
        }
        return result;
    }

    private static double[] Combine(double[] a, double[] nan, Func<double, double, double> f) => a.Select((x, i) => f(x, nan[i])).ToArray();

    private static double Max(double[] row) => row.Max();

    private static double LogSumExp(double[] row)
    {
        var m = row.Max();
        return m + Math.Log(row.Sum(x => Math.Exp(x - m)));
    }

    private static int ArgMax(ReadOnlySpan<double> row)
    {
        var best = 0;
        for (var i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }
}

/// <summary>Runs a model over an image set and compares ID and OOD scores.</summary>
internal static class OodScoring
{
    public const string Msp = "msp", MaxLogit = "max_logit", Energy = "energy", L1 = "l1", L2 = "l2", Nan = "nan",
        NanMsp = "nan_x_msp", NanEnergy = "nan_x_exp_energy", Reconstruction = "neg_recon_error";

    /// <summary>The NAN a layer with no active unit counts as in <see cref="NanEnergy"/> (whose log would be -infinity).</summary>
    public const double DeadNan = 1e-30;

    /// <summary>Every score, in table order.</summary>
    public static IReadOnlyList<string> AllScores { get; } = [Msp, MaxLogit, Energy, L1, L2, Nan, NanMsp, NanEnergy, Reconstruction];

    /// <summary>The scores of a classifier, in table order.</summary>
    public static IReadOnlyList<string> ClassifierScores { get; } = [Msp, MaxLogit, Energy, L1, L2, Nan, NanMsp, NanEnergy];

    /// <summary>The scores of the label-free autoencoder.</summary>
    public static IReadOnlyList<string> AutoencoderScores { get; } = [L1, L2, Nan, Reconstruction];

    /// <summary>The scores that read a hidden layer (the others read only the output).</summary>
    public static bool UsesLayer(string score) => score is L1 or L2 or Nan or NanMsp or NanEnergy;

    /// <summary>
    /// Runs <paramref name="model"/> over <paramref name="images"/> <c>[N, w_0]</c> in batches of its batch size (the last
    /// padded with zero rows, whose results are dropped) and returns every score of every image. With
    /// <paramref name="classifier"/> the output is read as logits, otherwise as a reconstruction of the input.
    /// </summary>
    /// <exception cref="ArgumentException">The images are not whole rows of the model's input width, or there are none.</exception>
    public static ImageScores Evaluate(ReluMlp model, float[] images, bool classifier)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        int inputs = model.Widths[0], outputs = model.Widths[^1], batch = model.Batch, layers = model.HiddenLayers;
        if (images.Length == 0 || images.Length % inputs != 0)
            throw new ArgumentException($"images hold {images.Length} floats; wanted a positive multiple of the model's input width {inputs}.", nameof(images));
        var count = images.Length / inputs;
        var device = model.Device;
        var norms = Enumerable.Range(0, layers).Select(_ => NormOutput(device, batch)).ToArray();
        var l1 = Jagged(layers, count);
        var l2 = Jagged(layers, count);
        var nan = Jagged(layers, count);
        var logits = classifier ? new double[count * outputs] : null;
        var recon = classifier ? null : new double[count];
        var input = new float[batch * inputs];
        var output = new float[batch * outputs];
        var row = new float[batch];
        try
        {
            for (var start = 0; start < count; start += batch)
            {
                var rows = Math.Min(batch, count - start);
                Array.Clear(input);
                images.AsSpan(start * inputs, rows * inputs).CopyTo(input);
                model.Input.CopyFrom(input);
                model.Forward();
                for (var l = 0; l < layers; l++)
                {
                    FeatureNorms.Forward(model.Hidden(l), norms[l]);
                    foreach (var (tensor, target) in new[] { (norms[l].L1, l1[l]), (norms[l].L2, l2[l]), (norms[l].Nan, nan[l]) })
                    {
                        tensor.CopyTo(row);
                        for (var i = 0; i < rows; i++) target[start + i] = row[i];
                    }
                }
                model.Output.CopyTo(output);
                for (var i = 0; i < rows; i++)
                {
                    if (logits is not null)
                    {
                        for (var k = 0; k < outputs; k++) logits[(start + i) * outputs + k] = output[i * outputs + k];
                        continue;
                    }
                    var err = 0.0;
                    for (var k = 0; k < outputs; k++)
                    {
                        var d = (double)output[i * outputs + k] - input[i * inputs + k];
                        err += d * d;
                    }
                    recon![start + i] = -err / outputs;
                }
            }
        }
        finally
        {
            foreach (var n in norms) n.Dispose();
        }
        return new ImageScores(count, l1, l2, nan, logits, classifier ? outputs : 0, recon);
    }

    /// <summary>L1, L2 and NAN of every row of <paramref name="activations"/> <c>[rows, features]</c>, by FeatureNorms on <paramref name="device"/>.</summary>
    public static (double[] L1, double[] L2, double[] Nan) Norms(Device device, float[] activations, int rows, int features)
    {
        using var x = device.FromArray(activations, rows, features);
        using var o = FeatureNorms.Forward(x);
        static double[] Read(Tensor t) => Array.ConvertAll(t.ToArray(), v => (double)v);
        return (Read(o.L1), Read(o.L2), Read(o.Nan));
    }

    /// <summary>AUROC (ID as positives) and FPR at 95% TPR of ID scores against OOD scores.</summary>
    public static (double Auroc, double Fpr95) Compare(double[] id, double[] ood)
    {
        var (scores, labels) = Join(id, ood);
        return (OodMetrics.Auroc(scores, labels), OodMetrics.FprAtTpr(scores, labels, 0.95));
    }

    /// <summary>The ROC curve, (FPR, TPR) at every distinct threshold from the highest down, starting at (0, 0).</summary>
    public static (double[] Fpr, double[] Tpr) Roc(double[] id, double[] ood)
    {
        var (scores, labels) = Join(id, ood);
        var order = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ToArray();
        var fpr = new List<double> { 0 };
        var tpr = new List<double> { 0 };
        int tp = 0, fp = 0;
        for (var k = 0; k < order.Length; k++)
        {
            if (labels[order[k]]) tp++;
            else fp++;
            if (k + 1 < order.Length && scores[order[k + 1]] == scores[order[k]]) continue;
            fpr.Add((double)fp / ood.Length);
            tpr.Add((double)tp / id.Length);
        }
        return ([.. fpr], [.. tpr]);
    }

    private static (double[] Scores, bool[] Labels) Join(double[] id, double[] ood)
    {
        ArgumentNullException.ThrowIfNull(id);
        ArgumentNullException.ThrowIfNull(ood);
        return ([.. id, .. ood], [.. Enumerable.Repeat(true, id.Length), .. Enumerable.Repeat(false, ood.Length)]);
    }

    private static FeatureNormOutput NormOutput(Device device, int rows) =>
        new(device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows));

    private static double[][] Jagged(int outer, int inner) => Enumerable.Range(0, outer).Select(_ => new double[inner]).ToArray();
}
