using NUnit.Framework;

namespace RouteKit.Tests;

/// <summary>Device creation, backend selection and tensor storage on the two backends every machine has.</summary>
public sealed class DeviceTensorTests
{
    [TestCase("managed", Backend.Managed)]
    [TestCase("ILGPU-CPU", Backend.IlgpuCpu)]
    [TestCase(" cuda ", Backend.Cuda)]
    [TestCase("opencl", Backend.OpenCL)]
    [TestCase("auto", Backend.Auto)]
    public void ParsesBackendNames(string name, Backend expected) => Assert.That(Device.ParseBackend(name), Is.EqualTo(expected));

    [Test]
    public void UndefinedBackendValueIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Device.Create((Backend)9))!;
        Assert.That(e.ParamName, Is.EqualTo("backend"));
        Assert.That(e.Message, Does.Contain("9").And.Contain("Managed (4)").And.Contain("IlgpuCpu (3)"));
    }

    [Test]
    public void UnknownBackendNameIsRejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Device.ParseBackend("tpu"))!;
        Assert.That(e.Message, Does.Contain("tpu").And.Contain("managed"));
    }

    [Test]
    public void EnvironmentVariableOverridesAuto()
    {
        var old = Environment.GetEnvironmentVariable("ROUTEKIT_BACKEND");
        try
        {
            Environment.SetEnvironmentVariable("ROUTEKIT_BACKEND", "ilgpu-cpu");
            using var d = Device.Create();
            Assert.That(d.Backend, Is.EqualTo(Backend.IlgpuCpu));
            Environment.SetEnvironmentVariable("ROUTEKIT_BACKEND", "managed");
            using var m = Device.Create();
            Assert.That(m.Backend, Is.EqualTo(Backend.Managed));
        }
        finally
        {
            Environment.SetEnvironmentVariable("ROUTEKIT_BACKEND", old);
        }
    }

    [Test]
    public void CudaWithoutAGpuSaysSo()
    {
        var lines = Device.Describe();
        Assume.That(lines.Any(l => l.StartsWith("cuda: ", StringComparison.Ordinal) && !l.Contains("sm_")), Is.True,
            "a CUDA device is present; this test covers machines without one");
        var e = Assert.Throws<InvalidOperationException>(() => Device.Create(Backend.Cuda))!;
        Assert.That(e.Message, Does.Contain("CUDA"));
    }

    [Test]
    public void DescribeListsManagedAndTheSimulator()
    {
        var lines = Device.Describe();
        Assert.That(lines, Has.Some.StartsWith("managed: "));
        Assert.That(lines, Has.Some.StartsWith("ilgpu-cpu: "));
        Assert.That(lines, Has.Some.StartsWith("cuda: "));
        Assert.That(lines, Has.Some.StartsWith("opencl: "));
    }

    [TestCase(Backend.Managed)]
    [TestCase(Backend.IlgpuCpu)]
    public void TensorsRoundTrip(Backend backend)
    {
        using var device = Device.Create(backend);
        var data = Enumerable.Range(0, 24).Select(i => i * 0.5f - 3f).ToArray();
        using var t = device.FromArray(data, 2, 3, 4);
        Assert.That(t.Shape, Is.EqualTo(new[] { 2, 3, 4 }));
        Assert.That(t.ToArray(), Is.EqualTo(data));
        data[0] = 99f;
        Assert.That(t.ToArray()[0], Is.EqualTo(-3f), "FromArray copies");
        t.CopyFrom(data);
        Assert.That(t.ToArray(), Is.EqualTo(data));
        using var z = device.Zeros(5, 7);
        Assert.That(z.ToArray(), Has.Length.EqualTo(35).And.All.EqualTo(0f));
    }

    [TestCase(Backend.Managed)]
    [TestCase(Backend.IlgpuCpu)]
    public void BadTensorShapesAreRejected(Backend backend)
    {
        using var device = Device.Create(backend);
        var e = Assert.Throws<ArgumentException>(() => device.Zeros(4, 0, 2))!;
        Assert.That(e.Message, Does.Contain("[4, 0, 2]"));
        e = Assert.Throws<ArgumentException>(() => device.FromArray(new float[5], 2, 3))!;
        Assert.That(e.ParamName, Is.EqualTo("data"));
        Assert.That(e.Message, Does.Contain("5").And.Contain("[2, 3]"));
        Assert.Throws<ArgumentException>(() => device.Zeros());
        Assert.Throws<ArgumentException>(() => device.Zeros(65536, 65536), "more elements than an array holds");
        using var t = device.Zeros(2, 2);
        Assert.Throws<ArgumentException>(() => t.CopyFrom(new float[3]));
    }
}
