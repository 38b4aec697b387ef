// `routekit-perf attention`: one attention variant on one shape and backend, llm.c's way. First the forward and the
// backward on that shape are validated against the float64 Reference with the 2x rule (max |out - f64| <= 2 max
// |naive f32 - f64|, DESIGN.md section 6) and the command aborts with exit code 1 on a mismatch; only then are they timed
// (a warm-up call, then repeats; median and spread), reported as GFLOP/s and as a fraction of the device's peak measured
// in the same run (DevicePeak).
//
// Shapes: B batch, H heads (Hkv = H), N queries, M keys, D head dim. The reference builds an N x M score matrix per
// head in float64, so it checks the first and the last (batch, head) slice of the shape (every head runs the same code
// on its own rows; the two ends catch indexing errors), only the last above N M = 4096^2; validation of N = M = 4096
// takes seconds.
// The variant reaches the ILGPU dispatcher through the internal AttentionOptions.KernelVariant (forward N with backward
// N); validation and timing both run that variant. Managed has one fused implementation and accepts only variant 1.
// FLOPs: forward 4 B H N M D, backward 2.5x that, both halved when causal (FlashAttention's count; Distance adds O(M D)).
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;
using RouteKit.Reference;

namespace RouteKit.Perf.Attention;

/// <summary>An attention problem: shape and options.</summary>
/// <param name="B">Batch.</param>
/// <param name="H">Heads.</param>
/// <param name="N">Queries.</param>
/// <param name="M">Keys.</param>
/// <param name="D">Head dimension.</param>
/// <param name="Causal">Causal mask.</param>
/// <param name="Score">Dot or Distance.</param>
/// <param name="Normalize">Normalise keys.</param>
public sealed record AttentionShape(int B, int H, int N, int M, int D, bool Causal, Score Score, bool Normalize)
{
    /// <summary>Forward FLOPs (4 B H N M D, halved when causal).</summary>
    public double ForwardFlops => 4.0 * B * H * N * M * D * (Causal ? 0.5 : 1.0);

    /// <summary>The options this shape runs with.</summary>
    public AttentionOptions Options => new() { Score = Score, NormalizeKeys = Normalize, Causal = Causal };

    /// <summary>Parses "B,H,N,M,D".</summary>
    public static AttentionShape Parse(string text, bool causal, Score score, bool normalize)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 5 || !parts.All(p => int.TryParse(p, out var v) && v > 0))
            throw new ArgumentException($"--shape must be five positive integers B,H,N,M,D; got '{text}'.", nameof(text));
        var x = parts.Select(int.Parse).ToArray();
        return new AttentionShape(x[0], x[1], x[2], x[3], x[4], causal, score, normalize);
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"B{B} H{H} N{N} M{M} D{D} {Score}{(Normalize ? "+Norm" : "")}{(Causal ? " causal" : "")}";
}

/// <summary>One validated and timed attention point.</summary>
/// <param name="Shape">The problem.</param>
/// <param name="Backend">Where it ran.</param>
/// <param name="Validation">The validation line.</param>
/// <param name="Forward">Forward timing.</param>
/// <param name="Backward">Backward timing.</param>
/// <param name="Peak">The peaks measured in the same run.</param>
public sealed record AttentionResult(AttentionShape Shape, Backend Backend, string Validation, Timing Forward, Timing Backward, DevicePeakResult Peak)
{
    /// <summary>Forward GFLOP/s.</summary>
    public double ForwardGflops => Shape.ForwardFlops / Forward.MedianMs / 1e6;

    /// <summary>Backward GFLOP/s (2.5x the forward's FLOPs).</summary>
    public double BackwardGflops => 2.5 * Shape.ForwardFlops / Backward.MedianMs / 1e6;
}

/// <summary>Validate-then-time of one attention variant.</summary>
public static class AttentionBenchmark
{
    /// <summary>The variants the perf harness can time on ILGPU backends, numbered from 1 (forward and backward
    /// versions of kernels/Attention/ pair up by number; Managed has one fused implementation).</summary>
    public static int VariantCount => Math.Min(Kernels.Attention.AttentionForward.Variants.Count, Kernels.Attention.AttentionBackward.Variants.Count);

    /// <summary>
    /// Validates <paramref name="shape"/> on <paramref name="device"/>; returns null (and writes the mismatches to
    /// <paramref name="output"/>) when it fails, else times forward and backward.
    /// </summary>
    /// <param name="device">Where to run.</param>
    /// <param name="shape">The problem.</param>
    /// <param name="variant">Kernel version, 1..<see cref="VariantCount"/>.</param>
    /// <param name="repeats">Timed samples.</param>
    /// <param name="peak">The device's peaks, measured in the same run.</param>
    /// <param name="output">Receives the validation line.</param>
    /// <param name="minSampleMs">A sample repeats the call until it lasts this long (0: one call per sample).</param>
    public static AttentionResult? Run(Device device, AttentionShape shape, int variant, int repeats, DevicePeakResult peak, TextWriter output,
        double minSampleMs = 50)
    {
        if (variant < 1 || variant > VariantCount)
            throw new ArgumentOutOfRangeException(nameof(variant), variant, $"attention has variants 1..{VariantCount} (see `routekit-perf list`).");
        if (device.Backend == Backend.Managed && variant != 1)
            throw new ArgumentOutOfRangeException(nameof(variant), variant,
                "the Managed backend has one fused attention implementation (variant 1); variants 2.. are ILGPU kernels (cuda, opencl, ilgpu-cpu).");
        var (b, h, n, m, d) = (shape.B, shape.H, shape.N, shape.M, shape.D);
        var options = shape.Options with { KernelVariant = variant };
        float[] q = Bench.Normal((long)b * h * n * d, 1), k = Bench.Normal((long)b * h * m * d, 2);
        float[] v = Bench.Normal((long)b * h * m * d, 3), dOut = Bench.Normal((long)b * h * n * d, 4);
        using var tq = device.FromArray(q, b, h, n, d);     // [B, H, N, D]
        using var tk = device.FromArray(k, b, h, m, d);     // [B, H, M, D]
        using var tv = device.FromArray(v, b, h, m, d);     // [B, H, M, D]
        using var tdo = device.FromArray(dOut, b, h, n, d); // [B, H, N, D]
        using var fwd = RouteKit.Attention.Forward(tq, tk, tv, options);
        using var grads = RouteKit.Attention.Backward(tdo, tq, tk, tv, fwd, options);

        var (ok, message) = Validate(shape, q, k, v, dOut, fwd, grads);
        output.WriteLine($"validation of variant {variant} on {shape} ({device.Backend}): {message}");
        if (!ok) return null;

        var forward = Bench.Time(device, () => RouteKit.Attention.Forward(tq, tk, tv, options, fwd), repeats, minSampleMs);
        var backward = Bench.Time(device, () => RouteKit.Attention.Backward(tdo, tq, tk, tv, fwd, options, grads), repeats, minSampleMs);
        return new AttentionResult(shape, device.Backend, message, forward, backward, peak);
    }

    /// <summary>The 2x rule on O, Lse, dQ, dK and dV of the first and last (batch, head) slice.</summary>
    public static (bool Ok, string Message) Validate(AttentionShape shape, float[] q, float[] k, float[] v, float[] dOut,
        AttentionOutput fwd, AttentionGradients grads)
    {
        var (n, m, d) = (shape.N, shape.M, shape.D);
        var slices = Slices(shape);
        var p = AttentionParams.Resolve([1, 1, n, d], [1, 1, m, d], [1, 1, m, d], shape.Options);
        float[] o = fwd.Output.ToArray(), lse = fwd.Lse.ToArray(), dq = grads.DQ.ToArray(), dk = grads.DK.ToArray(), dv = grads.DV.ToArray();
        var worst = new Dictionary<string, (double Err, double Naive)>();
        foreach (var s in slices)
        {
            float[] qs = Slice(q, s, n * d), ks = Slice(k, s, m * d), vs = Slice(v, s, m * d), ds = Slice(dOut, s, n * d);
            double[] qd = Bench.Widen(qs), kd = Bench.Widen(ks), vd = Bench.Widen(vs), dd = Bench.Widen(ds);
            var f64 = AttentionReference.Forward(p, qd, kd, vd);
            var f32 = AttentionReference.Forward(p, qs, ks, vs);
            var g64 = AttentionReference.Backward(p, dd, qd, kd, vd);
            var g32 = AttentionReference.Backward(p, ds, qs, ks, vs);
            Accumulate(worst, "O", Slice(o, s, n * d), f64.Output, f32.Output);
            Accumulate(worst, "Lse", Slice(lse, s, n), f64.Lse, f32.Lse);
            Accumulate(worst, "dQ", Slice(dq, s, n * d), g64.DQ, g32.DQ);
            Accumulate(worst, "dK", Slice(dk, s, m * d), g64.DK, g32.DK);
            Accumulate(worst, "dV", Slice(dv, s, m * d), g64.DV, g32.DV);
        }
        var ok = true;
        var parts = new List<string>();
        foreach (var (what, (err, naive)) in worst)
        {
            // 1e-6 absolute floor: where the naive float32 error is exactly 0 (e.g. a constant row) any rounding would fail.
            var pass = !double.IsNaN(err) && err <= 2 * naive + 1e-6;
            ok &= pass;
            parts.Add(string.Create(Bench.Inv, $"{what} {err:E1} (naive {naive:E1}){(pass ? "" : " FAIL")}"));
        }
        return (ok, (ok ? "passed: " : "FAILED: ") + string.Join(", ", parts) + $" over (batch, head) slices {string.Join(" and ", slices)}");
    }

    /// <summary>
    /// The (batch, head) slices validation checks: the first and the last, or only the last when N M exceeds 4096^2 (the
    /// float64 reference backward at N = M = 8192 takes about a minute per slice on one core, and run.sh has 8 minutes).
    /// </summary>
    public static int[] Slices(AttentionShape shape) =>
        shape.B * shape.H == 1 ? [0] : (long)shape.N * shape.M > 4096L * 4096 ? [shape.B * shape.H - 1] : [0, shape.B * shape.H - 1];

    private static float[] Slice(float[] x, int slice, int length) => x.AsSpan(slice * length, length).ToArray();

    private static void Accumulate(Dictionary<string, (double Err, double Naive)> worst, string what, float[] actual, double[] reference, float[] naive)
    {
        double err = 0, naiveErr = 0;
        for (var i = 0; i < reference.Length; i++)
        {
            if (!double.IsFinite(reference[i])) continue; // masked rows: Lse = -inf in both
            var e = Math.Abs(actual[i] - reference[i]);
            err = double.IsNaN(e) ? double.NaN : Math.Max(err, e);
            naiveErr = Math.Max(naiveErr, Math.Abs(naive[i] - reference[i]));
            if (double.IsNaN(err)) break;
        }
        var previous = worst.GetValueOrDefault(what);
        worst[what] = (double.IsNaN(err) ? double.NaN : Math.Max(previous.Err, err), Math.Max(previous.Naive, naiveErr));
    }

    /// <summary>One markdown row (see <see cref="TableHeader"/>).</summary>
    public static string TableRow(AttentionResult r)
    {
        var peak = r.Peak.Gflops;
        return string.Create(Bench.Inv,
            $"| {r.Backend} | {r.Shape} | {r.Forward.MedianMs:F3} | {100 * r.Forward.Spread:F0}% | {r.ForwardGflops:F1} | {Percent(r.ForwardGflops, peak)} | " +
            $"{r.Backward.MedianMs:F3} | {100 * r.Backward.Spread:F0}% | {r.BackwardGflops:F1} | {Percent(r.BackwardGflops, peak)} | {r.Forward.Clock} |");
    }

    /// <summary>The markdown header of <see cref="TableRow"/>.</summary>
    public const string TableHeader =
        "| backend | shape | fwd ms (median) | fwd spread | fwd GFLOP/s | fwd % peak | bwd ms (median) | bwd spread | bwd GFLOP/s | bwd % peak | clock |\n" +
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|";

    /// <summary>The CSV header of <see cref="CsvRow"/>.</summary>
    public const string CsvHeader =
        "op,backend,b,h,n,m,d,causal,score,normalize,fwd_ms,fwd_min_ms,fwd_max_ms,fwd_gflops,fwd_peak_fraction,bwd_ms,bwd_min_ms,bwd_max_ms,bwd_gflops,bwd_peak_fraction,clock," +
        LoadCheck.CsvHeader;

    /// <summary>One CSV row; <paramref name="load"/> is the run's load check at start (the last four columns).</summary>
    public static string CsvRow(AttentionResult r, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        var s = r.Shape;
        return string.Create(Bench.Inv,
            $"attention,{r.Backend},{s.B},{s.H},{s.N},{s.M},{s.D},{s.Causal},{s.Score},{s.Normalize},{r.Forward.MedianMs:F4},{r.Forward.MinMs:F4},{r.Forward.MaxMs:F4}," +
            $"{r.ForwardGflops:F2},{r.ForwardGflops / r.Peak.Gflops:F4},{r.Backward.MedianMs:F4},{r.Backward.MinMs:F4},{r.Backward.MaxMs:F4}," +
            $"{r.BackwardGflops:F2},{r.BackwardGflops / r.Peak.Gflops:F4},{r.Forward.Clock},{load.CsvFields}");
    }

    /// <summary>"12.3%", or "n/a" when the peak is unknown.</summary>
    public static string Percent(double value, double peak) =>
        double.IsFinite(peak) && peak > 0 ? string.Create(Bench.Inv, $"{100 * value / peak:F1}%") : "n/a";
}
