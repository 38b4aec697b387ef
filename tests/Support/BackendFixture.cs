using NUnit.Framework;

namespace RouteKit.Tests.Support;

/// <summary>
/// Base of every per-backend suite (ILGPU's pattern: one abstract fixture per op, one subclass per backend): creates
/// the device once per fixture, so kernel compilation is cached, and marks a GPU fixture skipped, never passed, on a
/// machine without that GPU.
/// </summary>
public abstract class BackendFixture
{
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
            Device = Device.Create(Backend);
        }
        catch (InvalidOperationException e) when (Backend is Backend.Cuda or Backend.OpenCL)
        {
            Assert.Ignore($"No {Backend} device on this machine: {e.Message}");
        }
    }

    /// <summary>Releases the device.</summary>
    [OneTimeTearDown]
    public void DisposeDevice() => Device?.Dispose();
}
