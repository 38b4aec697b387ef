namespace RouteKit.Tests.Support;

/// <summary>
/// What an op allocates: the calling thread's own count plus what ManagedParallel's workers allocated inside op bodies.
/// The process-wide count (GC.GetTotalAllocatedBytes) also sees the thread pool's own bookkeeping when it injects or
/// retires threads, which made allocation tests fail at random on a busy CI machine; this meter does not.
/// </summary>
internal static class Allocations
{
    /// <summary>Starts the workers' meter for the scope's lifetime.</summary>
    public static IDisposable Meter() => ManagedParallel.CountWorkerAllocations();

    /// <summary>Bytes allocated so far by this thread plus by workers' bodies while a <see cref="Meter"/> is open.</summary>
    public static long Now() => GC.GetAllocatedBytesForCurrentThread() + ManagedParallel.WorkerAllocatedBytes;
}
