using System.IO.Compression;
using NUnit.Framework;
using RouteKit.Engine.Data;

namespace RouteKit.Tests.Data;

/// <summary>The IDX reader on hand-built files: round trips, gzip, and clear refusals of broken files.</summary>
public sealed class IdxTests
{
    // A [2, 3, 5] array written out byte by byte, as the format describes it.
    private static readonly byte[] HandBuilt =
    [
        0x00, 0x00, 0x08, 0x03,
        0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x03,
        0x00, 0x00, 0x00, 0x05,
        .. Enumerable.Range(0, 30).Select(i => (byte)(i * 8)),
    ];

    [Test]
    public void ParsesAHandBuiltFile()
    {
        var array = Idx.Parse(HandBuilt, "hand-built");
        Assert.That(array.Shape, Is.EqualTo(new[] { 2, 3, 5 }));
        Assert.That(array.Data, Is.EqualTo(HandBuilt[16..]));
        using var written = new MemoryStream();
        Idx.Write(written, array);
        Assert.That(written.ToArray(), Is.EqualTo(HandBuilt));
    }

    [TestCase(new[] { 1 })]
    [TestCase(new[] { 7 })]
    [TestCase(new[] { 0 })]
    [TestCase(new[] { 3, 1, 1 })]
    [TestCase(new[] { 5, 0, 3 })]
    [TestCase(new[] { 17, 3, 29 })]
    [TestCase(new[] { 2, 3, 1, 5, 1 })]
    [TestCase(new[] { 256, 1 })]
    public void RoundTripsOddSizes(int[] shape)
    {
        var data = new byte[shape.Aggregate(1, (a, b) => a * b)];
        new Random(shape.Sum()).NextBytes(data);
        var array = new IdxArray(shape, data);
        foreach (bool compressed in new[] { false, true })
        {
            var back = Idx.Read(new MemoryStream(Bytes(array, compressed)), "round trip");
            Assert.That(back.Shape, Is.EqualTo(shape), $"compressed {compressed}");
            Assert.That(back.Data, Is.EqualTo(data), $"compressed {compressed}");
        }
    }

    [Test]
    public void ReadsGzipFilesFromDisk()
    {
        string path = Path.Combine(Path.GetTempPath(), $"routekit-idx-{Guid.NewGuid():N}.gz");
        try
        {
            File.WriteAllBytes(path, Gzip(HandBuilt));
            var array = Idx.Read(path);
            Assert.That(array.Shape, Is.EqualTo(new[] { 2, 3, 5 }));
            Assert.That(array.Data, Is.EqualTo(HandBuilt[16..]));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void RefusesTruncatedFiles()
    {
        Assert.That(Refusal(HandBuilt[..^1]), Does.Contain("truncated").And.Contain("need 30 data bytes").And.Contain("has 29"));
        Assert.That(Refusal(HandBuilt[..10]), Does.Contain("truncated").And.Contain("16-byte header"));
        Assert.That(Refusal(HandBuilt[..3]), Does.Contain("truncated"));
        Assert.That(Refusal([]), Does.Contain("truncated"));
        var gz = Gzip(HandBuilt);
        Assert.That(Refusal(gz[..(gz.Length / 2)]), Does.Contain("truncated"));
    }

    [Test]
    public void RefusesTrailingBytes() =>
        Assert.That(Refusal([.. HandBuilt, 0]), Does.Contain("1 bytes after the data"));

    [Test]
    public void RefusesWrongMagic()
    {
        Assert.That(Refusal([0x01, 0x00, 0x08, 0x01, 0, 0, 0, 0]), Does.Contain("not an IDX file").And.Contain("0x01000801"));
        Assert.That(Refusal("%PDF-1.4 and more"u8.ToArray()), Does.Contain("not an IDX file"));
        Assert.That(Refusal([0x00, 0x00, 0x08, 0x00]), Does.Contain("0 dimensions"));
    }

    [TestCase((byte)0x0D, "float32")]
    [TestCase((byte)0x09, "signed byte")]
    [TestCase((byte)0x07, "not an IDX type")]
    public void RefusesOtherElementTypes(byte type, string name)
    {
        var bytes = HandBuilt.ToArray();
        bytes[2] = type;
        Assert.That(Refusal(bytes), Does.Contain($"0x{type:X2} ({name}) is not supported"));
    }

    [Test]
    public void PairsImagesWithLabels()
    {
        var images = new IdxArray([3, 2, 2], [0, 255, 51, 102, 1, 2, 3, 4, 255, 255, 255, 255]);
        var labels = new IdxArray([3], [9, 0, 4]);
        var data = Idx.ToImages(images, "img", labels, "lbl", "pair");
        Assert.That(data.Count, Is.EqualTo(3));
        Assert.That((data.Height, data.Width, data.Pixels), Is.EqualTo((2, 2, 4)));
        Assert.That(data.Labels, Is.EqualTo(new[] { 9, 0, 4 }));
        Assert.That(data.Image(0).ToArray(), Is.EqualTo(new[] { 0f, 1f, 0.2f, 0.4f }));
        Assert.That(data.Image(2).ToArray(), Is.All.EqualTo(1f));
    }

    [Test]
    public void RefusesMismatchedPairs()
    {
        var images = new IdxArray([3, 2, 2], new byte[12]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.ToImages(images, "img", new IdxArray([2], [1, 2]), "lbl", "pair"));
        Assert.That(e!.Message, Does.Contain("img holds 3 images but lbl holds 2 labels"));
        e = Assert.Throws<InvalidDataException>(() => Idx.ToImages(images, "img", new IdxArray([3], [1, 10, 2]), "lbl", "pair"));
        Assert.That(e!.Message, Does.Contain("label 1 is 10, outside [0, 10)"));
        e = Assert.Throws<InvalidDataException>(() => Idx.ToImages(new IdxArray([12], new byte[12]), "img", new IdxArray([3], new byte[3]), "lbl", "pair"));
        Assert.That(e!.Message, Does.Contain("images need 3 dimensions"));
        e = Assert.Throws<InvalidDataException>(() => Idx.ToImages(images, "img", new IdxArray([3, 1], new byte[3]), "lbl", "pair"));
        Assert.That(e!.Message, Does.Contain("labels need 1 dimension"));
    }

    private static string Refusal(byte[] bytes)
    {
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(new MemoryStream(bytes), "test.idx"));
        Assert.That(e!.Message, Does.StartWith("test.idx: "));
        return e.Message;
    }

    private static byte[] Bytes(IdxArray array, bool compressed)
    {
        using var raw = new MemoryStream();
        Idx.Write(raw, array);
        return compressed ? Gzip(raw.ToArray()) : raw.ToArray();
    }

    private static byte[] Gzip(byte[] bytes)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Optimal))
            gzip.Write(bytes);
        return output.ToArray();
    }
}
