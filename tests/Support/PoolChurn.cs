namespace RouteKit.Tests.Support;

/// <summary>
/// Makes the thread pool serve work from many different threads, as it does in a process whose pool has grown (after
/// blocking work elsewhere, or under a test runner): raises the pool's minimum thread count and keeps a set of work
/// items that sleep briefly and requeue themselves, so whichever pool thread picks up the next queued item changes from
/// call to call. Allocation-free once started (the items requeue themselves as <see cref="IThreadPoolWorkItem"/>s).
/// Dispose stops the items, waits for them and restores the minimum.
/// </summary>
public sealed class PoolChurn : IDisposable
{
    private readonly int oldWorkers, oldIo;
    private readonly Item[] items;
    private readonly CountdownEvent stopped;
    private volatile bool stopping;

    public PoolChurn(int threads = 0)
    {
        threads = threads > 0 ? threads : 4 * Environment.ProcessorCount + 8;
        ThreadPool.GetMinThreads(out oldWorkers, out oldIo);
        ThreadPool.SetMinThreads(Math.Max(oldWorkers, threads + Environment.ProcessorCount), oldIo);
        items = new Item[threads];
        stopped = new CountdownEvent(threads);
        for (var i = 0; i < threads; i++)
        {
            items[i] = new Item(this, i);
            ThreadPool.UnsafeQueueUserWorkItem(items[i], preferLocal: false);
        }
        // Let the pool create its threads before anyone measures.
        Thread.Sleep(200);
    }

    public void Dispose()
    {
        stopping = true;
        stopped.Wait(TimeSpan.FromSeconds(30));
        ThreadPool.SetMinThreads(oldWorkers, oldIo);
    }

    private sealed class Item(PoolChurn owner, int index) : IThreadPoolWorkItem
    {
        private int round;

        public void Execute()
        {
            if (owner.stopping)
            {
                owner.stopped.Signal();
                return;
            }
            // Sleep 0-2 ms (varied per item and round) so the set of busy threads keeps changing.
            round++;
            Thread.Sleep((index + round) % 3);
            ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }
}
