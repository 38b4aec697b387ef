// `routekit-perf training-ops`: forward and backward of the training ops that had no benchmark (LayerNorm, RmsNorm,
// Gelu (tanh form, GPT-2's), Silu, Relu, CrossEntropy, Embedding, AdamW, GradientClip) at transformer-ish shapes, in GB/s
// against the memory bandwidth measured in the same run: the memory copy (perf/Peak/CopyBandwidth.cs, bytes read plus
// written) and, on the CPU backends, the read-only stream (perf/Peak/ReadBandwidth.cs); on a GPU backend only the device
// copy (DevicePeak). Every op here both reads and writes, so "% of copy" is its roofline; "% of read" is printed beside it
// on CPUs. Validates every op against the float64 reference at a small awkward shape before it times anything (llm.c).
//
// Shapes (--quick in brackets): LayerNorm, RmsNorm, Gelu, Silu, Relu at T = 4096 tokens x C = 256 and 1024 [256 x 64];
// CrossEntropy at T = 1024, V = 256 and 32768 [64 x 256]; Embedding at T = 4096, C = 256 and 1024, V = 32768
// [256 x 64, V 1024]; AdamW and GradientClip over N = 10M parameters [1M].
//
// Bytes counted: the minimum each op must read plus write, float32 (4 bytes) everywhere, ids and targets float-coded:
//   LayerNorm forward   read x [T,C], weight, bias [C]; write y [T,C], mean, rstd [T]          = 8TC + 8C + 8T
//   LayerNorm backward  read dy, x [T,C], weight [C], mean, rstd [T]; write dx [T,C], dw, db [C] = 12TC + 12C + 8T
//   RmsNorm forward     read x [T,C], weight [C]; write y [T,C], rstd [T]                      = 8TC + 4C + 4T
//   RmsNorm backward    read dy, x [T,C], weight [C], rstd [T]; write dx [T,C], dweight [C]     = 12TC + 8C + 4T
//   Gelu, Silu, Relu    forward read x, write y = 8n; backward read dy, x, write dx = 12n (n = T C)
//   CrossEntropy        one fused call (loss and dlogits): read logits [T,V], targets [T]; write dlogits [T,V],
//                       losses [T], mean [1]                                                      = 8TV + 8T + 4
//   Embedding forward   read ids [T] and the T gathered rows [T,C]; write out [T,C]               = 8TC + 4T
//   Embedding backward  read dOut [T,C], ids [T]; read and write the U distinct touched rows of dTable [U,C]
//                       (it accumulates)                                                           = 4TC + 4T + 8UC
//   AdamW               read p, g, m, v and the decay mask [N]; write p, m, v [N]                = 32N
//   GradientClip        norm + scale (the norm needs every gradient before any is scaled, so two passes): read g,
//                       then read and write g                                                     = 12N
//                       norm only (max norm not reached): read g                                  = 4N
// The public ops are timed as a training step calls them, argument checks included: on Managed every input is scanned
// for NaN/infinity (TensorChecks.Finite, one thread) and ids/targets are checked, which the bytes above do not count.
// On Managed a second column times the kernel alone (the internal *Managed routine the op dispatches to), so the cost
// of the checks shows as the gap between the two. Shapes whose working set fits in the caches (T x 256 rows: 4 MiB per
// tensor) can pass 100% of the DRAM bandwidth, which is measured on 512 MiB [64 MiB].
// Run: `routekit-perf training-ops [--backend managed|ilgpu-cpu|cuda|opencl] [--quick] [--repeats N] [--out DIR]`
// (DIR gets training-ops-<backend>-<date>.md and .csv).
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.Training;

/// <summary>One timed op and pass.</summary>
/// <param name="Op">Op name.</param>
/// <param name="Pass">"forward", "backward", "fwd+bwd (fused)", "step", ...</param>
/// <param name="Shape">The shape, e.g. "T=4096 C=256".</param>
/// <param name="Bytes">Minimum bytes read plus written per call (see the file's header).</param>
/// <param name="WorkingSetBytes">Distinct bytes the call touches (whether it can live in the caches).</param>
/// <param name="Timing">The public op, argument checks included.</param>
/// <param name="Kernel">The Managed kernel alone (no checks); null on ILGPU backends.</param>
public sealed record TrainingOpTiming(string Op, string Pass, string Shape, double Bytes, double WorkingSetBytes, Timing Timing, Timing? Kernel)
{
    /// <summary>Bytes / median time of the public op, GB/s.</summary>
    public double GBps => Bytes / (Timing.MedianMs * 1e6);

    /// <summary>Bytes / median time of the kernel alone, GB/s; NaN where not timed.</summary>
    public double KernelGBps => Kernel is null ? double.NaN : Bytes / (Kernel.MedianMs * 1e6);
}

/// <summary>Times the training ops on one backend.</summary>
public static class TrainingOpsBenchmark
{
    /// <summary>The CSV columns (fractions are of the bandwidths measured in the same run; kernel_* empty off Managed).</summary>
    public const string CsvHeader = "backend,op,pass,shape,bytes,working_set_mb,median_ms,min_ms,max_ms,gbps,copy_gbps,copy_fraction,read_gbps,read_fraction," +
                                    "kernel_median_ms,kernel_gbps,kernel_copy_fraction," + LoadCheck.CsvHeader;

    /// <summary>Validates every op, measures the bandwidths, times each op and pass and writes the report; 0, or 1 when validation fails.</summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="device">The backend to run on.</param>
    /// <param name="quick">Small shapes, 64 MiB bandwidth buffers, at most 3 repeats (seconds; tests and smoke runs).</param>
    /// <param name="repeats">Timed samples per point.</param>
    /// <param name="load">The load check taken at the command's start.</param>
    /// <param name="outDir">Folder for training-ops-&lt;backend&gt;-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    public static int Run(TextWriter output, Device device, bool quick, int repeats, LoadCheck load, string? outDir, string? command)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        var managed = device.Backend == Backend.Managed;
        var backendName = BackendName(device.Backend);
        var report = new StringBuilder();
        report.Append(Bench.ReportHeader($"Training ops on {device}, {started:yyyy-MM-dd HH:mm} UTC", load, command));
        Bench.Progress("validate the training ops against the float64 reference");
        var validation = Validate(device);
        foreach (var line in validation.Lines) report.AppendLine($"- {line}");
        if (!validation.Ok)
        {
            output.Write(report);
            return 1;
        }

        repeats = quick ? Math.Min(repeats, 3) : repeats;
        var minSampleMs = quick ? 10 : 50;
        var bandwidthBytes = quick ? 64L << 20 : 512L << 20;
        var bandwidthRepeats = quick ? 3 : 7;
        Bench.Progress("memory bandwidth");
        double copy, read = double.NaN;
        string bandwidthHow;
        if (device.Accelerator is null || device.Accelerator.AcceleratorType == ILGPU.Runtime.AcceleratorType.CPU)
        {
            read = ReadBandwidth.Measure(bandwidthBytes, bandwidthRepeats);
            copy = CopyBandwidth.Measure(bandwidthBytes, bandwidthRepeats);
            bandwidthHow = string.Create(Bench.Inv,
                $"memory copy {copy:F1} GB/s (read + write, {Environment.ProcessorCount} threads, {bandwidthBytes >> 20} MiB, median of {bandwidthRepeats}); " +
                $"read stream {read:F1} GB/s (Vector{ReadBandwidth.VectorBits} sum, same buffer size)");
        }
        else
        {
            var peak = DevicePeak.Measure(device, quick);
            copy = peak.CopyGBps;
            bandwidthHow = peak.How;
        }
        report.AppendLine($"- bandwidth: {bandwidthHow}");

        var rows = new List<TrainingOpTiming>();
        void Time(string op, string pass, string shape, double bytes, double workingSet, Action call, Action? kernel)
        {
            Bench.Progress($"{op} {pass} {shape}");
            var timing = Bench.Time(device, call, repeats, minSampleMs);
            var kernelTiming = managed && kernel is not null ? Bench.TimeHost(kernel, repeats, minSampleMs) : null;
            rows.Add(new TrainingOpTiming(op, pass, shape, bytes, workingSet, timing, kernelTiming));
        }

        var tokens = quick ? 256 : 4096;
        int[] widths = quick ? [64] : [256, 1024];
        foreach (var c in widths) Norms(device, managed, tokens, c, Time);
        foreach (var c in widths) Activations(device, managed, tokens, c, Time);
        var ceTokens = quick ? 64 : 1024;
        int[] vocabularies = quick ? [256] : [256, 32768];
        foreach (var v in vocabularies) CrossEntropyCase(device, managed, ceTokens, v, Time);
        foreach (var c in widths) EmbeddingCase(device, managed, tokens, c, quick ? 1024 : 32768, Time);
        var parameters = quick ? 1 << 20 : 10_000_000;
        AdamWCase(device, managed, parameters, Time);
        ClipCase(device, managed, parameters, Time);

        report.AppendLine("- GB/s counts the minimum bytes each op must read plus write (file header of perf/Training/TrainingOpsBenchmark.cs); " +
                          "\"op\" times the public call with its argument checks, \"kernel\" (Managed only) the routine it dispatches to, without them.");
        report.AppendLine("- % of copy divides by the copy's read + write rate, the roofline of an op that reads and writes; working sets of a few MiB " +
                          "live in the caches and can pass 100%.");
        report.AppendLine(string.Create(Bench.Inv, $"- median of {repeats} samples after a warm-up, each sample >= {minSampleMs} ms of back-to-back calls; spread = (max - min) / median"));
        report.AppendLine();
        report.AppendLine("| op | pass | shape | MB moved | working set MB | op ms | spread | op GB/s | op % of copy | op % of read | kernel ms | kernel GB/s | kernel % of copy |");
        report.AppendLine("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var t in rows)
            report.AppendLine(string.Create(Bench.Inv,
                $"| {t.Op} | {t.Pass} | {t.Shape} | {t.Bytes / 1e6:F1} | {t.WorkingSetBytes / 1e6:F1} | {t.Timing.MedianMs:F3} | {100 * t.Timing.Spread:F0}% | " +
                $"{t.GBps:F1} | {100 * t.GBps / copy:F0}% | {Percent(t.GBps, read)} | {(t.Kernel is { } k ? k.MedianMs.ToString("F3", Bench.Inv) : "n/a")} | " +
                $"{(t.Kernel is null ? "n/a" : t.KernelGBps.ToString("F1", Bench.Inv))} | {Percent(t.KernelGBps, copy)} |"));
        report.AppendLine().AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            var csv = new StringBuilder(CsvHeader + "\n");
            foreach (var t in rows) csv.AppendLine(CsvRow(backendName, t, copy, read, load));
            Directory.CreateDirectory(outDir);
            var stem = Path.Combine(outDir, $"training-ops-{backendName}-{started:yyyy-MM-dd}");
            File.WriteAllText(stem + ".md", report.ToString());
            File.WriteAllText(stem + ".csv", csv.ToString());
        }
        return 0;
    }

    /// <summary>One row of <see cref="CsvHeader"/>; NaN fields are left empty.</summary>
    public static string CsvRow(string backend, TrainingOpTiming t, double copyGBps, double readGBps, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(load);
        static string F(double x, string format) => double.IsFinite(x) ? x.ToString(format, Bench.Inv) : "";
        return string.Join(',',
            backend, t.Op, t.Pass, t.Shape, F(t.Bytes, "F0"), F(t.WorkingSetBytes / 1e6, "F2"),
            F(t.Timing.MedianMs, "F4"), F(t.Timing.MinMs, "F4"), F(t.Timing.MaxMs, "F4"), F(t.GBps, "F2"),
            F(copyGBps, "F2"), F(t.GBps / copyGBps, "F4"), F(readGBps, "F2"), F(t.GBps / readGBps, "F4"),
            F(t.Kernel?.MedianMs ?? double.NaN, "F4"), F(t.KernelGBps, "F2"), F(t.KernelGBps / copyGBps, "F4"),
            load.CsvFields);
    }

    private static string Percent(double x, double of) => double.IsFinite(x) && double.IsFinite(of) ? (100 * x / of).ToString("F0", Bench.Inv) + "%" : "n/a";

    private static string BackendName(Backend backend) => backend switch
    {
        Backend.Managed => "managed",
        Backend.IlgpuCpu => "ilgpu-cpu",
        _ => backend.ToString().ToLowerInvariant(),
    };

    private delegate void Timer(string op, string pass, string shape, double bytes, double workingSet, Action call, Action? kernel);

    private static void Norms(Device device, bool managed, int t, int c, Timer time)
    {
        var shape = $"T={t} C={c}";
        double tc = (double)t * c;
        using var x = device.FromArray(Bench.Normal(t * c, 11), t, c);          // [T, C]
        using var dy = device.FromArray(Bench.Normal(t * c, 12), t, c);         // [T, C]
        using var w = device.FromArray(Bench.Normal(c, 13), c);                 // [C]
        using var b = device.FromArray(Bench.Normal(c, 14), c);                 // [C]
        using (var fwd = LayerNorm.Forward(x, w, b))
        using (var grads = LayerNorm.Backward(dy, x, w, fwd))
        {
            time("LayerNorm", "forward", shape, 8 * tc + 8.0 * c + 8.0 * t, 8 * tc + 8.0 * c + 8.0 * t,
                () => LayerNorm.Forward(x, w, b, LayerNorm.DefaultEps, fwd),
                managed ? () => LayerNormManaged.Forward(x.Host, w.Host, b.Host, fwd.Y.Host, fwd.Mean.Host, fwd.Rstd.Host, t, c, LayerNorm.DefaultEps) : null);
            time("LayerNorm", "backward", shape, 12 * tc + 12.0 * c + 8.0 * t, 12 * tc + 12.0 * c + 8.0 * t,
                () => LayerNorm.Backward(dy, x, w, fwd, grads),
                managed ? () => LayerNormManaged.Backward(dy.Host, x.Host, w.Host, fwd.Mean.Host, fwd.Rstd.Host, grads.DX.Host, grads.DWeight.Host, grads.DBias.Host, t, c) : null);
        }
        using (var fwd = RmsNorm.Forward(x, w))
        using (var grads = RmsNorm.Backward(dy, x, w, fwd))
        {
            time("RmsNorm", "forward", shape, 8 * tc + 4.0 * c + 4.0 * t, 8 * tc + 4.0 * c + 4.0 * t,
                () => RmsNorm.Forward(x, w, RmsNorm.DefaultEps, fwd),
                managed ? () => RmsNormManaged.Forward(x.Host, w.Host, fwd.Y.Host, fwd.Rstd.Host, t, c, RmsNorm.DefaultEps) : null);
            time("RmsNorm", "backward", shape, 12 * tc + 8.0 * c + 4.0 * t, 12 * tc + 8.0 * c + 4.0 * t,
                () => RmsNorm.Backward(dy, x, w, fwd, grads),
                managed ? () => RmsNormManaged.Backward(dy.Host, x.Host, w.Host, fwd.Rstd.Host, grads.DX.Host, grads.DWeight.Host, t, c) : null);
        }
    }

    private static void Activations(Device device, bool managed, int t, int c, Timer time)
    {
        var shape = $"T={t} C={c}";
        var n = (double)t * c * sizeof(float);
        using var x = device.FromArray(Bench.Normal(t * c, 21), t, c);   // [T, C]
        using var dy = device.FromArray(Bench.Normal(t * c, 22), t, c);  // [T, C]
        using var y = device.Zeros(t, c);                               // [T, C]
        using var dx = device.Zeros(t, c);                              // [T, C]
        time("Gelu (tanh)", "forward", shape, 2 * n, 2 * n, () => Gelu.Forward(x, GeluForm.Tanh, y), managed ? () => GeluManaged.ForwardTanh(x.Host, y.Host) : null);
        time("Gelu (tanh)", "backward", shape, 3 * n, 3 * n, () => Gelu.Backward(dy, x, GeluForm.Tanh, dx), managed ? () => GeluManaged.BackwardTanh(dy.Host, x.Host, dx.Host) : null);
        time("Silu", "forward", shape, 2 * n, 2 * n, () => Silu.Forward(x, y), managed ? () => SiluManaged.Forward(x.Host, y.Host) : null);
        time("Silu", "backward", shape, 3 * n, 3 * n, () => Silu.Backward(dy, x, dx), managed ? () => SiluManaged.Backward(dy.Host, x.Host, dx.Host) : null);
        time("Relu", "forward", shape, 2 * n, 2 * n, () => Relu.Forward(x, y), managed ? () => ReluManaged.Forward(x.Host, y.Host) : null);
        time("Relu", "backward", shape, 3 * n, 3 * n, () => Relu.Backward(dy, x, dx), managed ? () => ReluManaged.Backward(dy.Host, x.Host, dx.Host) : null);
    }

    private static void CrossEntropyCase(Device device, bool managed, int t, int v, Timer time)
    {
        var rng = new Random(31);
        using var logits = device.FromArray(Bench.Normal((long)t * v, 32), t, v);                          // [T, V]
        using var targets = device.FromArray(Enumerable.Range(0, t).Select(_ => (float)rng.Next(v)).ToArray(), t); // [T]
        using var o = CrossEntropy.Forward(logits, targets);
        var bytes = 8.0 * t * v + 8.0 * t + 4;
        time("CrossEntropy", "fwd+bwd (fused)", $"T={t} V={v}", bytes, bytes, () => CrossEntropy.Forward(logits, targets, CrossEntropy.DefaultIgnoreIndex, o),
            managed ? () => CrossEntropyManaged.Forward(logits.Host, targets.Host, t, v, CrossEntropy.DefaultIgnoreIndex, o.Losses.Host, o.DLogits.Host) : null);
    }

    private static void EmbeddingCase(Device device, bool managed, int t, int c, int v, Timer time)
    {
        var rng = new Random(41);
        var idValues = Enumerable.Range(0, t).Select(_ => rng.Next(v)).ToArray();
        var distinct = idValues.Distinct().Count();
        var shape = $"T={t} C={c} V={v}";
        using var table = device.FromArray(Bench.Normal((long)v * c, 42), v, c);             // [V, C]
        using var ids = device.FromArray(Array.ConvertAll(idValues, i => (float)i), t);      // [T]
        using var dOut = device.FromArray(Bench.Normal((long)t * c, 43), t, c);              // [T, C]
        using var dTable = device.Zeros(v, c);                                              // [V, C]
        using var output = Embedding.Forward(table, ids);
        double tc = (double)t * c;
        time("Embedding", "forward", shape, 8 * tc + 4.0 * t, 4.0 * distinct * c + 4 * tc + 4.0 * t, () => Embedding.Forward(table, ids, output),
            managed ? () => EmbeddingManaged.Forward(table.Host, ids.Host, t, c, output.Host) : null);
        // dTable accumulates over the timed calls (as across micro-batches); the values stay finite.
        time("Embedding", "backward", shape, 4 * tc + 4.0 * t + 8.0 * distinct * c, 4 * tc + 4.0 * t + 4.0 * distinct * c, () => Embedding.Backward(dOut, ids, dTable),
            managed ? () => EmbeddingManaged.Backward(dOut.Host, ids.Host, t, c, v, dTable.Host) : null);
    }

    private static void AdamWCase(Device device, bool managed, int n, Timer time)
    {
        using var p = device.FromArray(Bench.Normal(n, 51), n);   // [N]
        using var g = device.FromArray(Bench.Normal(n, 52), n);   // [N]
        using var m = device.Zeros(n);                           // [N]
        using var v = device.Zeros(n);                           // [N]
        // Half decayed (matrices), half not (vectors): the mask is read either way.
        using var decay = DecayMask.Create(device, n, [new ParameterSegment(0, n / 2, true), new ParameterSegment(n / 2, n - n / 2, false)]);
        var options = new AdamWOptions();
        const float lr = 1e-3f;
        const int step = 10;
        var lrDecay = (float)((double)lr * options.WeightDecay);
        var stepSize = (float)(lr / (1.0 - Math.Pow(options.Beta1, step)));
        var sqrtCorrection2 = (float)Math.Sqrt(1.0 - Math.Pow(options.Beta2, step));
        time("AdamW", "step", $"N={n}", 32.0 * n, 20.0 * n, () => AdamW.Step(p, g, m, v, decay, options, step, lr),
            managed ? () => AdamWManaged.Update(p.Host, g.Host, m.Host, v.Host, decay.Mask.Host, lrDecay, options.Beta1, options.Beta2, stepSize, sqrtCorrection2, options.Eps) : null);
    }

    private static void ClipCase(Device device, bool managed, int n, Timer time)
    {
        var values = Bench.Normal(n, 61);
        var norm = Math.Sqrt(values.Sum(x => (double)x * x));
        using var g = device.FromArray(values, n);  // [N]
        using var result = device.Zeros(1);         // [1]
        time("GradientClip", "norm only (no clip)", $"N={n}", 4.0 * n, 4.0 * n, () => GradientClip.ClipGlobalNorm(g, float.MaxValue, result),
            managed ? () => GradientClipManaged.ClipGlobalNorm(g.Host, float.MaxValue) : null);
        // Every call must clip: after a call the norm is ~maxNorm, so the next call's maxNorm is 0.1% lower (host-side
        // bookkeeping, no read-back). 0.999^k stays far from float32's subnormals for the calls a run makes.
        var maxNorm = norm;
        float Next() => (float)(maxNorm *= 0.999);
        time("GradientClip", "norm + scale", $"N={n}", 12.0 * n, 4.0 * n, () => GradientClip.ClipGlobalNorm(g, Next(), result),
            managed ? () => GradientClipManaged.ClipGlobalNorm(g.Host, Next()) : null);
    }

    /// <summary>Every op once on <paramref name="device"/> at small awkward shapes against the float64 reference.</summary>
    /// <returns>Whether all passed, and one line per op.</returns>
    public static (bool Ok, List<string> Lines) Validate(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        const int t = 37, c = 131, v = 97;
        var lines = new List<string>();
        var ok = true;
        void Check(string what, float[] actual, double[] reference)
        {
            // Relative to the output's scale: float32 rounding of sums over <= 131 terms stays far below 1e-4.
            var scale = Math.Max(1, reference.Max(Math.Abs));
            var err = 0.0;
            for (var i = 0; i < reference.Length; i++)
            {
                var e = Math.Abs(actual[i] - reference[i]);
                err = double.IsNaN(e) ? double.PositiveInfinity : Math.Max(err, e);
            }
            var pass = err <= 1e-4 * scale;
            ok &= pass;
            lines.Add(string.Create(Bench.Inv, $"validated {what}: max error {err:E1} {(pass ? "<=" : "> (FAILED)")} 1e-4 x {scale:G3}"));
        }
        float[] xs = Bench.Normal(t * c, 1), dys = Bench.Normal(t * c, 2), ws = Bench.Normal(c, 3), bs = Bench.Normal(c, 4);
        double[] x = Bench.Widen(xs), dy = Bench.Widen(dys), w = Bench.Widen(ws), b = Bench.Widen(bs);
        using var tx = device.FromArray(xs, t, c);
        using var tdy = device.FromArray(dys, t, c);
        using var tw = device.FromArray(ws, c);
        using var tb = device.FromArray(bs, c);
        using (var fwd = LayerNorm.Forward(tx, tw, tb))
        using (var grads = LayerNorm.Backward(tdy, tx, tw, fwd))
        {
            var rf = LayerNormReference.Forward(x, w, b, t, c, (double)LayerNorm.DefaultEps);
            var rb = LayerNormReference.Backward(dy, x, w, rf.Mean, rf.Rstd, t, c);
            Check($"LayerNorm forward y [{t}, {c}]", fwd.Y.ToArray(), rf.Y);
            Check("LayerNorm backward dx", grads.DX.ToArray(), rb.DX);
            Check("LayerNorm backward dweight, dbias", [.. grads.DWeight.ToArray(), .. grads.DBias.ToArray()], [.. rb.DWeight, .. rb.DBias]);
        }
        using (var fwd = RmsNorm.Forward(tx, tw))
        using (var grads = RmsNorm.Backward(tdy, tx, tw, fwd))
        {
            var rf = RmsNormReference.Forward(x, w, t, c, (double)RmsNorm.DefaultEps);
            var rb = RmsNormReference.Backward(dy, x, w, rf.Rstd, t, c);
            Check("RmsNorm forward y", fwd.Y.ToArray(), rf.Y);
            Check("RmsNorm backward dx, dweight", [.. grads.DX.ToArray(), .. grads.DWeight.ToArray()], [.. rb.DX, .. rb.DWeight]);
        }
        using (var y = Gelu.Forward(tx, GeluForm.Tanh)) Check("Gelu (tanh) forward", y.ToArray(), ActivationReference.GeluForward(x, GeluForm.Tanh));
        using (var d = Gelu.Backward(tdy, tx, GeluForm.Tanh)) Check("Gelu (tanh) backward", d.ToArray(), ActivationReference.GeluBackward(dy, x, GeluForm.Tanh));
        using (var y = Silu.Forward(tx)) Check("Silu forward", y.ToArray(), ActivationReference.SiluForward(x));
        using (var d = Silu.Backward(tdy, tx)) Check("Silu backward", d.ToArray(), ActivationReference.SiluBackward(dy, x));
        using (var y = Relu.Forward(tx)) Check("Relu forward", y.ToArray(), ActivationReference.ReluForward(x));
        using (var d = Relu.Backward(tdy, tx)) Check("Relu backward", d.ToArray(), ActivationReference.ReluBackward(dy, x));

        var rng = new Random(5);
        var targets = Enumerable.Range(0, t).Select(i => i == 3 ? CrossEntropy.DefaultIgnoreIndex : rng.Next(v)).ToArray();
        var logits = Bench.Normal(t * v, 6);
        using (var tl = device.FromArray(logits, t, v))
        using (var tt = device.FromArray(Array.ConvertAll(targets, i => (float)i), t))
        using (var o = CrossEntropy.Forward(tl, tt))
        {
            var r = CrossEntropyReference.Forward(Bench.Widen(logits), targets, t, v, CrossEntropy.DefaultIgnoreIndex);
            Check($"CrossEntropy losses, mean [{t}, {v}] (one row ignored)", [.. o.Losses.ToArray(), .. o.Mean.ToArray()], [.. r.Losses, r.Mean]);
            Check("CrossEntropy dlogits", o.DLogits.ToArray(), r.DLogits);
        }

        var ids = Enumerable.Range(0, t).Select(_ => rng.Next(v)).ToArray();
        var table = Bench.Normal(v * c, 7);
        using (var tt = device.FromArray(table, v, c))
        using (var ti = device.FromArray(Array.ConvertAll(ids, i => (float)i), t))
        using (var o = Embedding.Forward(tt, ti))
        using (var dt = device.FromArray(table, v, c))
        {
            Check($"Embedding forward [{v}, {c}] x {t} ids", o.ToArray(), EmbeddingReference.Forward(Bench.Widen(table), ids, c));
            Embedding.Backward(tdy, ti, dt);
            Check("Embedding backward (accumulating into a nonzero table)", dt.ToArray(), EmbeddingReference.Backward(dy, ids, c, Bench.Widen(table)));
        }

        const int n = 1031;
        float[] ps = Bench.Normal(n, 8), gs = Bench.Normal(n, 9), ms = Bench.Normal(n, 10), vs = Array.ConvertAll(Bench.Normal(n, 11), Math.Abs);
        var decayFlags = Enumerable.Range(0, n).Select(i => i < 700).ToArray();
        using (var tp = device.FromArray(ps, n))
        using (var tg = device.FromArray(gs, n))
        using (var tm = device.FromArray(ms, n))
        using (var tv = device.FromArray(vs, n))
        using (var mask = DecayMask.Create(device, n, [new ParameterSegment(0, 700, true), new ParameterSegment(700, n - 700, false)]))
        {
            var options = new AdamWOptions();
            AdamW.Step(tp, tg, tm, tv, mask, options, 3, 1e-2f);
            double[] rp = Bench.Widen(ps), rm = Bench.Widen(ms), rv = Bench.Widen(vs);
            AdamWReference.Step(rp, Bench.Widen(gs), rm, rv, decayFlags, 1e-2, options.Beta1, options.Beta2, options.Eps, options.WeightDecay, 3);
            Check($"AdamW step 3 p, m, v [{n}]", [.. tp.ToArray(), .. tm.ToArray(), .. tv.ToArray()], [.. rp, .. rm, .. rv]);
        }
        using (var tg = device.FromArray(gs, n))
        using (var norm = GradientClip.ClipGlobalNorm(tg, 5f))
        {
            var r = GradientClipReference.Clip(Bench.Widen(gs), 5.0);
            Check($"GradientClip norm and clipped g [{n}]", [.. norm.ToArray(), .. tg.ToArray()], [r.Norm, .. r.Clipped]);
        }
        return (ok, lines);
    }
}
