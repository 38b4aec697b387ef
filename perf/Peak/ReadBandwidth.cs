// Read-only memory bandwidth of this machine: the roofline of a kernel that streams its input once and writes almost
// nothing (feature norms read R x F floats and write 5 R). Dividing such a kernel's bytes read by CopyBandwidth's
// read + write rate mixes two different traffic patterns (a copy also writes, and on x86 a plain store first reads the
// line it overwrites), so the feature-norms benchmark quotes its rate against this one, measured in the same run, with
// the copy beside it.
// Method as CopyBandwidth: one slice per core under Parallel.For, one untimed pass (first touch, JIT), then the median
// of `repeats` timed passes. Each slice is summed with the widest SIMD vector the hardware accelerates (Vector512 on
// AVX-512, else Vector<float>: 256-bit on AVX2, 128-bit on SSE and Arm NEON) into four independent accumulators, so
// the adds' latency never limits the stream. The buffer is filled with 1s and the sum checked, so no pass can be
// optimised away or skip elements.
using System.Diagnostics;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace RouteKit.Perf.Peak;

/// <summary>Multithreaded read-only SIMD stream, one slice per core, median of several repeats.</summary>
public static class ReadBandwidth
{
    /// <summary>Width in bits of the vectors <see cref="Sum"/> uses on this machine.</summary>
    public static int VectorBits => Vector512.IsHardwareAccelerated ? 512 : Vector<float>.Count * 32;

    /// <summary>
    /// Returns the median read bandwidth in GB/s (1e9 bytes read per second) over <paramref name="repeats"/> passes
    /// over a buffer of <paramref name="bytes"/> bytes (1 MiB to 1 GiB).
    /// </summary>
    public static double Measure(long bytes = 512L << 20, int repeats = 7)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1L << 20);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(bytes, 1L << 30);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        var n = (int)(bytes / sizeof(float));
        var src = new float[n];
        Array.Fill(src, 1f);
        var threads = Environment.ProcessorCount;
        var chunk = (n + threads - 1) / threads;
        var sums = new double[threads];
        void Read() => Parallel.For(0, threads, t =>
        {
            var start = t * chunk;
            var len = Math.Min(chunk, n - start);
            sums[t] = len > 0 ? Sum(src.AsSpan(start, len)) : 0;
        });
        Read();
        var times = new double[repeats];
        for (var r = 0; r < repeats; r++)
        {
            Array.Clear(sums);
            var sw = Stopwatch.StartNew();
            Read();
            times[r] = sw.Elapsed.TotalSeconds;
            // Each SIMD lane adds at most 2^24 ones (1 GiB on one core with 128-bit vectors x 4 accumulators), which
            // float32 counts exactly; only the final horizontal sums round (relative 2^-24 each). A skipped element
            // or a stalled lane would be far outside 1e-6.
            var total = sums.Sum();
            if (Math.Abs(total - n) > 1e-6 * n) throw new InvalidOperationException($"read stream summed {total} ones, expected {n}.");
        }
        Array.Sort(times);
        return (double)n * sizeof(float) / times[repeats / 2] / 1e9;
    }

    /// <summary>The sum of <paramref name="x"/> with the widest accelerated SIMD vectors, four accumulators, float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Sum(ReadOnlySpan<float> x)
    {
        ref var p = ref MemoryMarshal.GetReference(x);
        var n = x.Length;
        var i = 0;
        var total = 0f;
        if (Vector512.IsHardwareAccelerated)
        {
            var w = Vector512<float>.Count;
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 4 * w; i += 4 * w)
            {
                a0 += Vector512.LoadUnsafe(ref p, (nuint)i);
                a1 += Vector512.LoadUnsafe(ref p, (nuint)(i + w));
                a2 += Vector512.LoadUnsafe(ref p, (nuint)(i + 2 * w));
                a3 += Vector512.LoadUnsafe(ref p, (nuint)(i + 3 * w));
            }
            for (; i <= n - w; i += w) a0 += Vector512.LoadUnsafe(ref p, (nuint)i);
            total = Vector512.Sum(a0 + a1 + (a2 + a3));
        }
        else if (Vector.IsHardwareAccelerated)
        {
            var w = Vector<float>.Count;
            Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (; i <= n - 4 * w; i += 4 * w)
            {
                a0 += Vector.LoadUnsafe(ref p, (nuint)i);
                a1 += Vector.LoadUnsafe(ref p, (nuint)(i + w));
                a2 += Vector.LoadUnsafe(ref p, (nuint)(i + 2 * w));
                a3 += Vector.LoadUnsafe(ref p, (nuint)(i + 3 * w));
            }
            for (; i <= n - w; i += w) a0 += Vector.LoadUnsafe(ref p, (nuint)i);
            total = Vector.Sum(a0 + a1 + (a2 + a3));
        }
        for (; i < n; i++) total += Unsafe.Add(ref p, i);
        return total;
    }
}
