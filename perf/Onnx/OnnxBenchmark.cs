// `routekit-perf onnx`: RouteKit's Managed attention and feature norms side by side with ONNX Runtime's CPU provider,
// what a CPU user would reach for, in the same process and run. Models are built in code (OnnxModel) for each shape.
// Validate, then time: both RouteKit's and ONNX Runtime's outputs are checked against the float64 Reference first (the
// 2x rule for attention on the first and last (batch, head) slice; relative 1e-5 for the norms), and the command exits
// with 1 if either fails. Samples of the two are interleaved (RouteKit, ORT, RouteKit, ...) so that other load on a shared
// machine falls on both alike; the ratio is ORT's median time over RouteKit's (> 1: RouteKit is faster).
//
// ONNX Runtime runs with all graph optimisations and as many intra-op threads as RouteKit's Parallel.For gets (the
// logical cores), without spinning between runs; inputs and outputs are pre-allocated OrtValues over pinned arrays, so
// no copy is timed.
// Attention: the opset-23 Attention operator where ONNX Runtime's CPU provider runs it, and the MatMul-Softmax-MatMul
// graph (non-causal shapes) either way.
using System.Diagnostics;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf.Onnx;

/// <summary>One side-by-side row.</summary>
/// <param name="What">Op, graph and shape.</param>
/// <param name="RouteKit">RouteKit Managed timing.</param>
/// <param name="Ort">ONNX Runtime timing.</param>
/// <param name="Work">FLOPs (attention) or bytes read (norms) per call.</param>
/// <param name="Unit">"GFLOP/s" or "GB/s".</param>
public sealed record SideBySide(string What, Timing RouteKit, Timing Ort, double Work, string Unit)
{
    /// <summary>ORT median / RouteKit median: above 1 RouteKit is faster.</summary>
    public double Ratio => Ort.MedianMs / RouteKit.MedianMs;
}

/// <summary>The ONNX Runtime side by side.</summary>
public static class OnnxBenchmark
{
    /// <summary>Runs the side by side and writes the report (and, with outDir, a markdown file and a CSV). 0, or 1 on a failed validation.</summary>
    /// <param name="output">Receives the report.</param>
    /// <param name="quick">One small shape per op, for tests.</param>
    /// <param name="repeats">Interleaved samples per point.</param>
    /// <param name="outDir">Folder for onnxruntime-&lt;date&gt;.md and .csv, or null.</param>
    /// <param name="command">The command line, for the header.</param>
    /// <param name="load">The load check taken at the command's start (header and every CSV row).</param>
    public static int Run(TextWriter output, bool quick, int repeats, string? outDir, string command, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var started = DateTime.UtcNow;
        using var device = Device.Create(Backend.Managed);
        var report = new StringBuilder();
        report.AppendLine($"# RouteKit Managed vs ONNX Runtime {OrtEnv.Instance().GetVersionString()} (CPU provider), {started:yyyy-MM-dd HH:mm} UTC").AppendLine();
        foreach (var line in load.MarkdownLines()) report.AppendLine(line);
        report.AppendLine($"- machine: {Bench.CpuModel()}, {Environment.ProcessorCount} logical cores; {device.Name}");
        report.AppendLine($"- git commit: {Bench.GitCommit()}; command: `{command}`");

        using var options = CpuSessionOptions();
        var rows = new List<SideBySide>();
        var notes = new List<string>();
        int[] lengths = quick ? [128] : [1024, 2048, 4096];
        var (h, d) = quick ? (2, 64) : (4, 64);
        foreach (var n in lengths)
        foreach (var causal in new[] { false, true })
        foreach (var fused in new[] { true, false })
        {
            if (causal && !fused) continue; // the unfused graph has no mask
            var shape = new AttentionShape(1, h, n, n, d, causal, Score.Dot, false);
            Bench.Progress($"onnx attention {(fused ? "Attention-23" : "MatMul-Softmax-MatMul")} {shape}");
            var row = AttentionRow(device, options, shape, fused, repeats, output, notes);
            if (row is null) return 1;
            if (row.Value.Row is { } r) rows.Add(r);
        }
        (int R, int F)[] normShapes = quick ? [(256, 512)] : [(16384, 2048), (65536, 512)];
        foreach (var (r, f) in normShapes)
        {
            Bench.Progress($"onnx feature norms R={r} F={f}");
            var row = NormsRow(device, options, r, f, repeats, output);
            if (row is null) return 1;
            rows.Add(row);
        }

        report.AppendLine().AppendLine("| op (graph) | shape | RouteKit ms | spread | RouteKit rate | ORT ms | spread | ORT rate | ORT / RouteKit |");
        report.AppendLine("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var x in rows)
            report.AppendLine(string.Create(Bench.Inv,
                $"| {x.What} | {x.RouteKit.MedianMs:F3} | {100 * x.RouteKit.Spread:F0}% | {x.Work / x.RouteKit.MedianMs / 1e6:F1} {x.Unit} | " +
                $"{x.Ort.MedianMs:F3} | {100 * x.Ort.Spread:F0}% | {x.Work / x.Ort.MedianMs / 1e6:F1} {x.Unit} | {x.Ratio:F2}x |"));
        report.AppendLine();
        report.AppendLine($"Median of {repeats} interleaved samples after a warm-up, each sample >= 50 ms of back-to-back calls; spread = (max - min) / median. " +
                          "Attention FLOPs 4 B H N M D (halved when causal); norms: bytes of x read. Ratio > 1: RouteKit is faster.");
        foreach (var note in notes) report.AppendLine($"- {note}");
        report.AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"onnxruntime-{started:yyyy-MM-dd}.md"), report.ToString());
            var csv = new StringBuilder("op,shape,routekit_ms,routekit_min_ms,routekit_max_ms,ort_ms,ort_min_ms,ort_max_ms,work,unit,ort_over_routekit," + LoadCheck.CsvHeader + "\n");
            foreach (var x in rows)
            {
                var parts = x.What.Split(" | ");
                csv.AppendLine(string.Create(Bench.Inv,
                    $"{parts[0]},{parts[1]},{x.RouteKit.MedianMs:F4},{x.RouteKit.MinMs:F4},{x.RouteKit.MaxMs:F4},{x.Ort.MedianMs:F4},{x.Ort.MinMs:F4},{x.Ort.MaxMs:F4},{x.Work:G6},{x.Unit},{x.Ratio:F4},{load.CsvFields}"));
            }
            File.WriteAllText(Path.Combine(outDir, $"onnxruntime-{started:yyyy-MM-dd}.csv"), csv.ToString());
        }
        return 0;
    }

    /// <summary>
    /// The session options of every ONNX Runtime comparison (here and `routekit-perf gemm`): all graph optimisations,
    /// sequential execution, <see cref="Environment.ProcessorCount"/> intra-op threads (as many as RouteKit's
    /// Parallel.For and Sgemm's workers get), no spinning between runs.
    /// </summary>
    public static SessionOptions CpuSessionOptions()
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = Environment.ProcessorCount,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        };
        // ORT's pool threads spin after each run by default; interleaved with RouteKit's calls they would take the cores
        // from RouteKit's Parallel.For. Every ORT call here lasts milliseconds, so the wake-up latency is noise for it.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        return options;
    }

    // Null: a validation failed (reported). (null row): the graph is not runnable here (noted).
    private static (SideBySide? Row, bool)? AttentionRow(Device device, SessionOptions options, AttentionShape s, bool fused,
        int repeats, TextWriter output, List<string> notes)
    {
        InferenceSession session;
        try
        {
            session = new InferenceSession(OnnxModel.Attention(s.B, s.H, s.N, s.M, s.D, s.Causal, fused), options);
        }
        catch (OnnxRuntimeException e)
        {
            notes.Add($"opset-23 Attention not runnable by this ONNX Runtime's CPU provider: {e.Message.Split('\n')[0]}");
            return (null, false);
        }
        using (session)
        {
            long[] qShape = [s.B, s.H, s.N, s.D], kvShape = [s.B, s.H, s.M, s.D];
            float[] q = Bench.Normal(qShape.Aggregate((a, x) => a * x), 1), k = Bench.Normal(kvShape.Aggregate((a, x) => a * x), 2);
            float[] v = Bench.Normal(kvShape.Aggregate((a, x) => a * x), 3), y = new float[q.Length];
            using var oq = OrtValue.CreateTensorValueFromMemory(q, qShape);
            using var ok = OrtValue.CreateTensorValueFromMemory(k, kvShape);
            using var ov = OrtValue.CreateTensorValueFromMemory(v, kvShape);
            using var oy = OrtValue.CreateTensorValueFromMemory(y, qShape);
            using var run = new RunOptions();
            string[] inNames = ["q", "k", "v"], outNames = ["y"];
            OrtValue[] ins = [oq, ok, ov], outs = [oy];
            void Ort() => session.Run(run, inNames, ins, outNames, outs);

            using var tq = device.FromArray(q, s.B, s.H, s.N, s.D); // [B, H, N, D]
            using var tk = device.FromArray(k, s.B, s.H, s.M, s.D); // [B, H, M, D]
            using var tv = device.FromArray(v, s.B, s.H, s.M, s.D); // [B, H, M, D]
            var attentionOptions = s.Options;
            using var fwd = RouteKit.Attention.Forward(tq, tk, tv, attentionOptions);
            Ort();

            var graph = fused ? "Attention-23" : "MatMul-Softmax-MatMul";
            var (rkOk, rkMessage) = ValidateForward(s, q, k, v, fwd.Output.ToArray());
            var (ortOk, ortMessage) = ValidateForward(s, q, k, v, y);
            output.WriteLine($"validation {s}: RouteKit {rkMessage}; ORT {graph} {ortMessage}");
            if (!rkOk || !ortOk) return null;
            var (rk, ort) = Bench.Interleaved(() => RouteKit.Attention.Forward(tq, tk, tv, attentionOptions, fwd), Ort, repeats);
            return (new SideBySide($"attention forward ({graph}) | B{s.B} H{s.H} N=M={s.N} D{s.D}{(s.Causal ? " causal" : "")}", rk, ort, s.ForwardFlops, "GFLOP/s"), true);
        }
    }

    private static SideBySide? NormsRow(Device device, SessionOptions options, int rows, int features, int repeats, TextWriter output)
    {
        using var session = new InferenceSession(OnnxModel.FeatureNorms(rows, features), options);
        var x = Bench.Normal((long)rows * features, 5);
        float[] l1 = new float[rows], l2 = new float[rows];
        using var ox = OrtValue.CreateTensorValueFromMemory(x, [rows, features]);
        using var o1 = OrtValue.CreateTensorValueFromMemory(l1, [rows]);
        using var o2 = OrtValue.CreateTensorValueFromMemory(l2, [rows]);
        using var run = new RunOptions();
        string[] inNames = ["x"], outNames = ["l1", "l2"];
        OrtValue[] ins = [ox], outs = [o1, o2];
        void Ort() => session.Run(run, inNames, ins, outNames, outs);
        using var tx = device.FromArray(x, rows, features); // [R, F]
        using var norms = RouteKit.FeatureNorms.Forward(tx);
        Ort();
        var reference = FeatureNormsReference.Forward(Bench.Widen(x), rows, features);
        float[] rk1 = norms.L1.ToArray(), rk2 = norms.L2.ToArray();
        double rkErr = 0, ortErr = 0;
        for (var r = 0; r < rows; r++)
        {
            rkErr = Math.Max(rkErr, Math.Max(Math.Abs(rk1[r] - reference.L1[r]) / reference.L1[r], Math.Abs(rk2[r] - reference.L2[r]) / reference.L2[r]));
            ortErr = Math.Max(ortErr, Math.Max(Math.Abs(l1[r] - reference.L1[r]) / reference.L1[r], Math.Abs(l2[r] - reference.L2[r]) / reference.L2[r]));
        }
        // Row sums of F floats: float32 accumulation drifts ~ sqrt(F) ulp; 1e-5 relative holds for F <= 16k with margin.
        var ok = rkErr <= 1e-5 && ortErr <= 1e-5;
        output.WriteLine(string.Create(Bench.Inv, $"validation feature norms R={rows} F={features}: max relative error RouteKit {rkErr:E1}, ORT {ortErr:E1} (limit 1e-5){(ok ? "" : " FAILED")}"));
        if (!ok) return null;
        var (rk, ort) = Bench.Interleaved(() => RouteKit.FeatureNorms.Forward(tx, norms), Ort, repeats);
        return new SideBySide($"feature norms (ReduceL1 + ReduceL2) | R={rows} F={features}", rk, ort, (double)rows * features * sizeof(float), "GB/s");
    }

    /// <summary>The 2x rule on O over the first and last (batch, head) slice, forward only.</summary>
    public static (bool Ok, string Message) ValidateForward(AttentionShape s, float[] q, float[] k, float[] v, float[] o)
    {
        var p = AttentionParams.Resolve([1, 1, s.N, s.D], [1, 1, s.M, s.D], [1, 1, s.M, s.D], s.Options);
        double err = 0, naiveErr = 0;
        foreach (var slice in AttentionBenchmark.Slices(s))
        {
            int qLen = s.N * s.D, kLen = s.M * s.D;
            float[] qs = q.AsSpan(slice * qLen, qLen).ToArray(), ks = k.AsSpan(slice * kLen, kLen).ToArray(), vs = v.AsSpan(slice * kLen, kLen).ToArray();
            var f64 = AttentionReference.Forward(p, Bench.Widen(qs), Bench.Widen(ks), Bench.Widen(vs)).Output;
            var f32 = AttentionReference.Forward(p, qs, ks, vs).Output;
            for (var i = 0; i < f64.Length; i++)
            {
                var e = Math.Abs(o[slice * qLen + i] - f64[i]);
                err = double.IsNaN(e) ? double.NaN : Math.Max(err, e);
                naiveErr = Math.Max(naiveErr, Math.Abs(f32[i] - f64[i]));
            }
        }
        var ok = !double.IsNaN(err) && err <= 2 * naiveErr + 1e-6;
        return (ok, string.Create(Bench.Inv, $"O {err:E1} vs naive f32 {naiveErr:E1}: {(ok ? "passed" : "FAILED")}"));
    }
}
