// Fashion-MNIST (Zalando Research; MIT): 28 x 28 greyscale images of 10 kinds of clothing, 60000 train and 10000 test.
// Read from Debian's dataset-fashion-mnist package (/usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz) when installed;
// otherwise from the committed sample, the first 2000 test images (engine/Data/samples/README.md).
namespace RouteKit.Engine.Data;

/// <summary>Fashion-MNIST as an <see cref="ImageDataset"/>: the installed Debian package, or the embedded 2000-image sample.</summary>
public static class FashionMnist
{
    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> package puts the four IDX files.</summary>
    public const string InstalledDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Number of images in the embedded sample (the first of the t10k test set).</summary>
    public const int SampleCount = 2000;

    /// <summary>Side of every image in pixels (28 x 28).</summary>
    public const int Side = 28;

    /// <summary>The ten classes, indexed by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    private const string SampleImages = "fashion-mnist-t10k-2000-images-idx3-ubyte.gz";
    private const string SampleLabels = "fashion-mnist-t10k-2000-labels-idx1-ubyte.gz";

    /// <summary>True when <paramref name="directory"/> holds the four gzip IDX files of the full dataset.</summary>
    public static bool IsInstalled(string directory = InstalledDirectory) =>
        new[] { true, false }.All(train => File.Exists(ImagesPath(directory, train)) && File.Exists(LabelsPath(directory, train)));

    /// <summary>
    /// The data for a default run: the installed 60000-image train set when the package is present, else the embedded
    /// sample. Split it with <see cref="ImageDataset.Split"/>; <see cref="ImageDataset.Name"/> says which was read.
    /// </summary>
    public static ImageDataset Load() => IsInstalled() ? LoadInstalled(train: true) : LoadSample();

    /// <summary>Reads the train (60000) or test (10000) set from an installed copy.</summary>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="InvalidDataException">A file is invalid or the pair does not match.</exception>
    public static ImageDataset LoadInstalled(bool train, string directory = InstalledDirectory)
    {
        string images = ImagesPath(directory, train);
        string labels = LabelsPath(directory, train);
        return Idx.ReadImages(images, labels, $"fashion-mnist {(train ? "train" : "t10k")} ({directory})");
    }

    /// <summary>Reads the embedded sample: the first <see cref="SampleCount"/> images and labels of the test set.</summary>
    public static ImageDataset LoadSample() =>
        Samples.ReadImages(SampleImages, SampleLabels, $"fashion-mnist t10k first {SampleCount} (embedded sample)");

    private static string ImagesPath(string directory, bool train) => Path.Combine(directory, $"{(train ? "train" : "t10k")}-images-idx3-ubyte.gz");

    private static string LabelsPath(string directory, bool train) => Path.Combine(directory, $"{(train ? "train" : "t10k")}-labels-idx1-ubyte.gz");
}
