// The denominators of a streaming op's GB/s, measured in the same run: on the CPU backends (Managed, and IlgpuCpu, whose
// buffers are host memory) the read-only bandwidth (ReadBandwidth, the roofline of an op that reads x once) and the
// memory copy (CopyBandwidth, read + write, printed beside it); on a GPU the device-to-device copy of DevicePeak, as
// there is no read-only probe for devices yet (ReadGBps is NaN there and the reports say so).
using System.Globalization;
using RouteKit.Perf.Peak;

namespace RouteKit.Perf.Common;

/// <summary>Bandwidths in GB/s and one line saying how they were measured.</summary>
public sealed record StreamRoofline(double ReadGBps, double CopyGBps, string How)
{
    /// <summary>Measures the bandwidths of <paramref name="device"/>'s memory; quick uses 64 MiB buffers and 3 repeats.</summary>
    public static StreamRoofline Measure(Device device, bool quick)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.Backend is Backend.Managed or Backend.IlgpuCpu)
        {
            var bytes = quick ? 64L << 20 : 512L << 20;
            var repeats = quick ? 3 : 7;
            Bench.Progress("read and copy bandwidth");
            var read = ReadBandwidth.Measure(bytes, repeats);
            var copy = CopyBandwidth.Measure(bytes, repeats);
            return new StreamRoofline(read, copy, string.Create(CultureInfo.InvariantCulture,
                $"Read bandwidth (read only, {Environment.ProcessorCount} threads, Vector{ReadBandwidth.VectorBits} sum of {bytes >> 20} MiB, median of {repeats}): {read:F1} GB/s; " +
                $"memory copy (read + write, {bytes >> 20} MiB, median of {repeats}): {copy:F1} GB/s"));
        }
        Bench.Progress($"peaks of {device}");
        var peak = DevicePeak.Measure(device, quick);
        return new StreamRoofline(double.NaN, peak.CopyGBps, $"no read-only probe on {device.Backend} (read % n/a); {peak.How}");
    }

    /// <summary>100 x <paramref name="gbps"/> / <paramref name="of"/> as "N%", or "n/a" when the denominator was not measured.</summary>
    public static string Percent(double gbps, double of) =>
        double.IsFinite(of) && of > 0 ? string.Create(CultureInfo.InvariantCulture, $"{100 * gbps / of:F0}%") : "n/a";
}
