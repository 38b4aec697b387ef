using System.Collections.Concurrent;
using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests.Parallel;

/// <summary>
/// ManagedParallel.For and its worker-local storage: every index runs once, exceptions reach the caller, and scratch
/// belongs to a worker slot of the calling thread, not to the pool thread that serves it (a pool that rotates its threads
/// must not make ops allocate their scratch again; CI failure of 2026-12-02).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class ManagedParallelTests
{
    private sealed class Marker
    {
        public int Uses;
    }

    private struct Record : IParallelBody
    {
        public ConcurrentDictionary<Marker, byte> Markers;
        public ConcurrentDictionary<int, byte> Threads;
        public int[] Hits;

        public readonly void Run(int index)
        {
            var marker = ManagedParallel.WorkerLocal<Marker>();
            // A slot runs one index at a time: no other index may be using this marker now.
            Assert.That(Interlocked.Increment(ref marker.Uses), Is.EqualTo(1), "a worker-local object was shared by two running indices");
            Markers.TryAdd(marker, 0);
            Threads.TryAdd(Environment.CurrentManagedThreadId, 0);
            Interlocked.Increment(ref Hits[index]);
            Thread.SpinWait(2000);
            Interlocked.Decrement(ref marker.Uses);
        }
    }

    [Test]
    public void WorkerLocalStorageIsPerSlotWhateverThreadServes()
    {
        const int calls = 400, count = 16;
        var body = new Record { Markers = new(), Threads = new(), Hits = new int[count] };
        using (new PoolChurn())
            for (var c = 0; c < calls; c++)
                ManagedParallel.For(count, ref body);

        Assert.That(body.Hits, Is.All.EqualTo(calls), "every index runs exactly once per call");
        var slots = Environment.ProcessorCount;
        TestContext.Out.WriteLine($"{body.Threads.Count} threads served {calls} calls; {body.Markers.Count} worker-local objects; {slots} slots");
        Assert.That(body.Markers.Count, Is.LessThanOrEqualTo(slots), "one object per slot of this calling thread, at most ProcessorCount");
        if (slots > 1)
            Assert.That(body.Threads.Count, Is.GreaterThan(slots),
                "the churned pool should have served the calls from more threads than there are slots (otherwise this test shows nothing)");
    }

    [Test]
    public void WorkerLocalOutsideAForIsTheCallersSlotZero()
    {
        var outside = ManagedParallel.WorkerLocal<Marker>();
        Assert.That(ManagedParallel.WorkerLocal<Marker>(), Is.SameAs(outside));
        var body = new SingleIndex();
        ManagedParallel.For(1, ref body);
        Assert.That(body.Seen, Is.SameAs(outside), "a For of one index runs inline on the caller, in slot 0");
        var other = Task.Factory.StartNew(ManagedParallel.WorkerLocal<Marker>, TaskCreationOptions.LongRunning).Result;
        Assert.That(other, Is.Not.SameAs(outside), "another calling thread has its own slots");
    }

    private struct SingleIndex : IParallelBody
    {
        public Marker? Seen;

        public void Run(int index) => Seen = ManagedParallel.WorkerLocal<Marker>();
    }

    private struct Failing : IParallelBody
    {
        public readonly void Run(int index)
        {
            if (index == 7) throw new InvalidOperationException("index 7");
        }
    }

    [Test]
    public void AWorkersExceptionReachesTheCallerAndTheNextCallWorks()
    {
        var failing = new Failing();
        Assert.That(() => ManagedParallel.For(64, ref failing), Throws.InvalidOperationException.With.Message.EqualTo("index 7"));
        var body = new Record { Markers = new(), Threads = new(), Hits = new int[64] };
        ManagedParallel.For(64, ref body);
        Assert.That(body.Hits, Is.All.EqualTo(1));
    }
}
