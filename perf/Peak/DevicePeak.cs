// The denominators of "% of peak" on any backend, measured in the same run as the kernels they divide.
//
// CPU backends (Managed, IlgpuCpu): the FMA microkernel (FmaPeak) and a memory copy (CopyBandwidth).
// Cuda: computed from the device's properties AND measured, both printed:
//   FP32 peak GFLOP/s = SMs x FP32 lanes per SM x 2 (an FMA is two flops) x SM clock (GHz), where FP32 lanes per SM are
//   64 on sm_60, sm_70, sm_75 and sm_80 (A100), 128 on sm_61, sm_86, sm_89 and sm_90 (H100, H200: 132 SMs x 128 x 2 x
//   1.98 GHz boost = 66.9 TFLOP/s, NVIDIA's datasheet figure). The clock is CU_DEVICE_ATTRIBUTE_CLOCK_RATE, the boost
//   clock; a sustained run may see less, which is why the measured copy is printed beside it.
//   DRAM bandwidth GB/s = 2 (double data rate) x memory clock x bus width / 8 (CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE,
//   CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH); HBM3 reports its effective clock, so this can be off by 2x there and
//   the measured device-to-device copy is the number to trust.
// OpenCL: no portable FMA-unit count, so only the measured copy.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using RouteKit.Perf.Common;

namespace RouteKit.Perf.Peak;

/// <summary>Peaks of one device.</summary>
/// <param name="Gflops">The FLOP/s denominator in GFLOP/s (measured FMA peak on CPUs, the property formula on Cuda; NaN if unknown).</param>
/// <param name="GflopsPerCpuSecond">CPU backends: FMA GFLOP per CPU-second (load-independent); NaN on GPUs.</param>
/// <param name="CopyGBps">Measured copy bandwidth, bytes read plus written per second, in GB/s.</param>
/// <param name="TheoreticalGBps">DRAM bandwidth from the properties (Cuda only; NaN elsewhere).</param>
/// <param name="How">One line saying where each number came from.</param>
public sealed record DevicePeakResult(double Gflops, double GflopsPerCpuSecond, double CopyGBps, double TheoreticalGBps, string How);

/// <summary>Measures or computes the peaks of a device.</summary>
public static class DevicePeak
{
    /// <summary>FP32 lanes per streaming multiprocessor for compute capability <paramref name="major"/>.<paramref name="minor"/>.</summary>
    public static int Fp32LanesPerSm(int major, int minor) => (major, minor) switch
    {
        (6, 1) or (6, 2) => 128,
        (8, 6) or (8, 7) or (8, 9) => 128,
        (9, _) or (10, _) or (12, _) => 128,
        _ => 64,
    };

    /// <summary>The peaks of <paramref name="device"/>; quick keeps the CPU microkernels short.</summary>
    public static DevicePeakResult Measure(Device device, bool quick)
    {
        var acc = device.Accelerator;
        if (acc is null || acc.AcceleratorType == AcceleratorType.CPU)
        {
            var fma = FmaPeak.Measure(trials: quick ? 1 : 3);
            var copy = CopyBandwidth.Measure(quick ? 64L << 20 : 512L << 20, quick ? 3 : 7);
            var wall = Math.Max(fma.GflopsPerSecond, fma.GflopsPerCpuSecond * fma.Threads);
            return new DevicePeakResult(wall, fma.GflopsPerCpuSecond, copy, double.NaN, string.Create(Bench.Inv,
                $"FMA microkernel ({fma.Threads} threads, Vector{fma.VectorBits}): {fma.GflopsPerSecond:F1} GFLOP/s wall, " +
                $"{fma.GflopsPerCpuSecond:F1} per CPU-second; denominator max(wall, threads x per-CPU-second) = {wall:F1}; " +
                $"memory copy {copy:F1} GB/s"));
        }
        var measuredCopy = DeviceCopy(acc);
        if (acc is CudaAccelerator cuda)
        {
            var arch = cuda.Architecture;
            int major = arch is { } a ? a.Major : 0, minor = arch is { } b ? b.Minor : 0;
            var lanes = Fp32LanesPerSm(major, minor);
            var ghz = cuda.ClockRate / 1e6; // kHz
            var gflops = cuda.NumMultiprocessors * lanes * 2.0 * ghz;
            var dram = 2.0 * cuda.MemoryClockRate * 1e3 * cuda.MemoryBusWidth / 8 / 1e9;
            return new DevicePeakResult(gflops, double.NaN, measuredCopy, dram, string.Create(Bench.Inv,
                $"sm_{major}{minor}: {cuda.NumMultiprocessors} SMs x {lanes} FP32 lanes x 2 x {ghz:F3} GHz = {gflops:F0} GFLOP/s; " +
                $"DRAM 2 x {cuda.MemoryClockRate / 1e3:F0} MHz x {cuda.MemoryBusWidth} bit / 8 = {dram:F0} GB/s; " +
                $"measured device copy {measuredCopy:F0} GB/s (read + write)"));
        }
        return new DevicePeakResult(double.NaN, double.NaN, measuredCopy, double.NaN,
            string.Create(Bench.Inv, $"no FMA-unit count for {acc.AcceleratorType}; measured device copy {measuredCopy:F0} GB/s (read + write)"));
    }

    // A 256 MiB device-to-device copy between profiling markers, best of 5 after a warm-up: read plus written bytes.
    private static double DeviceCopy(Accelerator acc)
    {
        const long floats = 64L << 20;
        using var source = acc.Allocate1D<float>(floats);
        using var target = acc.Allocate1D<float>(floats);
        source.MemSetToZero();
        target.CopyFrom(source);
        acc.Synchronize();
        var best = double.MaxValue;
        for (var r = 0; r < 5; r++)
        {
            using var start = acc.DefaultStream.AddProfilingMarker();
            target.View.CopyFrom(acc.DefaultStream, source.View);
            using var end = acc.DefaultStream.AddProfilingMarker();
            end.Synchronize();
            best = Math.Min(best, end.MeasureFrom(start).TotalSeconds);
        }
        return 2.0 * floats * sizeof(float) / best / 1e9;
    }
}
