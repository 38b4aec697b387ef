using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// Disposes the devices shared across fixtures (BackendFixture.SharedSimulator) once every test has run: it sits in
/// the root namespace of the test assembly, so NUnit runs its teardown after every fixture below RouteKit.Tests.
/// </summary>
[SetUpFixture]
public sealed class SharedDevices
{
    /// <summary>Runs after the last test of the assembly.</summary>
    [OneTimeTearDown]
    public void DisposeShared() => BackendFixture.DisposeShared();
}
