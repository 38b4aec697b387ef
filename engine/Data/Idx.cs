// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):
//
//   bytes 0-1   0x00 0x00
//   byte  2     element type: 0x08 unsigned byte (the only one read here), 0x09 signed byte, 0x0B int16, 0x0C int32,
//               0x0D float32, 0x0E float64
//   byte  3     number of dimensions d >= 1
//   then        d sizes, each a big-endian int32
//   then        the elements, row-major (last dimension fastest), nothing after them
//
// Files may be gzip-compressed (recognised by the gzip magic 0x1F 0x8B, whatever the file name says). Every check fails
// with an InvalidDataException that names the source and says what was expected and what was found.
using System.Buffers.Binary;
using System.IO.Compression;

namespace RouteKit.Engine.Data;

/// <summary>The contents of an unsigned-byte IDX file: its sizes and its elements, row-major.</summary>
public sealed class IdxArray
{
    /// <summary>Wraps <paramref name="data"/> (no copy) after checking that it holds exactly the product of <paramref name="shape"/>.</summary>
    /// <exception cref="ArgumentException">No dimensions, a negative size, or a data length that does not match.</exception>
    public IdxArray(int[] shape, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        if (shape.Length is 0 or > 255)
            throw new ArgumentException($"an IDX array has 1 to 255 dimensions, got {shape.Length}", nameof(shape));
        long count = 1;
        foreach (int size in shape)
        {
            if (size < 0)
                throw new ArgumentException($"sizes must not be negative, got [{string.Join(", ", shape)}]", nameof(shape));
            count *= size;
            if (count > Array.MaxLength)
                throw new ArgumentException($"sizes [{string.Join(", ", shape)}] hold more elements than an array can", nameof(shape));
        }
        if (data.LongLength != count)
            throw new ArgumentException($"sizes [{string.Join(", ", shape)}] need {count} bytes, data has {data.LongLength}", nameof(data));
        Shape = shape;
        Data = data;
    }

    /// <summary>The sizes, outermost first (for images: count, rows, columns).</summary>
    public int[] Shape { get; }

    /// <summary>The elements, row-major (last dimension fastest).</summary>
    public byte[] Data { get; }
}

/// <summary>Reads and writes IDX files of unsigned bytes, raw or gzip-compressed, and turns image/label pairs into an <see cref="ImageDataset"/>.</summary>
public static class Idx
{
    /// <summary>The element-type byte for unsigned bytes, the only type this reader accepts.</summary>
    public const byte UnsignedByte = 0x08;

    private static readonly byte[] GzipMagic = [0x1F, 0x8B];

    /// <summary>Reads an IDX file, raw or gzip-compressed.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid unsigned-byte IDX file; the message says why.</exception>
    public static IdxArray Read(string path)
    {
        using var stream = File.OpenRead(path);
        return Read(stream, path);
    }

    /// <summary>Reads an IDX file, raw or gzip-compressed, from <paramref name="stream"/> to its end.</summary>
    /// <param name="stream">The file's bytes.</param>
    /// <param name="source">A name for error messages (a path or resource name).</param>
    /// <exception cref="InvalidDataException">The bytes are not a valid unsigned-byte IDX file; the message says why.</exception>
    public static IdxArray Read(Stream stream, string source)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        return bytes.StartsWith(GzipMagic) ? Parse(Gunzip(buffer, source), source) : Parse(bytes, source);
    }

    /// <summary>Parses the bytes of an uncompressed IDX file.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid unsigned-byte IDX file; the message says why.</exception>
    public static IdxArray Parse(ReadOnlySpan<byte> bytes, string source)
    {
        if (bytes.Length < 4)
            throw new InvalidDataException($"{source}: truncated: {bytes.Length} bytes, shorter than the 4-byte IDX magic number");
        if (bytes[0] != 0 || bytes[1] != 0)
            throw new InvalidDataException(
                $"{source}: not an IDX file: magic number 0x{bytes[0]:X2}{bytes[1]:X2}{bytes[2]:X2}{bytes[3]:X2}, expected 0x000008dd (0x0000, type, dimensions)");
        byte type = bytes[2];
        if (type != UnsignedByte)
            throw new InvalidDataException(
                $"{source}: element type 0x{type:X2} ({TypeName(type)}) is not supported: only 0x08 (unsigned byte) is read");
        int rank = bytes[3];
        if (rank == 0)
            throw new InvalidDataException($"{source}: the header says 0 dimensions; an IDX file has at least 1");
        int header = 4 + 4 * rank;
        if (bytes.Length < header)
            throw new InvalidDataException($"{source}: truncated: {rank} dimensions need a {header}-byte header, the file has {bytes.Length} bytes");
        var shape = new int[rank];
        long count = 1;
        for (int d = 0; d < rank; d++)
        {
            uint size = BinaryPrimitives.ReadUInt32BigEndian(bytes[(4 + 4 * d)..]);
            if (size > int.MaxValue)
                throw new InvalidDataException($"{source}: size {d} is {size}, larger than any array");
            shape[d] = (int)size;
            count *= size;
            if (count > Array.MaxLength)
                throw new InvalidDataException($"{source}: sizes [{string.Join(", ", shape[..(d + 1)])}...] hold more elements than an array can");
        }
        long have = bytes.Length - header;
        if (have < count)
            throw new InvalidDataException(
                $"{source}: truncated: sizes [{string.Join(", ", shape)}] need {count} data bytes after the {header}-byte header, the file has {have}");
        if (have > count)
            throw new InvalidDataException(
                $"{source}: {have - count} bytes after the data: sizes [{string.Join(", ", shape)}] need {count} bytes, the file has {have}");
        return new IdxArray(shape, bytes[header..].ToArray());
    }

    /// <summary>Writes <paramref name="array"/> as an uncompressed unsigned-byte IDX file.</summary>
    public static void Write(Stream stream, IdxArray array)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(array);
        Span<byte> word = stackalloc byte[4];
        stream.Write([0, 0, UnsignedByte, (byte)array.Shape.Length]);
        foreach (int size in array.Shape)
        {
            BinaryPrimitives.WriteInt32BigEndian(word, size);
            stream.Write(word);
        }
        stream.Write(array.Data);
    }

    /// <summary>Reads an image file (<c>[N, rows, columns]</c>) and its label file (<c>[N]</c>), raw or gzip-compressed.</summary>
    /// <exception cref="InvalidDataException">Either file is invalid, or they do not match; the message says why.</exception>
    public static ImageDataset ReadImages(string imagesPath, string labelsPath, string name, int classes = 10) =>
        ToImages(Read(imagesPath), imagesPath, Read(labelsPath), labelsPath, name, classes);

    /// <summary>
    /// Turns an image array <c>[N, rows, columns]</c> and a label array <c>[N]</c> into a dataset, pixels scaled by 1/255.
    /// </summary>
    /// <exception cref="InvalidDataException">Wrong ranks, different counts, or a label outside [0, classes).</exception>
    public static ImageDataset ToImages(IdxArray images, string imagesSource, IdxArray labels, string labelsSource, string name, int classes = 10)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        if (images.Shape.Length != 3)
            throw new InvalidDataException($"{imagesSource}: images need 3 dimensions [count, rows, columns], the file has [{string.Join(", ", images.Shape)}]");
        if (labels.Shape.Length != 1)
            throw new InvalidDataException($"{labelsSource}: labels need 1 dimension [count], the file has [{string.Join(", ", labels.Shape)}]");
        if (images.Shape[0] != labels.Shape[0])
            throw new InvalidDataException($"{imagesSource} holds {images.Shape[0]} images but {labelsSource} holds {labels.Shape[0]} labels");
        if (images.Shape[1] == 0 || images.Shape[2] == 0)
            throw new InvalidDataException($"{imagesSource}: images of {images.Shape[1]} x {images.Shape[2]} pixels");
        var label = new int[labels.Data.Length];
        for (int i = 0; i < label.Length; i++)
        {
            label[i] = labels.Data[i];
            if (label[i] >= classes)
                throw new InvalidDataException($"{labelsSource}: label {i} is {label[i]}, outside [0, {classes})");
        }
        var pixels = new float[images.Data.Length];
        for (int i = 0; i < pixels.Length; i++)
            pixels[i] = images.Data[i] / 255f;
        return new ImageDataset(name, pixels, label, images.Shape[1], images.Shape[2], classes);
    }

    private static byte[] Gunzip(MemoryStream compressed, string source)
    {
        compressed.Position = 0;
        using var output = new MemoryStream();
        try
        {
            using var gzip = new GZipStream(compressed, CompressionMode.Decompress, leaveOpen: true);
            gzip.CopyTo(output);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"{source}: not a valid gzip stream (corrupt or truncated): {e.Message}", e);
        }
        return output.ToArray();
    }

    private static string TypeName(byte type) => type switch
    {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "int16",
        0x0C => "int32",
        0x0D => "float32",
        0x0E => "float64",
        _ => "not an IDX type",
    };
}
