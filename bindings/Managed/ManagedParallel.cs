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
        if (workers <= 0 || j.Busy)
        {
            for (var i = 0; i < count; i++) body.Run(i);
            return;
        }
        j.Run(count, workers, Unsafe.AsPointer(ref body), &Invoke<TBody>);
    }

    private static void Invoke<TBody>(void* body, int index) where TBody : struct, IParallelBody =>
        Unsafe.AsRef<TBody>(body).Run(index);

    private sealed class Job : IThreadPoolWorkItem
    {
        private const int Closed = 1 << 30;

        private readonly ManualResetEventSlim workersDone = new(false);
        private void* body;
        private delegate*<void*, int, void> invoke;
        private int count;
        private int next;
        private int state = Closed;
        private Exception? failure;

        /// <summary>True while this thread's call is running (a nested For on this thread then runs inline).</summary>
        public bool Busy { get; private set; }

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
            try
            {
                Claim();
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref failure, e, null);
                Volatile.Write(ref next, int.MaxValue / 2); // stop the others claiming more
            }
            finally
            {
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
