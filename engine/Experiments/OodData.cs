// The image sets of `routekit ood`: synthetic OOD sets made from in-distribution images, and noise.
//
// Shapes: N images of H x W pixels, P = H * W; every set is float32 [N, P] row-major with pixels in [0, 1].
//
// - Flips mirror the columns (horizontal) or the rows (vertical).
// - Invert is 1 - x.
// - Jigsaw: the top-left 27 x 27 pixels of a 28 x 28 image are cut into a 3 x 3 grid of 9 x 9 tiles, which are permuted
//   (a uniformly random permutation per image, drawn again when it is the identity); the last row and column (28 = 3 * 9
//   + 1, nearly always background in Fashion-MNIST) stay where they are. Equal tiles keep every tile whole: with
//   9/9/10 bands a 10-pixel tile would not fit a 9-pixel slot. In general tiles are floor(H/3) x floor(W/3) and the
//   remaining bottom rows and right columns stay.
// - Gaussian noise: each pixel N(mean, std^2) with the mean and standard deviation of the ID training pixels, clipped
//   to [0, 1]; uniform noise: each pixel U[0, 1).
// Every random draw comes from SplitMix64 seeded from (seed, a per-set constant), so a set is the same on every run.
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Experiments;

/// <summary>Deterministic image transforms and noise images; see the file header.</summary>
internal static class OodData
{
    /// <summary>Tiles per side of the jigsaw grid.</summary>
    public const int JigsawGrid = 3;

    /// <summary>Each image mirrored left to right.</summary>
    public static float[] FlipHorizontal(float[] images, int height, int width) =>
        Remap(images, height, width, (r, c) => (r, width - 1 - c));

    /// <summary>Each image mirrored top to bottom.</summary>
    public static float[] FlipVertical(float[] images, int height, int width) =>
        Remap(images, height, width, (r, c) => (height - 1 - r, c));

    /// <summary>1 - x for every pixel.</summary>
    public static float[] Invert(float[] images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var result = new float[images.Length];
        for (var i = 0; i < images.Length; i++) result[i] = 1f - images[i];
        return result;
    }

    /// <summary>
    /// Each image's tiles permuted (see the file header): returns the images and, per image, the permutation, where
    /// <c>perm[slot] = tile</c> means the tile at grid position <c>tile</c> (row-major) lands at position <c>slot</c>.
    /// </summary>
    /// <exception cref="ArgumentException">An image side is below <see cref="JigsawGrid"/> or the array is not N whole images.</exception>
    public static (float[] Images, int[][] Permutations) Jigsaw(float[] images, int height, int width, int seed)
    {
        var count = Count(images, height, width);
        if (height < JigsawGrid || width < JigsawGrid)
            throw new ArgumentException($"images are {height} x {width}; a {JigsawGrid} x {JigsawGrid} jigsaw needs both sides at least {JigsawGrid}.", nameof(height));
        int th = height / JigsawGrid, tw = width / JigsawGrid, tiles = JigsawGrid * JigsawGrid, p = height * width;
        var rng = new SplitMix64(Seed(seed, 0x4A16));
        var result = (float[])images.Clone();
        var perms = new int[count][];
        for (var n = 0; n < count; n++)
        {
            var perm = Permutation(rng, tiles);
            perms[n] = perm;
            for (var slot = 0; slot < tiles; slot++)
            {
                int sr = slot / JigsawGrid * th, sc = slot % JigsawGrid * tw;
                int tr = perm[slot] / JigsawGrid * th, tc = perm[slot] % JigsawGrid * tw;
                for (var r = 0; r < th; r++)
                    Array.Copy(images, n * p + (tr + r) * width + tc, result, n * p + (sr + r) * width + sc, tw);
            }
        }
        return (result, perms);
    }

    /// <summary><paramref name="count"/> images of N(mean, std^2) pixels clipped to [0, 1].</summary>
    public static float[] GaussianNoise(int count, int pixels, double mean, double std, int seed)
    {
        var rng = new SplitMix64(Seed(seed, 0x6A55));
        var result = new float[checked(count * pixels)];
        for (var i = 0; i < result.Length; i++) result[i] = (float)Math.Clamp(mean + std * rng.NextNormal(), 0, 1);
        return result;
    }

    /// <summary><paramref name="count"/> images of U[0, 1) pixels.</summary>
    public static float[] UniformNoise(int count, int pixels, int seed)
    {
        var rng = new SplitMix64(Seed(seed, 0x0F1A));
        var result = new float[checked(count * pixels)];
        for (var i = 0; i < result.Length; i++) result[i] = (float)rng.NextDouble();
        return result;
    }

    /// <summary>Mean and standard deviation of every pixel of every image (float64).</summary>
    public static (double Mean, double Std) PixelMoments(float[] images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Length == 0) throw new ArgumentException("no pixels: the moments of an empty set are undefined.", nameof(images));
        double sum = 0, sq = 0;
        foreach (var x in images) sum += x;
        var mean = sum / images.Length;
        foreach (var x in images) sq += (x - mean) * (x - mean);
        return (mean, Math.Sqrt(sq / images.Length));
    }

    // Fisher-Yates, drawn again while it is the identity (a "shuffled" image must differ from the original).
    private static int[] Permutation(SplitMix64 rng, int n)
    {
        var perm = new int[n];
        do
        {
            for (var i = 0; i < n; i++) perm[i] = i;
            for (var i = n - 1; i > 0; i--)
            {
                var j = (int)rng.NextInt(i + 1);
                (perm[i], perm[j]) = (perm[j], perm[i]);
            }
        }
        while (perm.Select((t, i) => t == i).All(same => same));
        return perm;
    }

    // result pixel (r, c) = source pixel map(r, c), per image.
    private static float[] Remap(float[] images, int height, int width, Func<int, int, (int R, int C)> map)
    {
        var count = Count(images, height, width);
        var p = height * width;
        var result = new float[images.Length];
        for (var n = 0; n < count; n++)
            for (var r = 0; r < height; r++)
                for (var c = 0; c < width; c++)
                {
                    var (sr, sc) = map(r, c);
                    result[n * p + r * width + c] = images[n * p + sr * width + sc];
                }
        return result;
    }

    private static int Count(float[] images, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (height < 1 || width < 1) throw new ArgumentException($"image size {height} x {width}; wanted both at least 1.", nameof(height));
        if (images.Length % (height * width) != 0)
            throw new ArgumentException($"images hold {images.Length} floats, not a whole number of {height} x {width} images.", nameof(images));
        return images.Length / (height * width);
    }

    private static ulong Seed(int seed, ulong set) => (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ set * 0xD1B54A32D192ED03UL;
}
