using NUnit.Framework;
using RouteKit.Engine.Data;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>The OOD image transforms of `routekit ood`, pixel by pixel on tiny images, and the committed MNIST sample.</summary>
public sealed class OodDataTests
{
    // Two 3 x 4 images whose pixel values encode (image, row, column), so every move is visible.
    private const int H = 3, W = 4;
    private static float[] Tiny() => Enumerable.Range(0, 2 * H * W).Select(i => i / 100f).ToArray();
    private static float Pixel(float[] images, int n, int r, int c, int h = H, int w = W) => images[n * h * w + r * w + c];

    [Test]
    public void FlipsMirrorColumnsOrRows()
    {
        var x = Tiny();
        var horizontal = OodData.FlipHorizontal(x, H, W);
        var vertical = OodData.FlipVertical(x, H, W);
        for (var n = 0; n < 2; n++)
            for (var r = 0; r < H; r++)
                for (var c = 0; c < W; c++)
                {
                    Assert.That(Pixel(horizontal, n, r, c), Is.EqualTo(Pixel(x, n, r, W - 1 - c)), $"flip_h image {n} ({r}, {c})");
                    Assert.That(Pixel(vertical, n, r, c), Is.EqualTo(Pixel(x, n, H - 1 - r, c)), $"flip_v image {n} ({r}, {c})");
                }
        Assert.That(OodData.FlipHorizontal(horizontal, H, W), Is.EqualTo(x), "twice is the identity");
    }

    [Test]
    public void InvertIsOneMinusX()
    {
        float[] x = [0f, 0.25f, 1f, 0.5f];
        Assert.That(OodData.Invert(x), Is.EqualTo(new[] { 1f, 0.75f, 0f, 0.5f }));
    }

    /// <summary>
    /// A 7 x 8 image: 2 x 2 tiles (floor(7/3), floor(8/3)) cover the top-left 6 x 6; row 6 and columns 6-7 stay. Every
    /// tile lands whole where the returned permutation says, every permutation differs from the identity, and the seed
    /// fixes the result.
    /// </summary>
    [Test]
    public void JigsawMovesWholeTilesAndKeepsTheRemainder()
    {
        const int h = 7, w = 8, count = 20;
        var x = Enumerable.Range(0, count * h * w).Select(i => (i % 997) / 997f).ToArray();
        var (y, perms) = OodData.Jigsaw(x, h, w, seed: 3);
        Assert.That(perms, Has.Length.EqualTo(count));
        for (var n = 0; n < count; n++)
        {
            Assert.That(perms[n].Order(), Is.EqualTo(Enumerable.Range(0, 9)), "a permutation of the 9 tiles");
            Assert.That(perms[n], Is.Not.EqualTo(Enumerable.Range(0, 9)), "never the identity");
            for (var r = 0; r < h; r++)
                for (var c = 0; c < w; c++)
                {
                    float expected;
                    if (r >= 6 || c >= 6) expected = Pixel(x, n, r, c, h, w);
                    else
                    {
                        var tile = perms[n][r / 2 * 3 + c / 2];
                        expected = Pixel(x, n, tile / 3 * 2 + r % 2, tile % 3 * 2 + c % 2, h, w);
                    }
                    Assert.That(Pixel(y, n, r, c, h, w), Is.EqualTo(expected), $"image {n} ({r}, {c})");
                }
        }
        Assert.That(OodData.Jigsaw(x, h, w, seed: 3).Images, Is.EqualTo(y), "same seed, same images");
        Assert.That(OodData.Jigsaw(x, h, w, seed: 4).Images, Is.Not.EqualTo(y), "another seed, other permutations");
    }

    [Test]
    public void JigsawOfFashionMnistSizeUsesNineByNineTiles()
    {
        var x = Enumerable.Range(0, 28 * 28).Select(i => i / 784f).ToArray();
        var (y, perms) = OodData.Jigsaw(x, 28, 28, seed: 1);
        var tile = perms[0][0];
        Assert.That(y[8 * 28 + 8], Is.EqualTo(x[(tile / 3 * 9 + 8) * 28 + tile % 3 * 9 + 8]), "slot 0's last pixel is its tile's (9 x 9)");
        for (var i = 0; i < 28; i++)
        {
            Assert.That(y[27 * 28 + i], Is.EqualTo(x[27 * 28 + i]), "row 27 stays");
            Assert.That(y[i * 28 + 27], Is.EqualTo(x[i * 28 + 27]), "column 27 stays");
        }
    }

    [Test]
    public void NoiseIsInRangeSeededAndHasTheAskedMoments()
    {
        var gaussian = OodData.GaussianNoise(50, 784, mean: 0.3, std: 0.1, seed: 2);
        var uniform = OodData.UniformNoise(50, 784, seed: 2);
        Assert.That(gaussian.Concat(uniform).All(v => v is >= 0f and <= 1f), "pixels in [0, 1]");
        var (gm, gs) = OodData.PixelMoments(gaussian);
        var (um, us) = OodData.PixelMoments(uniform);
        // 39,200 pixels: the sample moments are within a few 1e-3 (clipping at 0 and 1 is 3 and 7 std away here).
        Assert.That(gm, Is.EqualTo(0.3).Within(0.003));
        Assert.That(gs, Is.EqualTo(0.1).Within(0.003));
        Assert.That(um, Is.EqualTo(0.5).Within(0.01));
        Assert.That(us, Is.EqualTo(Math.Sqrt(1 / 12.0)).Within(0.01));
        Assert.That(OodData.GaussianNoise(50, 784, 0.3, 0.1, 2), Is.EqualTo(gaussian), "same seed, same images");
        var clipped = OodData.GaussianNoise(10, 100, mean: 0.5, std: 5, seed: 1);
        Assert.That(clipped.Count(v => v == 0f) + clipped.Count(v => v == 1f), Is.GreaterThan(500), "wide noise is clipped to 0 and 1");
    }

    [Test]
    public void BadShapesAreRefused()
    {
        Assert.Throws<ArgumentException>(() => OodData.FlipHorizontal(new float[13], 3, 4));
        Assert.Throws<ArgumentException>(() => OodData.Jigsaw(new float[4], 2, 2, 1));
        Assert.Throws<ArgumentException>(() => OodData.PixelMoments([]));
    }

    [Test]
    public void MnistSampleHasOneHundredOfEachDigit()
    {
        var mnist = MnistJson.LoadSample();
        Assert.That(mnist.Count, Is.EqualTo(MnistJson.SampleCount));
        Assert.That((mnist.Height, mnist.Width), Is.EqualTo((28, 28)));
        for (var d = 0; d < 10; d++)
            Assert.That(mnist.Labels.Skip(100 * d).Take(100), Is.All.EqualTo(d), $"images {100 * d}..{100 * d + 99}");
        // Digits are white strokes on black: most pixels are 0 and every image has some ink.
        Assert.That(mnist.Images.Count(v => v == 0f), Is.GreaterThan(mnist.Images.Length / 2));
        for (var i = 0; i < mnist.Count; i++) Assert.That(mnist.Image(i).ToArray().Max(), Is.GreaterThan(0.5f), $"image {i}");
    }
}
