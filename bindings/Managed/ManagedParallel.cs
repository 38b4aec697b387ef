// The one fan-out of the Managed backend: runs body.Run(i) for i in [0, count) on the calling thread plus pooled
// thread-pool workers, without allocating after warm-up (issue 11: a training step must not allocate).
//
// Parallel.For allocated ~2 KB per call (closures, delegates, tasks, its loop state; measured 2026-12-02). Here the body
// is a struct on the caller's stack: the caller passes a pointer to it and a function pointer to the body's Run, which
// is safe because For returns only after every worker that started has finished with it. The job object is the
// thread-pool work item itself, one per calling thread ([ThreadStatic]), reused call after call; its event is reused too.
//
// Protocol. `state` holds the number of workers inside the current call plus a Closed bit. The caller opens the job
// (state = 0), queues up to ProcessorCount - 1 workers, claims indices from `next` like every worker, then sets Closed
// and waits only if a worker is still inside. A worker enters by incrementing state unless Closed is set: one that
// starts late (after the caller closed) leaves without touching the body, so the caller never waits for a worker the
// pool has not started yet. A late worker that finds the job reopened by the caller's next call simply joins that call,
// which is just as safe. Indices are claimed from one Interlocked counter, so the split adapts to busy cores; bodies
// that must be deterministic give each index a fixed piece of work (never per-thread partial sums).
//
// Worker-local storage. A body's scratch (attention tiles, scan tiles, GEMM packing buffers) belongs to a worker *slot*
// of the calling thread's job, not to whichever pool thread happens to serve it: the caller is slot 0 and each worker
// that enters a call takes the next free slot (at most ProcessorCount slots; a worker that finds none leaves). Scratch
// kept per pool thread ([ThreadStatic]) was allocated again by every pool thread that had not served that op before, so
// a process whose pool had grown (after blocking work elsewhere) allocated ~12 KB per attention call for as long as new
// threads kept turning up, and native GEMM buffers leaked with each retired thread (CI failure of 2026-12-02 07:09).
// Slot storage is created once per (calling thread, slot, type) and lives as long as the calling thread's job.
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace RouteKit;

/// <summary>The work of one index of <see cref="ManagedParallel.For{TBody}"/>; a struct holding what the loop captures.</summary>
internal interface IParallelBody
{
    /// <summary>Runs index <paramref name="index"/>; called once per index, from any thread.</summary>
    void Run(int index);
}

/// <summary>Allocation-free parallel loop over a struct body (see the file header).</summary>
internal static unsafe class ManagedParallel
{
    [ThreadStatic] private static Job? job;
    [ThreadStatic] private static Job? serving;   // the job whose indices this thread is running now, if any
    [ThreadStatic] private static int servingSlot; // and the slot it holds in that job

    /// <summary>Worker slots per job: the caller and at most ProcessorCount - 1 workers.</summary>
    internal static readonly int SlotCount = Math.Max(Environment.ProcessorCount, 1);

    private static int nextLocalId;
    private static int countingAllocations;
    private static long workerAllocatedBytes;

    /// <summary>
    /// Tests' allocation meter: while at least one <see cref="CountWorkerAllocations"/> scope is open, every worker adds
    /// what its thread allocated while running bodies to <see cref="WorkerAllocatedBytes"/>. With the caller's own
    /// <c>GC.GetAllocatedBytesForCurrentThread</c> that is exactly what an op allocated, without the thread pool's own
    /// bookkeeping (thread injection) that the process-wide count also sees.
    /// </summary>
    internal static IDisposable CountWorkerAllocations()
    {
        Interlocked.Increment(ref countingAllocations);
        return new CountingScope();
    }

    /// <summary>Bytes the workers' bodies allocated while counting was on (see <see cref="CountWorkerAllocations"/>).</summary>
    internal static long WorkerAllocatedBytes => Volatile.Read(ref workerAllocatedBytes);

    private sealed class CountingScope : IDisposable
    {
        private int disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref disposed, 1) == 0) Interlocked.Decrement(ref countingAllocations);
        }
    }

    private static class LocalId<T>
    {
        public static readonly int Value = Interlocked.Increment(ref nextLocalId) - 1;
    }

    /// <summary>
    /// The <typeparamref name="T"/> private to the worker slot running the current index of a <see cref="For{TBody}"/>
    /// (or, outside one, to this thread as a caller): created on first use and then reused by every later call that
    /// runs in the same slot of the same calling thread, whichever pool thread serves it. Valid until this index's
    /// <c>Run</c> returns; never share it across indices that may run concurrently.
    /// </summary>
    public static T WorkerLocal<T>() where T : class, new()
    {
        var j = serving;
        return j is null ? (job ??= new Job()).Local<T>(0) : j.Local<T>(servingSlot);
    }

    /// <summary>
    /// Runs <c>body.Run(i)</c> for every i in [0, <paramref name="count"/>) on this thread and pooled workers, returns when
    /// all are done and rethrows the first exception a worker raised. <paramref name="body"/> must be a local of the
    /// caller (its address is handed to the workers). Runs inline when count is 1, on one processor, or when called
    /// from inside another For's body on the same thread.
    /// </summary>
    public static void For<TBody>(int count, ref TBody body) where TBody : struct, IParallelBody
    {
        if (count <= 0) return;
        var workers = Math.Min(count, Environment.ProcessorCount) - 1;
        var j = job ??= new Job();
        if (j.Busy)
        {
            // Nested inside this thread's own call (already serving slot 0 of j): run inline.
            for (var i = 0; i < count; i++) body.Run(i);
            return;
        }
        var (outer, outerSlot) = (serving, servingSlot);
        (serving, servingSlot) = (j, 0);
        try
        {
            if (workers <= 0)
                for (var i = 0; i < count; i++) body.Run(i);
            else
                j.Run(count, workers, Unsafe.AsPointer(ref body), &Invoke<TBody>);
        }
        finally
        {
            (serving, servingSlot) = (outer, outerSlot);
        }
    }

    private static void Invoke<TBody>(void* body, int index) where TBody : struct, IParallelBody =>
        Unsafe.AsRef<TBody>(body).Run(index);

    private sealed class Job : IThreadPoolWorkItem
    {
        private const int Closed = 1 << 30;

        private readonly ManualResetEventSlim workersDone = new(false);
        private readonly object?[]?[] locals = new object?[SlotCount][]; // [slot][LocalId<T>]
        private void* body;
        private delegate*<void*, int, void> invoke;
        private int count;
        private int next;
        private int entered; // workers that have entered the current call (slots 1..entered)
        private int state = Closed;
        private Exception? failure;

        /// <summary>True while this thread's call is running (a nested For on this thread then runs inline).</summary>
        public bool Busy { get; private set; }

        /// <summary>Slot <paramref name="slot"/>'s <typeparamref name="T"/>; only the thread holding the slot calls this.</summary>
        public T Local<T>(int slot) where T : class, new()
        {
            var id = LocalId<T>.Value;
            var row = locals[slot];
            if (row is null || row.Length <= id)
            {
                Array.Resize(ref row, Math.Max(id + 1, 8));
                locals[slot] = row;
            }
            return (T)(row[id] ??= new T());
        }

        public void Run(int count, int workers, void* body, delegate*<void*, int, void> invoke)
        {
            Busy = true;
            try
            {
                this.body = body;
                this.invoke = invoke;
                this.count = count;
                failure = null;
                workersDone.Reset();
                entered = 0;
                Volatile.Write(ref next, 0);
                Volatile.Write(ref state, 0); // open: workers may enter
                for (var w = 0; w < workers; w++) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
                try
                {
                    Claim();
                }
                catch
                {
                    Volatile.Write(ref next, int.MaxValue / 2); // stop the workers claiming more
                    throw;
                }
                finally
                {
                    // Close, then wait for the workers still inside; none can enter after this.
                    if (Interlocked.Add(ref state, Closed) != Closed) workersDone.Wait();
                }
                if (failure is { } e) ExceptionDispatchInfo.Throw(e);
            }
            finally
            {
                this.body = null;
                Busy = false;
            }
        }

        void IThreadPoolWorkItem.Execute()
        {
            var s = Volatile.Read(ref state);
            while (true)
            {
                if ((s & Closed) != 0) return; // the call is over (or not yet begun): nothing to do
                var seen = Interlocked.CompareExchange(ref state, s + 1, s);
                if (seen == s) break;
                s = seen;
            }
            var (outer, outerSlot) = (serving, servingSlot);
            try
            {
                // A late worker from an earlier call can make more entries than this call queued: it leaves when every
                // slot is taken (the others claim all the indices anyway).
                var slot = Interlocked.Increment(ref entered);
                if (slot < SlotCount)
                {
                    (serving, servingSlot) = (this, slot);
                    if (Volatile.Read(ref countingAllocations) == 0)
                    {
                        Claim();
                    }
                    else
                    {
                        var before = GC.GetAllocatedBytesForCurrentThread();
                        try
                        {
                            Claim();
                        }
                        finally
                        {
                            Interlocked.Add(ref workerAllocatedBytes, GC.GetAllocatedBytesForCurrentThread() - before);
                        }
                    }
                }
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
                Volatile.Write(ref next, int.MaxValue / 2); // stop the others claiming more
            }
            finally
            {
                (serving, servingSlot) = (outer, outerSlot);
                if (Interlocked.Decrement(ref state) == Closed) workersDone.Set();
            }
        }

        private void Claim()
        {
            var n = count;
            var b = body;
            var f = invoke;
            for (var i = Interlocked.Increment(ref next) - 1; i < n; i = Interlocked.Increment(ref next) - 1)
                f(b, i);
        }
    }
}
