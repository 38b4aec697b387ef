// Selective-scan benchmark on the Managed backend (llm.c's validate-then-time): Mamba's configuration (softplus,
// D, z) at B = 1, Dc = 256, Nst = 16, L = 2k..64k; elements (B Dc L) per second, and the ratio against a
// single-threaded float32 sequential loop of the same recurrence measured in the same run; the backward's time for
// reference (no sequential peer). Validates the Managed forward against the float64 reference (2x rule) before it
// times anything (the test suite covers the backward).
//
// Shapes: B batch, Dc channels, L time steps, Nst states. Memory of the op: inputs and output O(B Dc L), saved chunk
// states B Dc ceil(L / 32) Nst; the table prints the bytes the forward allocates.
//
// RunDevice times the ILGPU kernels (kernels/Scan/, forward and backward version N, KernelVariants.Scan) on a device
// the same way: validate the forward and every gradient on that device against the float64 reference, then time the
// forward and both backward modes with the device synchronised around each call.
//
// Run: `routekit-perf scan [--variant N] [--quick] [--out DIR]` (Managed; DIR gets scan-managed-<date>.md) and
// `routekit-perf scan --backend cuda|opencl|ilgpu-cpu [--variant N] [--quick]` (RunDevice). The linear recurrence has
// its own benchmark: `routekit-perf scan --op linear` (LinearRecurrenceBenchmark.cs).
using System.Diagnostics;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf;

/// <summary>The Managed selective-scan benchmark: validate, then time against a scalar sequential loop.</summary>
public static class ScanBenchmark
{
    private const int Channels = 256;
    internal const int States = 16;

    /// <summary>
    /// Validates, then times the forward for each L and writes a table to <paramref name="output"/>. Quick mode uses
    /// Dc = 16 and two short lengths (seconds, for tests). Returns 0, or 1 when validation fails.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">Small problem, one run each.</param>
    /// <param name="load">The load check taken at the command's start, written as the report's header; null when the
    /// caller's report already carries it (the standard grid's section).</param>
    /// <param name="outDir">With <paramref name="load"/>: the folder for scan-managed-&lt;date&gt;.md.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="variant">The Managed version, 1..<c>KernelVariants.Scan.Managed.Count</c> (the caller checked it).</param>
    public static int Run(TextWriter output, bool quick, LoadCheck? load = null, string? outDir = null, string? command = null, int variant = 1)
    {
        ArgumentNullException.ThrowIfNull(output);
        var version = SelectVersion(Backend.Managed, variant);
        var started = DateTime.UtcNow;
        var report = new StringWriter();
        if (load is not null) report.Write(Bench.ReportHeader($"Selective scan, Managed backend, {started:yyyy-MM-dd HH:mm} UTC", load, command) + "\n");
        report.WriteLine($"# version {variant} of {KernelVariants.Scan.Managed.Count} (managed): {version.Name}: {version.Idea}");
        var code = RunManaged(report, quick);
        if (load is not null) report.WriteLine($"\n- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (load is not null && outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"scan-managed-{started:yyyy-MM-dd}.md"), report.ToString());
        }
        return code;
    }

    private static int RunManaged(TextWriter output, bool quick)
    {
        using var device = Device.Create(Backend.Managed);
        output.WriteLine($"# Selective scan forward, Managed backend: {device.Name}; {Environment.ProcessorCount} logical cores");
        output.WriteLine("# Mamba configuration: softplus(delta + deltaBias), D, z; A = -exp(N(0, 0.5)); float32.");
        if (!Validate(device, output)) return 1;

        var channels = quick ? 16 : Channels;
        int[] lengths = quick ? [512, 2048] : [2048, 4096, 8192, 16384, 32768, 65536];
        output.WriteLine($"# B = 1, Dc = {channels}, Nst = {States}; times are the best of {(quick ? 1 : 3)} runs after a warm-up.");
        output.WriteLine("|     L | managed ms | Melem/s | sequential f32 ms | seq Melem/s | ratio | forward bytes | backward ms | bwd Melem/s |");
        output.WriteLine("|------:|-----------:|--------:|------------------:|------------:|------:|--------------:|------------:|------------:|");
        foreach (var l in lengths)
        {
            Bench.Progress($"scan L={l}");
            var data = Problem(1, channels, l, States, seed: l);
            using var inputs = Upload(device, data, 1, channels, l);
            var options = new SelectiveScanOptions { DeltaSoftplus = true };
            using var result = SelectiveScan.Forward(inputs.Inputs, options); // warm-up and the preallocated outputs
            var managed = Best(quick ? 1 : 3, () => SelectiveScan.Forward(inputs.Inputs, options, result));
            var sequentialOut = new float[1 * channels * l];
            var sequential = Best(quick ? 1 : 2, () => Sequential(data, 1, channels, l, States, sequentialOut));
            var elements = (double)channels * l;
            var bytes = 4L * (result.Output.Length + result.LastState.Length + result.ChunkStates.Length + (result.PreGate?.Length ?? 0));
            using var dOut = device.FromArray(data.U, 1, channels, l);
            using var gradients = SelectiveScan.Backward(dOut, inputs.Inputs, result, options); // warm-up
            var backward = Best(quick ? 1 : 2, () => SelectiveScan.Backward(dOut, inputs.Inputs, result, options, gradients));
            output.WriteLine($"| {l,5} | {managed * 1e3,10:F1} | {elements / managed / 1e6,7:F2} | {sequential * 1e3,17:F1} | " +
                             $"{elements / sequential / 1e6,11:F2} | {sequential / managed,5:F2} | {bytes,13:N0} | " +
                             $"{backward * 1e3,11:F1} | {elements / backward / 1e6,11:F2} |");
        }
        return 0;
    }

    /// <summary>
    /// Validates, then times the ILGPU scan kernels on <paramref name="backend"/> (Cuda for real numbers; IlgpuCpu
    /// only in quick mode, as a smoke test). Returns 0, 1 when validation fails, 2 when the backend has no device.
    /// </summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="backend">The ILGPU backend.</param>
    /// <param name="quick">Tiny shapes, one run each.</param>
    /// <param name="load">The load check taken at the command's start, written first; null when the caller's report
    /// already carries it (the standard grid's section).</param>
    /// <param name="variant">The ILGPU version, 1..<c>KernelVariants.Scan.Ilgpu.Count</c> (the caller checked it).</param>
    public static int RunDevice(TextWriter output, Backend backend, bool quick, LoadCheck? load = null, int variant = 1)
    {
        ArgumentNullException.ThrowIfNull(output);
        var version = SelectVersion(backend, variant);
        if (load is not null)
            foreach (var line in load.MarkdownLines()) output.WriteLine(line);
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
        using (device)
        {
            output.WriteLine($"# Selective scan kernels, version {variant} of {KernelVariants.Scan.Ilgpu.Count} (ILGPU): {version.Name}, {device}");
            if (!ValidateDevice(device, output, quick)) return 1;
            var (batch, channels, states) = quick ? (1, 4, 4) : (2, 1024, 16);
            int[] lengths = quick ? [64] : [512, 2048, 8192];
            var runs = quick ? 1 : 5;
            output.WriteLine($"# B = {batch}, Dc = {channels}, Nst = {states}, softplus, D, z; best of {runs} after a warm-up.");
            output.WriteLine("|    L | forward ms | fwd Melem/s | backward ms (deterministic) | backward ms (atomic) | bwd Melem/s |");
            output.WriteLine("|-----:|-----------:|------------:|----------------------------:|---------------------:|------------:|");
            foreach (var l in lengths)
            {
                var data = Problem(batch, channels, l, states, seed: l);
                using var inputs = Upload(device, data, batch, channels, l, states);
                var deterministic = new SelectiveScanOptions { DeltaSoftplus = true };
                var atomic = deterministic with { Deterministic = false };
                using var result = SelectiveScan.Forward(inputs.Inputs, deterministic);
                using var dOut = device.FromArray(data.U, batch, channels, l);
                using var gradients = SelectiveScan.Backward(dOut, inputs.Inputs, result, deterministic);
                SelectiveScan.Backward(dOut, inputs.Inputs, result, atomic, gradients);
                device.Synchronize();
                var forward = Best(runs, () =>
                {
                    SelectiveScan.Forward(inputs.Inputs, deterministic, result);
                    device.Synchronize();
                });
                var backward = Best(runs, () =>
                {
                    SelectiveScan.Backward(dOut, inputs.Inputs, result, deterministic, gradients);
                    device.Synchronize();
                });
                var backwardAtomic = Best(runs, () =>
                {
                    SelectiveScan.Backward(dOut, inputs.Inputs, result, atomic, gradients);
                    device.Synchronize();
                });
                var elements = (double)batch * channels * l;
                output.WriteLine($"| {l,4} | {forward * 1e3,10:F3} | {elements / forward / 1e6,11:F1} | {backward * 1e3,27:F3} | " +
                                 $"{backwardAtomic * 1e3,20:F3} | {elements / backward / 1e6,11:F1} |");
            }
        }
        return 0;
    }

    // Every output and gradient of the device's kernels against the float64 reference with the 2x rule.
    private static bool ValidateDevice(Device device, TextWriter output, bool quick)
    {
        var (b, dc, l, states) = quick ? (1, 4, 45, 4) : (2, 64, 1025, 16);
        var data = Problem(b, dc, l, states, seed: 11);
        var options = new SelectiveScanOptions { DeltaSoftplus = true };
        var p = SelectiveScanParams.Resolve([b, dc, l], [b, dc, l], [dc, states], [b, states, l], [b, states, l],
            [dc], [b, dc, l], [dc], null, options);
        var dOut = Problem(b, dc, l, states, seed: 12).U;
        var f64 = ScanReference.Forward(p, Widen(data));
        var f32 = ScanReference.Forward(p, data);
        var g64 = ScanReference.Backward(p, Widen(data), Array.ConvertAll(dOut, v => (double)v));
        var g32 = ScanReference.Backward(p, data, dOut);
        using var inputs = Upload(device, data, b, dc, l, states);
        using var result = SelectiveScan.Forward(inputs.Inputs, options);
        using var tdo = device.FromArray(dOut, b, dc, l);
        using var grads = SelectiveScan.Backward(tdo, inputs.Inputs, result, options);
        var ok = true;
        void Check(string name, Tensor actual, double[] reference, float[] naive)
        {
            var values = actual.ToArray();
            double err = 0, naiveErr = 0;
            for (var i = 0; i < reference.Length; i++)
            {
                err = Math.Max(err, Math.Abs(values[i] - reference[i]));
                naiveErr = Math.Max(naiveErr, Math.Abs(naive[i] - reference[i]));
            }
            if (double.IsNaN(err) || err > 2 * naiveErr + 1e-6)
            {
                ok = false;
                output.WriteLine($"# validation FAILED (2x rule): {name} maxErr {err:E2}, naive float32 {naiveErr:E2}");
            }
        }
        Check("out", result.Output, f64.Output, f32.Output);
        Check("dU", grads.DU, g64.DU, g32.DU);
        Check("dDelta", grads.DDelta, g64.DDelta, g32.DDelta);
        Check("dA", grads.DA, g64.DA, g32.DA);
        Check("dB", grads.DB, g64.DB, g32.DB);
        Check("dC", grads.DC, g64.DC, g32.DC);
        Check("dD", grads.DD!, g64.DD, g32.DD);
        Check("dZ", grads.DZ!, g64.DZ, g32.DZ);
        Check("dDeltaBias", grads.DDeltaBias!, g64.DDeltaBias, g32.DDeltaBias);
        output.WriteLine($"# validation [B={b}, Dc={dc}, L={l}, Nst={states}] forward and every gradient vs float64 reference: " +
                         (ok ? "ok" : "FAILED"));
        return ok;
    }

    // The dispatcher (SelectiveScan) launches the one version each backend has; a second version would be selected here.
    private static KernelVersion SelectVersion(Backend backend, int variant)
    {
        var versions = KernelVariants.Scan.For(backend);
        ArgumentOutOfRangeException.ThrowIfLessThan(variant, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(variant, versions.Count);
        return versions[variant - 1];
    }

    private static double Best(int runs, Action action)
    {
        var best = double.MaxValue;
        for (var r = 0; r < runs; r++)
        {
            var sw = Stopwatch.StartNew();
            action();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    // The Managed path against the float64 reference with the 2x rule, on an awkward shape with every option.
    internal static bool Validate(Device device, TextWriter output)
    {
        const int b = 2, dc = 12, l = 1025;
        var data = Problem(b, dc, l, States, seed: 7);
        var p = SelectiveScanParams.Resolve([b, dc, l], [b, dc, l], [dc, States], [b, States, l], [b, States, l],
            [dc], [b, dc, l], [dc], null, new SelectiveScanOptions { DeltaSoftplus = true });
        var reference = ScanReference.Forward(p, Widen(data)).Output;
        var naive = ScanReference.Forward(p, data).Output;
        using var inputs = Upload(device, data, b, dc, l);
        using var result = SelectiveScan.Forward(inputs.Inputs, new SelectiveScanOptions { DeltaSoftplus = true });
        var actual = result.Output.ToArray();
        double err = 0, naiveErr = 0;
        for (var i = 0; i < reference.Length; i++)
        {
            err = Math.Max(err, Math.Abs(actual[i] - reference[i]));
            naiveErr = Math.Max(naiveErr, Math.Abs(naive[i] - reference[i]));
        }
        var ok = err <= 2 * naiveErr + 1e-6;
        output.WriteLine($"# validation [B={b}, Dc={dc}, L={l}, Nst={States}] vs float64 reference: maxErr {err:E2}, " +
                         $"naive float32 {naiveErr:E2}: {(ok ? "ok" : "FAILED (2x rule)")}");
        return ok;
    }

    // The same recurrence as one plain float32 loop on one thread: the peer the ratio is taken against (fully
    // optimised from its first call, as the Managed path's hot methods are).
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Sequential(SelectiveScanReferenceInputs<float> x, int batch, int channels, int steps, int states, float[] output)
    {
        var h = new float[states];
        for (var b = 0; b < batch; b++)
        for (var d = 0; d < channels; d++)
        {
            Array.Clear(h);
            var row = (long)(b * channels + d) * steps;
            for (var l = 0; l < steps; l++)
            {
                var raw = x.Delta[row + l] + x.DeltaBias![d];
                var dt = raw > 20f ? raw : MathF.Log(1f + MathF.Exp(raw));
                var u = x.U[row + l];
                var y = 0f;
                for (var n = 0; n < states; n++)
                {
                    var bc = ((long)b * states + n) * steps + l;
                    h[n] = MathF.Exp(dt * x.A[d * states + n]) * h[n] + dt * x.B[bc] * u;
                    y += x.C[bc] * h[n];
                }
                var z = x.Z![row + l];
                output[row + l] = (y + x.D![d] * u) * z / (1f + MathF.Exp(-z));
            }
        }
    }

    internal static SelectiveScanReferenceInputs<float> Problem(int batch, int channels, int steps, int states, int seed)
    {
        var rng = new Random(seed);
        float Normal() => (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        float[] Fill(long n, Func<float> f)
        {
            var a = new float[n];
            for (var i = 0; i < n; i++) a[i] = f();
            return a;
        }
        var seq = (long)batch * channels * steps;
        var proj = (long)batch * states * steps;
        var scaleC = 1f / MathF.Sqrt(states);
        return new SelectiveScanReferenceInputs<float>(
            Fill(seq, Normal), Fill(seq, () => Normal() - 1f), Fill(channels * states, () => -MathF.Exp(0.5f * Normal())),
            Fill(proj, Normal), Fill(proj, () => scaleC * Normal()), Fill(channels, Normal), Fill(seq, Normal),
            Fill(channels, () => 0.05f * Normal()), null);
    }

    private static SelectiveScanReferenceInputs<double> Widen(SelectiveScanReferenceInputs<float> x)
    {
        static double[]? W(float[]? a) => a is null ? null : Array.ConvertAll(a, v => (double)v);
        return new(W(x.U)!, W(x.Delta)!, W(x.A)!, W(x.B)!, W(x.C)!, W(x.D), W(x.Z), W(x.DeltaBias), W(x.InitialState));
    }

    internal sealed class Uploaded(SelectiveScanInputs inputs) : IDisposable
    {
        public SelectiveScanInputs Inputs { get; } = inputs;

        public void Dispose()
        {
            foreach (var (t, _) in Inputs.Present()) t.Dispose();
        }
    }

    internal static Uploaded Upload(Device device, SelectiveScanReferenceInputs<float> x, int batch, int channels, int steps,
        int states = States) => new(new SelectiveScanInputs
    {
        U = device.FromArray(x.U, batch, channels, steps),
        Delta = device.FromArray(x.Delta, batch, channels, steps),
        A = device.FromArray(x.A, channels, states),
        B = device.FromArray(x.B, batch, states, steps),
        C = device.FromArray(x.C, batch, states, steps),
        D = device.FromArray(x.D!, channels),
        Z = device.FromArray(x.Z!, batch, channels, steps),
        DeltaBias = device.FromArray(x.DeltaBias!, channels),
    });
}
