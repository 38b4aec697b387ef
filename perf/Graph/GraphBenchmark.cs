// Times the Managed GraphAttention (bindings/Managed/GraphAttentionManaged.cs) llm.c style: validate a small power-law
// graph against the float64 reference first (2x rule, forward and every gradient) and abort on a mismatch, then time
// forward and backward on a Chung-Lu power-law graph of 10^6 edges, reporting edges per second, GFLOP/s against the
// FMA peak measured in the same run, and the FLOP ratio of dense attention over the same nodes (N^2 D vs E D). In the
// same run it times dense Managed Attention.Forward / Backward (B 1, the same H and D, N = M, no mask, Dot scores) on
// the same problem, N = Nn queries and keys, or, when Nn^2 is too large to run, on a smaller square N' (--dense-n,
// default min(Nn, 8192); 2048 with --quick) scaled by Nn^2 / N'^2 (said so in the report), and prints graph time over
// dense time and edges/s over dense "edges" (N^2 query-key pairs) per second.
//
// Shapes: H heads (1), Nn nodes, E edges, D head dim (64).
// Run: `dotnet run -c Release --project perf -- graph [--quick] [--repeats N] [--dense-n N'] [--out DIR] [--allow-busy]`.
using System.Globalization;
using System.Text;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;
using static RouteKit.Perf.Common.Bench;

namespace RouteKit.Perf.Graph;

/// <summary>The validate-then-time benchmark of the Managed graph attention.</summary>
public static class GraphBenchmark
{
    /// <summary>
    /// A Chung-Lu style directed graph with power-law expected degrees (exponent <paramref name="gamma"/>): both ends of
    /// each edge drawn with probability proportional to w_i = (i + 1)^(-1/(gamma - 1)) until <paramref name="edges"/>
    /// distinct edges exist, every node's self-loop included. Deterministic for a seed.
    /// </summary>
    public static (int[] RowPtr, int[] ColIdx) PowerLaw(int nodes, int edges, int seed, double gamma = 2.1)
    {
        var cumulative = new double[nodes];
        var total = 0.0;
        for (var i = 0; i < nodes; i++) cumulative[i] = total += Math.Pow(i + 1, -1.0 / (gamma - 1));
        var rng = new Random(seed);
        int Draw()
        {
            var x = rng.NextDouble() * total;
            var i = Array.BinarySearch(cumulative, x);
            return Math.Min(i < 0 ? ~i : i, nodes - 1);
        }
        var lists = new HashSet<int>[nodes];
        for (var i = 0; i < nodes; i++) lists[i] = [i];
        var count = nodes;
        while (count < edges)
            if (lists[Draw()].Add(Draw())) count++;
        var rowPtr = new int[nodes + 1];
        var colIdx = new int[count];
        for (var i = 0; i < nodes; i++)
        {
            rowPtr[i + 1] = rowPtr[i] + lists[i].Count;
            lists[i].CopyTo(colIdx, rowPtr[i]);
        }
        return (rowPtr, colIdx);
    }

    /// <summary>Runs and prints the markdown report (and writes it under outDir); 1 on a failed validation.</summary>
    /// <param name="output">Where the report goes.</param>
    /// <param name="quick">Nn 10^4, E 10^5, 3 repeats, dense N' 2048.</param>
    /// <param name="repeats">Timed samples per pass.</param>
    /// <param name="load">The machine-load gate's reading, recorded in the report.</param>
    /// <param name="outDir">Where to write the report too; null for nowhere.</param>
    /// <param name="command">The command line, recorded in the report.</param>
    /// <param name="denseN">Queries and keys of the dense comparison (0: min(Nn, 8192), or 2048 with quick); scaled to Nn.</param>
    public static int Run(TextWriter output, bool quick, int repeats, LoadCheck load, string? outDir, string command, int denseN = 0)
    {
        ArgumentNullException.ThrowIfNull(load);
        var report = new StringBuilder(ReportHeader($"Managed graph attention benchmark, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC", load, command));
        using var device = Device.Create(Backend.Managed);
        Progress("validating against the float64 reference");
        var (ok, message) = Validate(device);
        report.AppendLine($"- validation (power-law graph Nn 1500, E 15000, H2 D59 Distance+Norm brake, 2x rule vs naive float32): {message}");
        if (!ok)
        {
            output.Write(report);
            Console.Error.WriteLine("validation failed: not timing a wrong kernel.");
            return 1;
        }

        int nodes = quick ? 10_000 : 100_000, edges = quick ? 100_000 : 1_000_000;
        const int h = 1, d = 64;
        Progress($"building a power-law graph: Nn {nodes}, E {edges}");
        var (rowPtr, colIdx) = PowerLaw(nodes, edges, seed: 2026);
        using var graph = CsrGraph.Create(device, rowPtr, colIdx);
        var degrees = Enumerable.Range(0, nodes).Select(graph.Degree).Order().ToArray();
        var inDegree = new int[nodes];
        foreach (var j in colIdx) inDegree[j]++;
        Progress("FMA peak");
        var peak = FmaPeak.Measure();

        using var q = device.FromArray(Normal((long)h * nodes * d, 1), h, nodes, d);
        using var k = device.FromArray(Normal((long)h * nodes * d, 2), h, nodes, d);
        using var v = device.FromArray(Normal((long)h * nodes * d, 3), h, nodes, d);
        using var dOut = device.FromArray(Normal((long)h * nodes * d, 4), h, nodes, d);
        var options = new GraphAttentionOptions { Score = Score.Dot, BrakeSlopes = [1f] };
        using var fwd = GraphAttention.Forward(graph, q, k, v, options);
        using var grads = GraphAttention.Backward(graph, dOut, q, k, v, fwd, options);
        repeats = quick ? 3 : repeats;
        Progress("timing the forward");
        var forward = Time(device, () => GraphAttention.Forward(graph, q, k, v, options, fwd), repeats);
        Progress("timing the backward");
        var backward = Time(device, () => GraphAttention.Backward(graph, dOut, q, k, v, fwd, options, grads), repeats);

        // Dense Managed attention on the same problem: N = M = Nn (or a smaller square N', scaled by Nn^2 / N'^2).
        var n = Math.Min(nodes, denseN > 0 ? denseN : quick ? 2048 : 8192);
        var denseScale = (double)nodes * nodes / ((double)n * n);
        Progress(n == nodes ? $"timing dense attention, N = M = {n}" : $"timing dense attention, N = M = {n} (scaled by Nn^2 / N^2 = {denseScale:G4})");
        Timing denseForward, denseBackward;
        {
            using var dq = device.FromArray(Normal((long)h * n * d, 5), 1, h, n, d);
            using var dk = device.FromArray(Normal((long)h * n * d, 6), 1, h, n, d);
            using var dv = device.FromArray(Normal((long)h * n * d, 7), 1, h, n, d);
            using var ddOut = device.FromArray(Normal((long)h * n * d, 8), 1, h, n, d);
            var denseOptions = new AttentionOptions { Score = Score.Dot };
            using var dfwd = RouteKit.Attention.Forward(dq, dk, dv, denseOptions);
            using var dgrads = RouteKit.Attention.Backward(ddOut, dq, dk, dv, dfwd, denseOptions);
            denseForward = Time(device, () => RouteKit.Attention.Forward(dq, dk, dv, denseOptions, dfwd), repeats);
            denseBackward = Time(device, () => RouteKit.Attention.Backward(ddOut, dq, dk, dv, dfwd, denseOptions, dgrads), repeats);
        }

        // FLOPs per edge and head: forward q.k (2D) + P v (2D); backward dQ pass q.k, dO.v, dz k (6D) and dK/dV pass
        // q.k, dO.v, dz q, P dO (8D).
        double e = graph.Edges, fwdFlops = 4.0 * h * e * d, bwdFlops = 14.0 * h * e * d;
        string Row(string what, Timing t, double flops) => string.Create(CultureInfo.InvariantCulture,
            $"| {what} | {t.MedianMs:F1} | {t.MinMs:F1}-{t.MaxMs:F1} | {h * e / (t.MedianMs * 1e-3) / 1e6:F1} | {flops / (t.MedianMs * 1e6):F2} | " +
            $"{100 * flops / (t.MedianMs * 1e6) / peak.GflopsPerSecond:F1} | {t.CpuMs:F1} | {100 * flops / (t.CpuMs * 1e6) / peak.GflopsPerCpuSecond:F1} |");
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"- graph: Chung-Lu power law (gamma 2.1, seed 2026, self-loops on every node): Nn {nodes:N0}, E {e:N0}, out-degree median " +
            $"{degrees[nodes / 2]}, p99 {degrees[nodes * 99 / 100]}, max {degrees[^1]}; max in-degree {inDegree.Max():N0}; " +
            $"Managed plan: {graph.RowPlan.Items.Length} row items ({graph.RowPlan.Hubs.Length} hubs split), {graph.ColumnPlan.Items.Length} column items ({graph.ColumnPlan.Hubs.Length} hubs)"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"- H {h}, D {d}, Dot scores, brake 1; FMA peak {peak.GflopsPerSecond:F1} GFLOP/s wall ({peak.Threads} threads, Vector{peak.VectorBits}), " +
            $"{peak.GflopsPerCpuSecond:F1} GFLOP per CPU-second"));
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"- dense attention over the same {nodes:N0} nodes costs N^2 D / (E D) = {(double)nodes * nodes / e:N0}x the graph's FLOPs"));
        report.AppendLine();
        report.AppendLine($"Median of {repeats} samples after a warm-up, each >= 50 ms. FLOPs: forward 4 E D H, backward 14 E D H.").AppendLine();
        report.AppendLine("| pass | median ms | min-max ms | Medges/s | GFLOP/s | % FMA peak (wall) | CPU ms | % FMA peak (CPU) |");
        report.AppendLine("|---|---|---|---|---|---|---|---|");
        report.AppendLine(Row("forward", forward, fwdFlops));
        report.AppendLine(Row("backward", backward, bwdFlops));
        report.AppendLine();
        var measured = n == nodes
            ? $"measured at N = M = Nn = {nodes:N0}"
            : $"measured at N = M = {n:N0} and scaled by Nn^2 / N^2 = {denseScale:G4} to Nn = {nodes:N0} (N^2 = Nn^2 would take too long to time; the scaling assumes a cost proportional to N^2)";
        report.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"Dense Managed attention on the same problem (B 1, H {h}, D {d}, Dot, no mask, one 'edge' per query-key pair, Nn^2 = {(double)nodes * nodes:G3} of them), {measured}:"))
            .AppendLine();
        report.AppendLine("| pass | dense median ms (measured) | dense ms at Nn | dense Mpairs/s | graph Medges/s | graph ms / dense ms | graph edges/s / dense pairs/s |");
        report.AppendLine("|---|---|---|---|---|---|---|");
        string DenseRow(string what, Timing graphTime, Timing dense)
        {
            var denseAtNodes = dense.MedianMs * denseScale;
            double pairsPerSecond = (double)h * n * n / (dense.MedianMs * 1e-3), edgesPerSecond = h * e / (graphTime.MedianMs * 1e-3);
            return string.Create(CultureInfo.InvariantCulture,
                $"| {what} | {dense.MedianMs:F1} ({dense.MinMs:F1}-{dense.MaxMs:F1}) | {denseAtNodes:F1} | {pairsPerSecond / 1e6:F1} | {edgesPerSecond / 1e6:F1} | " +
                $"{graphTime.MedianMs / denseAtNodes:G3} | {edgesPerSecond / pairsPerSecond:G3} |");
        }
        report.AppendLine(DenseRow("forward", forward, denseForward));
        report.AppendLine(DenseRow("backward", backward, denseBackward));
        report.AppendLine().AppendLine($"- load average at end: {LoadAverage()}");
        output.Write(report);
        if (outDir is not null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, $"graph-managed-{DateTime.UtcNow:yyyy-MM-dd}.md"), report.ToString());
        }
        return 0;
    }

    // The 2x rule on a small power-law graph with a split hub (edge chunks of 64), every output and gradient.
    private static (bool Ok, string Message) Validate(Device device)
    {
        const int h = 2, d = 59, nodes = 1500;
        var (rowPtr, colIdx) = PowerLaw(nodes, 15_000, seed: 7);
        using var graph = CsrGraph.Create(device, rowPtr, colIdx, edgeChunk: 64);
        var options = new GraphAttentionOptions { Score = Score.Distance, NormalizeKeys = true, BrakeSlopes = [0.5f, 2f], Diagnostics = true };
        var p = GraphAttentionParams.Resolve([h, nodes, d], [h, nodes, d], [h, nodes, d], nodes, colIdx.Length, options);
        var n = h * nodes * d;
        float[] q = Normal(n, 11), k = Normal(n, 12), v = Normal(n, 13), dOut = Normal(n, 14);
        using var tq = device.FromArray(q, h, nodes, d);
        using var tk = device.FromArray(k, h, nodes, d);
        using var tv = device.FromArray(v, h, nodes, d);
        using var tdo = device.FromArray(dOut, h, nodes, d);
        using var fwd = GraphAttention.Forward(graph, tq, tk, tv, options);
        using var grads = GraphAttention.Backward(graph, tdo, tq, tk, tv, fwd, options);
        var f64 = GraphAttentionReference.Forward(p, rowPtr, colIdx, Widen(q), Widen(k), Widen(v));
        var f32 = GraphAttentionReference.Forward(p, rowPtr, colIdx, q, k, v);
        var g64 = GraphAttentionReference.Backward(p, rowPtr, colIdx, Widen(dOut), Widen(q), Widen(k), Widen(v));
        var g32 = GraphAttentionReference.Backward(p, rowPtr, colIdx, dOut, q, k, v);
        var checks = new (string Name, float[] Actual, double[] Reference, float[] Naive)[]
        {
            ("O", fwd.Output.ToArray(), f64.Output, f32.Output), ("Lse", fwd.Lse.ToArray(), f64.Lse, f32.Lse),
            ("NormalizedEntropy", fwd.Diagnostics!.NormalizedEntropy.ToArray(), f64.NormalizedEntropy, f32.NormalizedEntropy),
            ("dQ", grads.DQ.ToArray(), g64.DQ, g32.DQ), ("dK", grads.DK.ToArray(), g64.DK, g32.DK), ("dV", grads.DV.ToArray(), g64.DV, g32.DV),
        };
        var parts = new List<string>();
        foreach (var (name, actual, reference, naive) in checks)
        {
            double err = 0, naiveErr = 0;
            for (var i = 0; i < actual.Length; i++)
            {
                if (double.IsInfinity(reference[i])) continue;
                err = Math.Max(err, Math.Abs(actual[i] - reference[i]));
                naiveErr = Math.Max(naiveErr, Math.Abs(naive[i] - reference[i]));
            }
            if (err > 2 * naiveErr + 1e-6) return (false, $"{name}: max error {err:G3} > 2 x naive float32 {naiveErr:G3} + 1e-6");
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{name} {err:G2} (naive {naiveErr:G2})"));
        }
        return (true, "passed: " + string.Join(", ", parts));
    }
}
