using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Api;

/// <summary>Slices and reshapes share storage with their owner on every backend, and ops see them as the elements they cover.</summary>
public abstract class TensorViewTests : BackendFixture
{
    [Test]
    public void SliceAndReshapeShareStorage()
    {
        using var flat = Device.FromArray(Enumerable.Range(0, 24).Select(i => (float)i).ToArray(), 24);
        using var a = flat.Slice(3, 2, 5);
        using var b = flat.Reshape(4, 6);
        Assert.That(a.IsView && b.IsView, Is.True);
        Assert.That(a.ToArray(), Is.EqualTo(Enumerable.Range(3, 10).Select(i => (float)i).ToArray()));
        a.CopyFrom(Enumerable.Repeat(-1f, 10).ToArray());
        var all = flat.ToArray();
        Assert.That(all[2], Is.EqualTo(2f));
        Assert.That(all[3..13], Is.All.EqualTo(-1f));
        Assert.That(all[13], Is.EqualTo(13f));
        Assert.That(b.ToArray(), Is.EqualTo(all));
        using var inner = a.Slice(4, 3);                 // a slice of a slice keeps the owner's offset
        inner.Clear();
        Assert.That(flat.ToArray()[7..10], Is.All.EqualTo(0f));
        Assert.That(flat.ToArray()[6], Is.EqualTo(-1f));
        var copy = new float[3];
        inner.CopyTo(copy);
        Assert.That(copy, Is.All.EqualTo(0f));
    }

    [Test]
    public void BadSlicesAreRefused()
    {
        using var flat = Device.Zeros(10);
        Assert.That(() => flat.Slice(8, 3), Throws.ArgumentException.With.Message.Contains("does not fit"));
        Assert.That(() => flat.Slice(-1, 2), Throws.ArgumentException);
        Assert.That(() => flat.Reshape(3, 3), Throws.ArgumentException.With.Message.Contains("holds 9"));
        Assert.That(() => flat.Slice(0, 0), Throws.ArgumentException.With.Message.Contains("at least 1"));
    }

    [Test]
    public void DisposingTheOwnerInvalidatesViews()
    {
        var flat = Device.Zeros(10);
        var view = flat.Slice(2, 4);
        view.Dispose();                                  // frees nothing
        Assert.That(flat.ToArray(), Has.Length.EqualTo(10));
        var other = flat.Slice(0, 5);
        flat.Dispose();
        Assert.That(() => other.ToArray(), Throws.TypeOf<ObjectDisposedException>());
    }

    /// <summary>Ops read and write views in place, and refuse an output that overlaps an input through another view.</summary>
    [Test]
    public void OpsWorkOnViewsAndRefuseOverlaps()
    {
        // Parameters of a 3 -> 2 linear layer with bias, packed into one buffer: W [2, 3] at 1, b [2] at 7.
        using var parameters = Device.FromArray([9f, 1f, 2f, 3f, 4f, 5f, 6f, 0.5f, -0.5f, 9f], 10);
        using var w = parameters.Slice(1, 2, 3);
        using var b = parameters.Slice(7, 2);
        using var x = Device.FromArray([1f, 0f, -1f, 2f, 1f, 0f], 2, 3);
        using var out4 = Device.Zeros(4, 2);
        using var y = out4.Slice(2, 2, 2);
        Linear.Forward(x, w, b, y);
        Assert.That(out4.ToArray(), Is.EqualTo(new[] { 0f, 0f, 1f - 3f + 0.5f, 4f - 6f - 0.5f, 2f + 2f + 0.5f, 8f + 5f - 0.5f, 0f, 0f }));
        using var overlapping = parameters.Slice(0, 2, 2);
        Assert.That(() => Linear.Forward(x, w, b, overlapping), Throws.ArgumentException.With.Message.Contains("shares storage"));
    }
}

public sealed class ManagedTensorViewTests : TensorViewTests { protected override Backend Backend => Backend.Managed; }

public sealed class IlgpuCpuTensorViewTests : TensorViewTests { protected override Backend Backend => Backend.IlgpuCpu; }
