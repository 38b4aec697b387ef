// The linear recurrence h_t = a_t h_{t-1} + x_t (bindings/Ops/LinearRecurrence.cs), one version on one backend, llm.c's
// way: the forward (every h and the last state) and every gradient (dA, dX, dH0) are validated against the float64
// reference (ScanReference.RecurrenceForward/Backward) with FlashAttention's 2x rule before anything is timed; then the
// forward and the backward are timed. Rates: elements (B C T) per second, and the forward's bytes (a and x read, h
// written: 12 per element) against the memory copy measured in the same run (StreamRoofline), whose read + write
// pattern the forward shares. The backward reads dH, a and h and writes dA and dX: 20 bytes per element.
// Shapes: B batch, C channels, T time steps.
// Run: `routekit-perf scan --op linear [--backend managed|ilgpu-cpu|cuda|opencl] [--variant N] [--quick] [--out DIR]`
// (DIR gets linear-recurrence-<backend>-<date>.md). On ilgpu-cpu the shapes are tiny: the figures prove the run.
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf;

/// <summary>Validate-then-time of the linear recurrence.</summary>
public static class LinearRecurrenceBenchmark
{
    /// <summary>
    /// Validates version <paramref name="variant"/> on <paramref name="backend"/>, then times forward and backward and
    /// writes a markdown table to <paramref name="output"/>; 0, 1 when validation fails, 2 when there is no such device.
    /// </summary>
    public static int Run(TextWriter output, Backend backend, int variant, bool quick, LoadCheck? load = null, string? outDir = null, string? command = null)
    {
        ArgumentNullException.ThrowIfNull(output);
        var versions = KernelVariants.LinearRecurrence.For(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(variant, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(variant, versions.Count);
        Device device;
        try
        {
            device = Device.Create(backend);
        }
        catch (InvalidOperationException e)
        {
            output.WriteLine($"# no {backend} device: {e.Message}");
            return 2;
        }
        using var owned = device;
        var started = DateTime.UtcNow;
        var report = new StringBuilder();
        if (load is not null) report.Append(Bench.ReportHeader($"Linear recurrence on {device}, {started:yyyy-MM-dd HH:mm} UTC", load, command)).AppendLine();
        var version = versions[variant - 1];
        report.AppendLine($"Version {variant} of {versions.Count} ({KernelVariants.LinearRecurrence.BackendLabel(backend)}): {version.Name}: {version.Idea}");
        var simulator = backend == Backend.IlgpuCpu;
        var (ok, message) = Validate(device, simulator ? (1, 4, 45) : (2, 12, 1025));
        report.AppendLine(message);
        if (!ok)
        {
            report.AppendLine("validation FAILED: not timing a wrong kernel.");
            output.Write(report);
            return 1;
        }
        var roofline = StreamRoofline.Measure(device, quick || simulator);
        (int B, int C, int T)[] shapes = simulator ? [(1, 4, 64)] : quick ? [(1, 64, 2048)] : [(1, 1024, 4096), (8, 1024, 4096), (1, 64, 65536)];
        var repeats = simulator ? 1 : quick ? 3 : 7;
        report.AppendLine(roofline.How);
        if (simulator) report.AppendLine("IlgpuCpu is the ILGPU simulator (an OS thread per GPU thread): these figures prove the run, not speed.");
        report.AppendLine();
        report.AppendLine("| B | C | T | forward ms | fwd Melem/s | fwd GB/s | fwd % of copy | backward ms | bwd Melem/s | bwd GB/s |");
        report.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var (b, c, t) in shapes)
        {
            Bench.Progress($"linear recurrence [{b}, {c}, {t}] on {backend}");
            var n = (long)b * c * t;
            using var a = device.FromArray(Decays(n, seed: t), b, c, t);
            using var x = device.FromArray(Bench.Normal(n, t + 1), b, c, t);
            using var h0 = device.FromArray(Bench.Normal((long)b * c, t + 2), b, c);
            using var dH = device.FromArray(Bench.Normal(n, t + 3), b, c, t);
            using var forward = LinearRecurrence.Forward(a, x, h0);
            using var gradients = LinearRecurrence.Backward(dH, a, x, h0, forward);
            var minSampleMs = simulator ? 0 : 20;
            var f = Bench.Time(device, () => LinearRecurrence.Forward(a, x, h0, forward), repeats, minSampleMs);
            var g = Bench.Time(device, () => LinearRecurrence.Backward(dH, a, x, h0, forward, gradients), repeats, minSampleMs);
            double fGBps = 12.0 * n / (f.MedianMs * 1e6), gGBps = 20.0 * n / (g.MedianMs * 1e6);
            report.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {b} | {c} | {t} | {f.MedianMs:F3} | {n / (f.MedianMs * 1e3):F1} | {fGBps:F1} | {StreamRoofline.Percent(fGBps, roofline.CopyGBps)} | " +
                $"{g.MedianMs:F3} | {n / (g.MedianMs * 1e3):F1} | {gGBps:F1} |"));
        }
        if (load is not null) report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (load is not null && outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"linear-recurrence-{backend.ToString().ToLowerInvariant()}-{started:yyyy-MM-dd}.md"), report.ToString());
        }
        return 0;
    }

    /// <summary>The validation problem at <paramref name="shape"/>: decays a, inputs x, initial state h0 and dL/dh.</summary>
    public static (float[] A, float[] X, float[] H0, float[] DH) Problem((int B, int C, int T) shape)
    {
        var n = (long)shape.B * shape.C * shape.T;
        return (Decays(n, seed: 21), Bench.Normal(n, 22), Bench.Normal((long)shape.B * shape.C, 23), Bench.Normal(n, 24));
    }

    /// <summary>Runs forward and backward with h0 on <paramref name="device"/> and checks them (<see cref="Check"/>).</summary>
    public static (bool Ok, string Message) Validate(Device device, (int B, int C, int T) shape)
    {
        ArgumentNullException.ThrowIfNull(device);
        var (b, c, t) = shape;
        var (a, x, h0, dH) = Problem(shape);
        using var ta = device.FromArray(a, b, c, t);
        using var tx = device.FromArray(x, b, c, t);
        using var th0 = device.FromArray(h0, b, c);
        using var tdH = device.FromArray(dH, b, c, t);
        using var forward = LinearRecurrence.Forward(ta, tx, th0);
        using var gradients = LinearRecurrence.Backward(tdH, ta, tx, th0, forward);
        return Check(shape, forward, gradients);
    }

    /// <summary>
    /// <paramref name="forward"/> (h, last) and <paramref name="gradients"/> (dA, dX, dH0) for <see cref="Problem"/> at
    /// <paramref name="shape"/> against the float64 reference with the 2x rule; the verdict and one line.
    /// </summary>
    public static (bool Ok, string Message) Check((int B, int C, int T) shape, LinearRecurrenceOutput forward, LinearRecurrenceGradients gradients)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(gradients);
        var (b, c, t) = shape;
        var (a, x, h0, dH) = Problem(shape);
        double[] ad = Bench.Widen(a), xd = Bench.Widen(x), h0d = Bench.Widen(h0);
        var h64 = ScanReference.RecurrenceForward(b, c, t, ad, xd, h0d);
        var h32 = ScanReference.RecurrenceForward(b, c, t, a, x, h0);
        var g64 = ScanReference.RecurrenceBackward(b, c, t, ad, xd, h0d, Bench.Widen(dH));
        var g32 = ScanReference.RecurrenceBackward(b, c, t, a, x, h0, dH);
        static T[] Last<T>(T[] h, int rows, int steps) => Enumerable.Range(0, rows).Select(r => h[(long)r * steps + steps - 1]).ToArray();
        var (ok, message) = Bench.Check2x(
        [
            ("h", forward.H.ToArray(), h64, h32),
            ("last", forward.Last.ToArray(), Last(h64, b * c, t), Last(h32, b * c, t)),
            ("dA", gradients.DA.ToArray(), g64.DA, g32.DA),
            ("dX", gradients.DX.ToArray(), g64.DX, g32.DX),
            ("dH0", gradients.DH0?.ToArray() ?? Enumerable.Repeat(float.NaN, g64.DH0.Length).ToArray(), g64.DH0, g32.DH0),
        ]);
        return (ok, $"validated [B={b}, C={c}, T={t}] with h0 against the float64 reference (2x rule): {message}");
    }

    // Decays in [0.9, 1): long memory, as a trained RG-LRU gate gives, without growing the state.
    private static float[] Decays(long n, int seed)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (var i = 0; i < n; i++) a[i] = 0.9f + 0.0999f * (float)rng.NextDouble();
        return a;
    }
}
