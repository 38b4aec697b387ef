using NUnit.Framework;
using RouteKit.Engine.Data;

namespace RouteKit.Tests.Data;

/// <summary>The embedded Fashion-MNIST sample, the split, and (when installed) the Debian package.</summary>
public sealed class FashionMnistTests
{
    private static readonly Lazy<ImageDataset> Sample = new(FashionMnist.LoadSample);

    [Test]
    public void SampleLoadsWithLabelsAndPixelsInRange()
    {
        var data = Sample.Value;
        Assert.That(data.Count, Is.EqualTo(FashionMnist.SampleCount));
        Assert.That((data.Height, data.Width, data.Pixels, data.Classes), Is.EqualTo((28, 28, 784, 10)));
        Assert.That(data.Images, Has.Length.EqualTo(2000 * 784));
        Assert.That(data.Labels, Is.All.InRange(0, 9));
        var perClass = data.Labels.CountBy(l => l).ToDictionary();
        Assert.That(perClass.Keys.Order(), Is.EqualTo(Enumerable.Range(0, 10)));
        Assert.That(perClass.Values, Is.All.InRange(150, 250), "about 200 of each class in 2000");
        Assert.That(data.Images.Min(), Is.EqualTo(0f));
        Assert.That(data.Images.Max(), Is.EqualTo(1f));
        Assert.That(data.Images.Average(), Is.InRange(0.25, 0.32), "Fashion-MNIST's mean pixel is 0.286");
        // The first test images of Fashion-MNIST are an ankle boot, a pullover, two trousers and a shirt.
        Assert.That(data.Labels[..5], Is.EqualTo(new[] { 9, 2, 1, 1, 6 }));
        Assert.That(FashionMnist.ClassNames[data.Labels[0]], Is.EqualTo("Ankle boot"));
    }

    [Test]
    public void SplitIsDeterministicAndDisjoint()
    {
        var data = Sample.Value;
        var (train, validation) = data.Split();
        Assert.That((train.Count, validation.Count), Is.EqualTo((1800, 200)));
        Assert.That(validation.Image(0).ToArray(), Is.EqualTo(data.Image(9).ToArray()));
        Assert.That(train.Image(9).ToArray(), Is.EqualTo(data.Image(10).ToArray()));
        Assert.That(validation.Labels, Is.EqualTo(Enumerable.Range(0, 200).Select(i => data.Labels[10 * i + 9])));
        var (train2, validation2) = FashionMnist.LoadSample().Split();
        Assert.That(train2.Images.AsSpan().SequenceEqual(train.Images), Is.True);
        Assert.That(validation2.Labels, Is.EqualTo(validation.Labels));
        Assert.That(validation.Name, Does.EndWith("validation"));
    }

    [Test]
    public void DatasetRefusesInconsistentArrays()
    {
        Assert.That(() => new ImageDataset("x", new float[7], [0, 1], 2, 2, 10), Throws.ArgumentException.With.Message.Contains("need 8"));
        Assert.That(() => new ImageDataset("x", new float[4], [10], 2, 2, 10), Throws.ArgumentException.With.Message.Contains("outside [0, 10)"));
        Assert.That(() => new ImageDataset("x", [0, 0, 1.5f, 0], [1], 2, 2, 10), Throws.ArgumentException.With.Message.Contains("pixel 2 of image 0"));
        Assert.That(() => new ImageDataset("x", [0, 0, float.NaN, 0], [1], 2, 2, 10), Throws.ArgumentException.With.Message.Contains("NaN"));
    }

    [Test]
    public void InstalledPackageHasTheFullSets()
    {
        Assume.That(FashionMnist.IsInstalled(), Is.True, "dataset-fashion-mnist not installed");
        var test = FashionMnist.LoadInstalled(train: false);
        Assert.That(test.Count, Is.EqualTo(10000));
        Assert.That(test.Images.AsSpan(0, 2000 * 784).SequenceEqual(Sample.Value.Images), Is.True, "the sample is the first 2000 test images");
        Assert.That(test.Labels[..2000], Is.EqualTo(Sample.Value.Labels));
    }
}
