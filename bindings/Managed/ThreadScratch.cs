// Scratch floats of the Managed kernels kept between calls, one buffer per owner and thread ([ThreadStatic] in the
// owner), so a training step does not allocate them (issue 11). ArrayPool<float>.Shared is not enough: it allocates
// anew for arrays over 2^20 elements and for sizes its per-thread and per-core stacks do not hold at that moment.
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RouteKit;

/// <summary>A growable float buffer on the pinned heap; its pointer needs no <c>fixed</c>.</summary>
internal sealed unsafe class ThreadScratch
{
    private float[]? storage;
    private float* pointer;

    /// <summary>
    /// Room for <paramref name="length"/> floats, contents undefined. Valid until the next <see cref="Ensure"/> on this
    /// object that grows it, so an owner keeps one object per thread and asks it once per call.
    /// </summary>
    public float* Ensure(long length)
    {
        if (storage is null || storage.Length < length)
        {
            // Grow by at least half again, so a slowly growing shape reallocates O(log) times.
            var size = Math.Max(Math.Max(length, 1), storage is null ? 0 : storage.Length + (long)storage.Length / 2);
            storage = GC.AllocateUninitializedArray<float>(checked((int)Math.Min(size, Array.MaxLength)), pinned: true);
            if (storage.Length < length) throw new OutOfMemoryException($"Scratch of {length:N0} floats exceeds one array.");
            pointer = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(storage));
        }
        return pointer;
    }
}
