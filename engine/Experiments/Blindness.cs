// Key-magnitude blindness, quantified.
//
// Keys are random directions of norm sqrt(D), each scaled by exp(sigma z_j), z_j ~ N(0,1) drawn once per (seed, D) and
// reused for every sigma, so the curves are not noisy in sigma. At sigma = 0 every key has the same norm, the key bias
// -(s/2)|k|^2 that separates Distance from Dot is the same for every key and cancels in the softmax: the rows agree.
// As sigma grows, Distance penalises long keys and Dot does not, and the mean total-variation distance
// TV = mean_i 1/2 sum_j |P_dot(i,j) - P_dist(i,j)| grows.
//
// P is read from the op itself (not recomputed on the host): with V_j = e_(j - cD) for keys j of block c of D keys
// (and 0 elsewhere), output row i is the block c of P's row i, so ceil(M/D) forward calls give every P row. The same P
// is computed in float64 with AttentionReference.Scores and Softmax, and every point checks |TV_op - TV_ref|.
// With NormalizeKeys both scores see unit keys, so the normalised TV stays at rounding level for every sigma.
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;
using Spectre.Console;
using RouteKit.Reference;

namespace RouteKit.Engine.Experiments;

/// <summary>TV distance between Dot and Distance attention rows as the spread of key norms grows.</summary>
internal static class Blindness
{
    public const string Name = "blindness";

    /// <summary>Allowed |TV_op - TV_float64| per point: float32 P entries carry ~1e-6 error; TV sums M of them.</summary>
    public const double OpVsReference = 1e-4;

    /// <summary>TV at equal key norms (sigma = 0) and with normalised keys: rounding only.</summary>
    public const double Coincide = 1e-5;

    /// <summary>TV the largest sigma must reach for the claim "TV grows with sigma" to count as shown.</summary>
    public const double Grows = 0.05;

    /// <summary>The sweep grid of a profile on a backend (the simulator always runs the smoke grid).</summary>
    public sealed record Grid(double[] Sigmas, int[] Dims, int Heads, int N, int M);

    public static Grid GridFor(RunProfile profile, Backend backend) => (profile, backend) switch
    {
        (RunProfile.Smoke, _) or (_, Backend.IlgpuCpu) => new([0, 0.5, 1.0, 1.5], [8, 16], Heads: 2, N: 8, M: 24),
        // Dense below 0.5: with keys of norm sqrt(D) the key bias is (sqrt(D)/2) exp(2 sigma z), so TV is near 1 by sigma ~ 1.
        (RunProfile.Small, _) => new([0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0], [16, 32, 64, 128], Heads: 8, N: 256, M: 128),
        _ => new(Enumerable.Range(0, 61).Select(i => i / 20.0).ToArray(), [16, 32, 64, 128, 256], Heads: 8, N: 512, M: 512),
    };

    /// <summary>One point of the sweep.</summary>
    public sealed record Point(string Backend, int D, double Sigma, double TvOp, double TvRef, double TvNormOp, double TvNormRef)
    {
        /// <summary>The op's TVs agree with the float64 reference's within <see cref="OpVsReference"/>.</summary>
        public bool Passed => Math.Abs(TvOp - TvRef) <= OpVsReference && Math.Abs(TvNormOp - TvNormRef) <= OpVsReference;
    }

    /// <summary>The outcome of a run: every point (earlier runs' included when resumed) and the plots.</summary>
    public sealed record Result(string RunPath, List<Point> Points, string Png, string Svg)
    {
        /// <summary>Points whose op and reference TVs disagree.</summary>
        public int Failed => Points.Count(p => !p.Passed);
    }

    public static Result Run(RunContext ctx)
    {
        using var run = ctx.OpenRun(Name);
        var points = new List<SweepPoint>();
        foreach (var device in ctx.Devices)
        {
            var grid = GridFor(ctx.Profile, device.Backend);
            var backend = RunContext.BackendName(device.Backend);
            foreach (var d in grid.Dims)
                foreach (var sigma in grid.Sigmas)
                    points.Add(new(string.Create(CultureInfo.InvariantCulture, $"{backend}|D{d}|sigma{sigma:F2}"),
                        string.Create(CultureInfo.InvariantCulture, $"{backend} D={d} sigma={sigma:F2}"),
                        () => Measure(device, grid, d, sigma, ctx.Seed)));
        }
        Sweep.Run(ctx.Console, ctx.Interactive, Name, run, points);
        var all = run.Records.Select(Read).ToList();
        var png = Path.Combine(run.Path, "tv_vs_sigma.png");
        var svg = Path.Combine(run.Path, "tv_vs_sigma.svg");
        Plot(all, png, svg);
        run.WriteSummary(Summary(run, all));
        var failed = all.Count(p => !p.Passed);
        ctx.Console.WriteLine($"{Name}: {all.Count} points, {failed} with |TV_op - TV_ref| > {OpVsReference:0E+0}; plot {png}");
        return new Result(run.Path, all, png, svg);
    }

    /// <summary>Per (backend, D): what the curve shows for the three claims.</summary>
    public sealed record Curve(string Backend, int D, double TvAtZero, double TvAtMax, double SigmaMax, int Decreases, double MaxNormTv)
    {
        /// <summary>Equal norms agree, and TV rises monotonically to at least <see cref="Grows"/>.</summary>
        public bool ShowsGrowth => TvAtZero <= Coincide && TvAtMax >= Grows && Decreases == 0;

        /// <summary>With normalised keys Dot and Distance coincide at every sigma.</summary>
        public bool ShowsNormalisedCoincide => MaxNormTv <= Coincide;
    }

    public static List<Curve> Curves(IEnumerable<Point> points) => points
        .GroupBy(p => (p.Backend, p.D))
        .Select(g =>
        {
            var c = g.OrderBy(p => p.Sigma).ToList();
            var decreases = c.Zip(c.Skip(1), (a, b) => b.TvOp < a.TvOp - Coincide ? 1 : 0).Sum();
            return new Curve(g.Key.Backend, g.Key.D, c[0].TvOp, c[^1].TvOp, c[^1].Sigma, decreases, c.Max(p => p.TvNormOp));
        })
        .OrderBy(c => c.Backend, StringComparer.Ordinal).ThenBy(c => c.D).ToList();

    private static JsonObject Measure(Device device, Grid grid, int d, double sigma, int seed)
    {
        var (q, k) = Inputs(grid, d, sigma, seed);
        var shapeQ = new[] { 1, grid.Heads, grid.N, d };
        var shapeK = new[] { 1, grid.Heads, grid.M, d };
        var scale = (float)(1.0 / Math.Sqrt(d));
        AttentionOptions Opt(Score s, bool norm) => new() { Score = s, NormalizeKeys = norm, Scale = scale };
        var pDot = OpProbabilities(device, grid, d, q, k, Opt(Score.Dot, false));
        var pDist = OpProbabilities(device, grid, d, q, k, Opt(Score.Distance, false));
        var pDotN = OpProbabilities(device, grid, d, q, k, Opt(Score.Dot, true));
        var pDistN = OpProbabilities(device, grid, d, q, k, Opt(Score.Distance, true));
        double[] RefP(AttentionOptions o) => ReferenceProbabilities(AttentionParams.Resolve(shapeQ, shapeK, shapeK, o), grid, q, k);
        return new JsonObject
        {
            ["backend"] = RunContext.BackendName(device.Backend),
            ["device"] = device.Name,
            ["d"] = d,
            ["sigma"] = sigma,
            ["heads"] = grid.Heads,
            ["n"] = grid.N,
            ["m"] = grid.M,
            ["tv_op"] = Sweep.Num(MeanTv(pDot, pDist, grid.M)),
            ["tv_ref"] = Sweep.Num(MeanTv(RefP(Opt(Score.Dot, false)), RefP(Opt(Score.Distance, false)), grid.M)),
            ["tv_norm_op"] = Sweep.Num(MeanTv(pDotN, pDistN, grid.M)),
            ["tv_norm_ref"] = Sweep.Num(MeanTv(RefP(Opt(Score.Dot, true)), RefP(Opt(Score.Distance, true)), grid.M)),
        };
    }

    private static Point Read(JsonObject r) => new((string)r["backend"]!, (int)r["d"]!, Sweep.ReadNum(r["sigma"]),
        Sweep.ReadNum(r["tv_op"]), Sweep.ReadNum(r["tv_ref"]), Sweep.ReadNum(r["tv_norm_op"]), Sweep.ReadNum(r["tv_norm_ref"]));

    // q: [1, H, N, D] standard normal; k: [1, H, M, D] random directions of norm sqrt(D) times exp(sigma z_j).
    private static (float[] Q, float[] K) Inputs(Grid grid, int d, double sigma, int seed)
    {
        var rng = new Random(HashCode.Combine(seed, d));
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var q = new float[grid.Heads * grid.N * d];
        for (var i = 0; i < q.Length; i++) q[i] = (float)Normal();
        var k = new float[grid.Heads * grid.M * d];
        var dir = new double[d];
        for (var row = 0; row < grid.Heads * grid.M; row++)
        {
            var sq = 0.0;
            for (var i = 0; i < d; i++) sq += (dir[i] = Normal()) * dir[i];
            var z = Normal();
            var norm = Math.Sqrt(d) * Math.Exp(sigma * z) / Math.Sqrt(sq);
            for (var i = 0; i < d; i++) k[row * d + i] = (float)(dir[i] * norm);
        }
        return (q, k);
    }

    // P rows [H * N, M] read from the op's outputs, one forward call per block of D keys (V one-hot on the block).
    private static double[] OpProbabilities(Device device, Grid grid, int d, float[] q, float[] k, AttentionOptions options)
    {
        int h = grid.Heads, n = grid.N, m = grid.M;
        var p = new double[h * n * m];
        using var tq = device.FromArray(q, 1, h, n, d);
        using var tk = device.FromArray(k, 1, h, m, d);
        for (var block = 0; block * d < m; block++)
        {
            var v = new float[h * m * d]; // [1, H, M, D]
            for (var head = 0; head < h; head++)
                for (var j = block * d; j < Math.Min(m, (block + 1) * d); j++)
                    v[(head * m + j) * d + (j - block * d)] = 1f;
            using var tv = device.FromArray(v, 1, h, m, d);
            using var fwd = Attention.Forward(tq, tk, tv, options);
            var o = fwd.Output.ToArray(); // [1, H, N, D]
            for (var row = 0; row < h * n; row++)
                for (var j = block * d; j < Math.Min(m, (block + 1) * d); j++)
                    p[row * m + j] = o[row * d + (j - block * d)];
        }
        return p;
    }

    private static double[] ReferenceProbabilities(AttentionParams p, Grid grid, float[] q, float[] k)
    {
        var (keys, _) = AttentionReference.ScoredKeys(p, Array.ConvertAll(k, x => (double)x));
        var qd = Array.ConvertAll(q, x => (double)x);
        var result = new double[grid.Heads * grid.N * grid.M];
        for (var h = 0; h < grid.Heads; h++)
        {
            var (prob, _) = AttentionReference.Softmax(AttentionReference.Scores(p, qd, keys, 0, h));
            for (var i = 0; i < grid.N; i++)
                for (var j = 0; j < grid.M; j++)
                    result[(h * grid.N + i) * grid.M + j] = prob[i, j];
        }
        return result;
    }

    private static double MeanTv(double[] a, double[] b, int m)
    {
        var rows = a.Length / m;
        var total = 0.0;
        for (var r = 0; r < rows; r++)
        {
            var tv = 0.0;
            for (var j = 0; j < m; j++) tv += Math.Abs(a[r * m + j] - b[r * m + j]);
            total += 0.5 * tv;
        }
        return total / rows;
    }

    private static void Plot(List<Point> points, string png, string svg)
    {
        var plot = new ScottPlot.Plot();
        foreach (var g in points.GroupBy(p => (p.Backend, p.D)).OrderBy(g => g.Key.Backend, StringComparer.Ordinal).ThenBy(g => g.Key.D))
        {
            var c = g.OrderBy(p => p.Sigma).ToList();
            var s = plot.Add.Scatter(c.Select(p => p.Sigma).ToArray(), c.Select(p => p.TvOp).ToArray());
            s.LegendText = $"{g.Key.Backend}, D = {g.Key.D}";
        }
        plot.Title("Dot vs Distance attention: mean TV distance of P rows");
        plot.XLabel("sigma (key norms scaled by exp(sigma N(0,1)))");
        plot.YLabel("mean TV(P_dot, P_distance)");
        plot.ShowLegend(ScottPlot.Alignment.UpperLeft);
        plot.SavePng(png, 900, 560);
        plot.SaveSvg(svg, 900, 560);
    }

    private static string Summary(RunFolder run, List<Point> points)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Key-magnitude blindness, run {run.RunId}").AppendLine();
        md.AppendLine("Keys: random directions of norm sqrt(D) scaled by exp(sigma z), z ~ N(0,1) fixed per key; queries N(0,1); " +
            "scale 1/sqrt(D). P rows are read from the op's outputs (V one-hot per block of D keys); the float64 reference " +
            "computes the same P with AttentionReference.Scores/Softmax.").AppendLine();
        md.AppendLine("The key bias separating Distance from Dot is -(s/2)|k|^2 = -(sqrt(D)/2) exp(2 sigma z) here, so at a given sigma " +
            "it spreads more for larger D: the curves rise faster with D and reach TV ~ 1 by sigma ~ 1.").AppendLine();
        md.AppendLine("![TV vs sigma](tv_vs_sigma.png) ([SVG](tv_vs_sigma.svg))").AppendLine();
        md.AppendLine(CultureInfo.InvariantCulture, $"Thresholds (stated, not tuned): |TV_op - TV_ref| <= {OpVsReference:0E+0} per point; " +
            $"\"coincide\" means TV <= {Coincide:0E+0}; \"grows\" means TV(0) <= {Coincide:0E+0}, TV(sigma max) >= {Grows} and no decrease " +
            $"larger than {Coincide:0E+0} between neighbouring sigmas.").AppendLine();
        md.AppendLine("| backend | D | TV at sigma 0 | TV at sigma max | sigma max | decreases | grows | max TV, normalised keys | normalised coincide |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---|---:|---|");
        foreach (var c in Curves(points))
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {c.Backend} | {c.D} | {c.TvAtZero:0.00E+00} | {c.TvAtMax:F4} | {c.SigmaMax:F1} | {c.Decreases} | {(c.ShowsGrowth ? "yes" : "**no**")} | {c.MaxNormTv:0.00E+00} | {(c.ShowsNormalisedCoincide ? "yes" : "**no**")} |");
        md.AppendLine().AppendLine("Every point:").AppendLine();
        md.AppendLine("| backend | D | sigma | TV op | TV float64 | TV normalised op | TV normalised float64 | op vs reference |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|---|");
        foreach (var p in points.OrderBy(p => p.Backend, StringComparer.Ordinal).ThenBy(p => p.D).ThenBy(p => p.Sigma))
            md.AppendLine(CultureInfo.InvariantCulture,
                $"| {p.Backend} | {p.D} | {p.Sigma:F2} | {p.TvOp:0.000E+00} | {p.TvRef:0.000E+00} | {p.TvNormOp:0.00E+00} | {p.TvNormRef:0.00E+00} | {(p.Passed ? "pass" : "**FAIL**")} |");
        return md.ToString();
    }
}
