using NUnit.Framework;

namespace RouteKit.Tests.Support;

/// <summary>
/// Base of every per-backend suite (ILGPU's pattern: one abstract fixture per op, one subclass per backend): creates
/// the device once per fixture, so kernel compilation is cached, and marks a GPU fixture skipped, never passed, on a
/// machine without that GPU. Every IlgpuCpu fixture shares one simulator device for the whole test run
/// (<see cref="SharedSimulator"/>): ILGPU compiles a kernel once per device, and 25 fixtures each compiling their own
/// copies of the same kernels cost minutes of the suite's 15 (2026-12-02: 817-846 s in all before).
/// </summary>
public abstract class BackendFixture
{
    private static readonly Lazy<Device> Simulator = new(() => Device.Create(Backend.IlgpuCpu));

    /// <summary>The IlgpuCpu device every IlgpuCpu fixture uses; disposed once, when the run ends (<see cref="SharedDevices"/>).</summary>
    internal static Device SharedSimulator => Simulator.Value;

    /// <summary>Disposes the shared simulator if it was created.</summary>
    internal static void DisposeShared()
    {
        if (Simulator.IsValueCreated) Simulator.Value.Dispose();
    }

    /// <summary>The backend under test.</summary>
    protected abstract Backend Backend { get; }

    /// <summary>The device under test.</summary>
    protected Device Device { get; private set; } = null!;

    /// <summary>Creates the device, or ignores the fixture when a GPU backend has no device here.</summary>
    [OneTimeSetUp]
    public void CreateDevice()
    {
        try
        {
            Device = Backend == Backend.IlgpuCpu ? SharedSimulator : Device.Create(Backend);
        }
        catch (InvalidOperationException e) when (Backend is Backend.Cuda or Backend.OpenCL)
        {
            Assert.Ignore($"No {Backend} device on this machine: {e.Message}");
        }
    }

    /// <summary>Releases the device.</summary>
    [OneTimeTearDown]
    public void DisposeDevice()
    {
        if (Backend != Backend.IlgpuCpu) Device?.Dispose();
    }
}
