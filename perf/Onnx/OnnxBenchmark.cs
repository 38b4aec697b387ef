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
// Attention: ONNX Runtime's fused contrib operator com.microsoft.MultiHeadAttention (inputs in its [B, N, H D] layout,
// transposed once before timing), the opset-23 Attention operator where the CPU provider runs it, and the
// MatMul-Softmax-MatMul graph (non-causal, N <= 4096: it materialises B H N M scores) at B1 H8 D64, N = M = 512..8192
// (issue 15's grid), causal and not. RouteKit's backward on the same shapes (non-causal) is timed after its own
// validation against the float64 reference, as GFLOP/s and % of the FMA peak measured at the start of the run.
// Run it again with DOTNET_EnableAVX512=0 for the Vector256 path: that restricts .NET's JIT only; ONNX Runtime is
// native code and keeps its own CPU dispatch (MLAS picks AVX-512 kernels where the CPU has them).
using System.Diagnostics;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
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
        int[] lengths = quick ? [128] : [512, 1024, 2048, 4096, 8192];
        var (h, d) = quick ? (2, 64) : (8, 64);
        Bench.Progress("FMA peak");
        var fma = FmaPeak.Measure(trials: quick ? 1 : 3);
        report.AppendLine(string.Create(Bench.Inv, $"- FMA peak measured at the start of this run: {fma.GflopsPerSecond:F1} GFLOP/s ({fma.Threads} threads, Vector{fma.VectorBits}); RouteKit runs at Vector{SimdWidth.ActiveBits}"));
        var backward = new List<AttentionResult>();
        var references = new Dictionary<AttentionShape, (double[] F64, float[] F32)[]>();
        foreach (var n in lengths)
        {
            foreach (var causal in new[] { false, true })
            foreach (var graph in new[] { OrtGraph.MultiHeadAttention, OrtGraph.Attention23, OrtGraph.MatMulSoftmaxMatMul })
            {
                if (graph == OrtGraph.MatMulSoftmaxMatMul && (causal || n > 4096)) continue; // no mask; N^2 H scores
                var shape = new AttentionShape(1, h, n, n, d, causal, Score.Dot, false);
                Bench.Progress($"onnx attention {Name(graph)} {shape}");
                var row = AttentionRow(device, options, shape, graph, repeats, output, notes, references);
                if (row is null) return 1;
                if (row.Value.Row is { } r) rows.Add(r);
            }
            var bwdShape = new AttentionShape(1, h, n, n, d, false, Score.Dot, false);
            Bench.Progress($"RouteKit backward {bwdShape}");
            var bwd = AttentionBenchmark.Run(device, bwdShape, 1, repeats, DevicePeak.Measure(device, quick: true), output);
            if (bwd is null) return 1;
            backward.Add(bwd);
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
        report.AppendLine().AppendLine("RouteKit Managed attention backward (validated against float64 first; FLOPs 2.5x the forward's):").AppendLine();
        report.AppendLine("| shape | backward ms | spread | GFLOP/s | % of FMA peak |").AppendLine("|---|---:|---:|---:|---:|");
        foreach (var b in backward)
            report.AppendLine(string.Create(Bench.Inv,
                $"| {b.Shape} | {b.Backward.MedianMs:F2} | {100 * b.Backward.Spread:F0}% | {b.BackwardGflops:F1} | {100 * b.BackwardGflops / fma.GflopsPerSecond:F0}% |"));
        foreach (var note in notes) report.AppendLine($"- {note}");
        report.AppendLine($"- load average at end: {Bench.LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            // Under DOTNET_EnableAVX512=0 (or AVX2=0) the files are named for RouteKit's width, beside the AVX-512 ones.
            var width = SimdWidth.ActiveBits == 512 ? "" : $"-vector{SimdWidth.ActiveBits}";
            File.WriteAllText(Path.Combine(outDir, $"onnxruntime{width}-{started:yyyy-MM-dd}.md"), report.ToString());
            var csv = new StringBuilder("op,shape,routekit_ms,routekit_min_ms,routekit_max_ms,ort_ms,ort_min_ms,ort_max_ms,work,unit,ort_over_routekit," + LoadCheck.CsvHeader + "\n");
            foreach (var x in rows)
            {
                var parts = x.What.Split(" | ");
                csv.AppendLine(string.Create(Bench.Inv,
                    $"{parts[0]},{parts[1]},{x.RouteKit.MedianMs:F4},{x.RouteKit.MinMs:F4},{x.RouteKit.MaxMs:F4},{x.Ort.MedianMs:F4},{x.Ort.MinMs:F4},{x.Ort.MaxMs:F4},{x.Work:G6},{x.Unit},{x.Ratio:F4},{load.CsvFields}"));
            }
            File.WriteAllText(Path.Combine(outDir, $"onnxruntime{width}-{started:yyyy-MM-dd}.csv"), csv.ToString());
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

    /// <summary>The ONNX Runtime graphs the attention rows time.</summary>
    private enum OrtGraph { MultiHeadAttention, Attention23, MatMulSoftmaxMatMul }

    private static string Name(OrtGraph graph) => graph switch
    {
        OrtGraph.MultiHeadAttention => "MultiHeadAttention (com.microsoft)",
        OrtGraph.Attention23 => "Attention-23",
        _ => "MatMul-Softmax-MatMul",
    };

    // [B, H, N, D] <-> [B, N, H D] (MultiHeadAttention's layout).
    private static float[] HeadsToLast(float[] x, int b, int h, int n, int d)
    {
        var y = new float[x.Length];
        for (var bi = 0; bi < b; bi++)
        for (var hi = 0; hi < h; hi++)
        for (var i = 0; i < n; i++)
            Array.Copy(x, (((long)bi * h + hi) * n + i) * d, y, (((long)bi * n + i) * h + hi) * d, d);
        return y;
    }

    private static float[] HeadsFromLast(float[] y, int b, int h, int n, int d)
    {
        var x = new float[y.Length];
        for (var bi = 0; bi < b; bi++)
        for (var hi = 0; hi < h; hi++)
        for (var i = 0; i < n; i++)
            Array.Copy(y, (((long)bi * n + i) * h + hi) * d, x, (((long)bi * h + hi) * n + i) * d, d);
        return x;
    }

    // Null: a validation failed (reported). (null row): the graph is not runnable here (noted).
    private static (SideBySide? Row, bool)? AttentionRow(Device device, SessionOptions options, AttentionShape s, OrtGraph graph,
        int repeats, TextWriter output, List<string> notes, Dictionary<AttentionShape, (double[] F64, float[] F32)[]> references)
    {
        var mha = graph == OrtGraph.MultiHeadAttention;
        InferenceSession session;
        try
        {
            session = new InferenceSession(mha
                ? OnnxModel.MultiHeadAttention(s.B, s.H, s.N, s.M, s.D, s.Causal)
                : OnnxModel.Attention(s.B, s.H, s.N, s.M, s.D, s.Causal, graph == OrtGraph.Attention23), options);
        }
        catch (OnnxRuntimeException e)
        {
            notes.Add($"{Name(graph)} not runnable by this ONNX Runtime's CPU provider: {e.Message.Split('\n')[0]}");
            return (null, false);
        }
        using (session)
        {
            long[] qShape = [s.B, s.H, s.N, s.D], kvShape = [s.B, s.H, s.M, s.D];
            float[] q = Bench.Normal(qShape.Aggregate((a, x) => a * x), 1), k = Bench.Normal(kvShape.Aggregate((a, x) => a * x), 2);
            float[] v = Bench.Normal(kvShape.Aggregate((a, x) => a * x), 3), y = new float[q.Length];
            float[] oq = q, ok = k, ov = v;
            long[] ortQ = qShape, ortKv = kvShape;
            if (mha)
            {
                (oq, ok, ov) = (HeadsToLast(q, s.B, s.H, s.N, s.D), HeadsToLast(k, s.B, s.H, s.M, s.D), HeadsToLast(v, s.B, s.H, s.M, s.D));
                (ortQ, ortKv) = ([s.B, s.N, (long)s.H * s.D], [s.B, s.M, (long)s.H * s.D]);
            }
            using var tq0 = OrtValue.CreateTensorValueFromMemory(oq, ortQ);
            using var tk0 = OrtValue.CreateTensorValueFromMemory(ok, ortKv);
            using var tv0 = OrtValue.CreateTensorValueFromMemory(ov, ortKv);
            using var oy = OrtValue.CreateTensorValueFromMemory(y, ortQ);
            using var run = new RunOptions();
            string[] inNames = ["q", "k", "v"], outNames = ["y"];
            OrtValue[] ins = [tq0, tk0, tv0], outs = [oy];
            void Ort() => session.Run(run, inNames, ins, outNames, outs);

            using var tq = device.FromArray(q, s.B, s.H, s.N, s.D); // [B, H, N, D]
            using var tk = device.FromArray(k, s.B, s.H, s.M, s.D); // [B, H, M, D]
            using var tv = device.FromArray(v, s.B, s.H, s.M, s.D); // [B, H, M, D]
            var attentionOptions = s.Options;
            using var fwd = RouteKit.Attention.Forward(tq, tk, tv, attentionOptions);
            Ort();

            if (!references.TryGetValue(s, out var reference)) references[s] = reference = References(s, q, k, v);
            var (rkOk, rkMessage) = ValidateForward(s, reference, fwd.Output.ToArray());
            var (ortOk, ortMessage) = ValidateForward(s, reference, mha ? HeadsFromLast(y, s.B, s.H, s.N, s.D) : y);
            output.WriteLine($"validation {s}: RouteKit {rkMessage}; ORT {Name(graph)} {ortMessage}");
            if (!rkOk || !ortOk) return null;
            var (rk, ort) = Bench.Interleaved(() => RouteKit.Attention.Forward(tq, tk, tv, attentionOptions, fwd), Ort, repeats);
            return (new SideBySide($"attention forward ({Name(graph)}) | B{s.B} H{s.H} N=M={s.N} D{s.D}{(s.Causal ? " causal" : "")}", rk, ort, s.ForwardFlops, "GFLOP/s"), true);
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

    /// <summary>The float64 and naive float32 outputs of the first and last (batch, head) slice (AttentionBenchmark.Slices).</summary>
    public static (double[] F64, float[] F32)[] References(AttentionShape s, float[] q, float[] k, float[] v)
    {
        var p = AttentionParams.Resolve([1, 1, s.N, s.D], [1, 1, s.M, s.D], [1, 1, s.M, s.D], s.Options);
        return AttentionBenchmark.Slices(s).Select(slice =>
        {
            int qLen = s.N * s.D, kLen = s.M * s.D;
            float[] qs = q.AsSpan(slice * qLen, qLen).ToArray(), ks = k.AsSpan(slice * kLen, kLen).ToArray(), vs = v.AsSpan(slice * kLen, kLen).ToArray();
            return (AttentionReference.Forward(p, Bench.Widen(qs), Bench.Widen(ks), Bench.Widen(vs)).Output, AttentionReference.Forward(p, qs, ks, vs).Output);
        }).ToArray();
    }

    /// <summary>The 2x rule on O over the first and last (batch, head) slice, forward only.</summary>
    public static (bool Ok, string Message) ValidateForward(AttentionShape s, float[] q, float[] k, float[] v, float[] o) =>
        ValidateForward(s, References(s, q, k, v), o);

    /// <summary>The 2x rule on O against <see cref="References"/> of the same inputs.</summary>
    public static (bool Ok, string Message) ValidateForward(AttentionShape s, (double[] F64, float[] F32)[] references, float[] o)
    {
        double err = 0, naiveErr = 0;
        var slices = AttentionBenchmark.Slices(s);
        for (var j = 0; j < slices.Length; j++)
        {
            var (f64, f32) = references[j];
            var qLen = s.N * s.D;
            for (var i = 0; i < f64.Length; i++)
            {
                var e = Math.Abs(o[slices[j] * qLen + i] - f64[i]);
                err = double.IsNaN(e) ? double.NaN : Math.Max(err, e);
                naiveErr = Math.Max(naiveErr, Math.Abs(f32[i] - f64[i]));
            }
        }
        var ok = !double.IsNaN(err) && err <= 2 * naiveErr + 1e-6;
        return (ok, string.Create(Bench.Inv, $"O {err:E1} vs naive f32 {naiveErr:E1}: {(ok ? "passed" : "FAILED")}"));
    }
}
