// The reframing identity, checked numerically (DESIGN.md section 4, last bullet):
//   (a) with NormalizeKeys, Dot and Distance give the same P (so the same O and gradients);
//   (b) without, Distance equals Dot plus the key bias -(s/2)|k_j|^2, run through the public op as Dot attention on
//       augmented vectors q~ = [q, 1], k~ = [k, -|k|^2/2], v~ = [v, 0] with the same scale;
//   (c) Distance equals the literal Boltzmann weights softmax_j(-(s/2)|q_i - k_j|^2) aggregated in float64.
// Each row states its threshold up front; none is tuned to the measured value.
using RouteKit.Reference;

namespace RouteKit.Engine.Experiments;

/// <summary>One line of the identity table.</summary>
public sealed record IdentityRow(string Check, string Problem, string Quantity, double Error, double Threshold, string Rule, double Magnitude = double.NaN)
{
    /// <summary>
    /// <see cref="Error"/> relative to the largest magnitude of the compared quantity (<see cref="Magnitude"/>, max |b|); reported
    /// beside the absolute error, not used for pass/fail (it blows up on quantities near 0).
    /// </summary>
    public double Relative => Error / Magnitude;

    /// <summary>True when <see cref="Error"/> is within <see cref="Threshold"/>.</summary>
    public bool Passed => Error <= Threshold;
}

/// <summary>Runs the identity checks on one device against the float64 reference.</summary>
public static class IdentityCheck
{
    /// <summary>Absolute threshold for float32 quantities that must agree exactly in exact arithmetic, on unit-scale inputs.</summary>
    public const double SameInFloat32 = 1e-5;

    /// <summary>Threshold for the float64 reference against the literal Boltzmann form.</summary>
    public const double SameInFloat64 = 1e-12;

    /// <summary>A problem of the grid: shape and the masks and brake it runs with.</summary>
    public sealed record Problem(int B, int H, int Hkv, int N, int M, int D, bool Causal = false, int? Window = null, bool Brake = false)
    {
        /// <inheritdoc />
        public override string ToString() =>
            $"B{B} H{H}/{Hkv} N{N} M{M} D{D}{(Causal ? " causal" : "")}{(Window is { } w ? $" win{w}" : "")}{(Brake ? " brake" : "")}";

        internal AttentionOptions Options(Score score, bool normalize, float? scale = null) => new()
        {
            Score = score, NormalizeKeys = normalize, Causal = Causal, Window = Window, Scale = scale,
            BrakeSlopes = Brake ? AttentionOptions.AlibiSlopes(H) : null,
        };
    }

    /// <summary>The default grid: awkward sizes, GQA, masks and brake together.</summary>
    public static IReadOnlyList<Problem> Grid(bool small) => small
        ? [new(1, 2, 1, 5, 9, 8), new(1, 2, 2, 17, 13, 24, Causal: true, Window: 6, Brake: true)]
        : [new(1, 2, 1, 97, 128, 64), new(1, 4, 2, 200, 200, 59, Causal: true, Window: 64, Brake: true),
           new(2, 2, 2, 17, 1025, 128, Brake: true), new(1, 1, 1, 1, 1, 16)];

    /// <summary>
    /// The grid a profile runs on a backend: the simulator always gets the small grid (it is ~1000x slower than Managed);
    /// small adds a long causal, windowed, braked GQA problem; full adds a wide one and a long causal one.
    /// </summary>
    internal static IReadOnlyList<Problem> Grid(Runs.RunProfile profile, Backend backend) => (profile, backend) switch
    {
        (Runs.RunProfile.Smoke, _) or (_, Backend.IlgpuCpu) => Grid(small: true),
        (Runs.RunProfile.Small, _) => [.. Grid(small: false), new(2, 8, 2, 1000, 1000, 64, Causal: true, Window: 256, Brake: true)],
        _ => [.. Grid(Runs.RunProfile.Small, backend), new(1, 4, 4, 513, 2049, 128), new(1, 8, 8, 2048, 2048, 128, Causal: true)],
    };

    /// <summary>Runs every check for every problem on <paramref name="device"/>.</summary>
    public static List<IdentityRow> Run(Device device, IEnumerable<Problem> problems, int seed = 1)
    {
        var rows = new List<IdentityRow>();
        foreach (var pr in problems)
        {
            var (q, k, v, dOut) = Inputs(pr, seed);
            NormalisedDotEqualsDistance(device, pr, q, k, v, dOut, rows);
            DistanceEqualsDotPlusKeyBias(device, pr, q, k, v, dOut, rows);
            DistanceEqualsBoltzmann(device, pr, q, k, v, rows);
        }
        return rows;
    }

    private static void NormalisedDotEqualsDistance(Device device, Problem pr, float[] q, float[] k, float[] v, float[] dOut, List<IdentityRow> rows)
    {
        var dot = RunOp(device, pr, pr.D, q, k, v, dOut, pr.Options(Score.Dot, normalize: true));
        var dist = RunOp(device, pr, pr.D, q, k, v, dOut, pr.Options(Score.Distance, normalize: true));
        const string check = "(a) normalised keys: Dot = Distance";
        const string rule = "max|a-b| <= 1e-5 (x max(1,|g|) for gradients)";
        rows.Add(new(check, pr.ToString(), "O", MaxDiff(dot.O, dist.O), SameInFloat32, rule, MaxAbs(dot.O)));
        rows.Add(new(check, pr.ToString(), "dQ", MaxDiff(dot.DQ, dist.DQ), SameInFloat32 * Scale(dot.DQ), rule, MaxAbs(dot.DQ)));
        rows.Add(new(check, pr.ToString(), "dK", MaxDiff(dot.DK, dist.DK), SameInFloat32 * Scale(dot.DK), rule, MaxAbs(dot.DK)));
        rows.Add(new(check, pr.ToString(), "dV", MaxDiff(dot.DV, dist.DV), SameInFloat32 * Scale(dot.DV), rule, MaxAbs(dot.DV)));
    }

    private static void DistanceEqualsDotPlusKeyBias(Device device, Problem pr, float[] q, float[] k, float[] v, float[] dOut, List<IdentityRow> rows)
    {
        var scale = (float)(1.0 / Math.Sqrt(pr.D));
        var dist = RunOp(device, pr, pr.D, q, k, v, dOut, pr.Options(Score.Distance, normalize: false, scale));
        int d = pr.D, da = d + 1;
        float[] qa = Augment(q, d, _ => 1f), va = Augment(v, d, _ => 0f), da0 = Augment(dOut, d, _ => 0f);
        var ka = Augment(k, d, row =>
        {
            var sq = 0.0;
            foreach (var x in row) sq += (double)x * x;
            return (float)(-0.5 * sq);
        });
        var biased = RunOp(device, pr, da, qa, ka, va, da0, pr.Options(Score.Dot, normalize: false, scale));
        // Chain rule through the bias coordinate k~_D = -|k|^2/2: dk = dk~[:D] - k dk~_D.
        var dk = new float[k.Length];
        for (var r = 0; r < k.Length / d; r++)
            for (var i = 0; i < d; i++)
                dk[r * d + i] = biased.DK[r * da + i] - k[r * d + i] * biased.DK[r * da + d];
        const string check = "(b) Distance = Dot + key bias -(s/2)|k|^2";
        const string rule = "max|a-b| <= 1e-5 (x max(1,|g|) for gradients)";
        rows.Add(new(check, pr.ToString(), "O", MaxDiff(dist.O, Strip(biased.O, d)), SameInFloat32, rule, MaxAbs(dist.O)));
        rows.Add(new(check, pr.ToString(), "dQ", MaxDiff(dist.DQ, Strip(biased.DQ, d)), SameInFloat32 * Scale(dist.DQ), rule, MaxAbs(dist.DQ)));
        rows.Add(new(check, pr.ToString(), "dK", MaxDiff(dist.DK, dk), SameInFloat32 * Scale(dist.DK), rule, MaxAbs(dist.DK)));
        rows.Add(new(check, pr.ToString(), "dV", MaxDiff(dist.DV, Strip(biased.DV, d)), SameInFloat32 * Scale(dist.DV), rule, MaxAbs(dist.DV)));
    }

    private static void DistanceEqualsBoltzmann(Device device, Problem pr, float[] q, float[] k, float[] v, List<IdentityRow> rows)
    {
        var options = pr.Options(Score.Distance, normalize: false);
        var p = AttentionParams.Resolve([pr.B, pr.H, pr.N, pr.D], [pr.B, pr.Hkv, pr.M, pr.D], [pr.B, pr.Hkv, pr.M, pr.D], options);
        var (qd, kd, vd) = (Widen(q), Widen(k), Widen(v));
        var boltzmann = AttentionReference.Boltzmann(p, qd, kd, vd);
        var ref64 = AttentionReference.Forward(p, qd, kd, vd).Output;
        var naive32 = AttentionReference.Forward(p, q, k, v).Output;
        var backend = RunOp(device, pr, pr.D, q, k, v, null, options).O;
        const string check = "(c) Distance = softmax(-(s/2)|q-k|^2)";
        rows.Add(new(check, pr.ToString(), "O float64 reference", MaxDiff(ref64, boltzmann), SameInFloat64, "max|a-b| <= 1e-12", MaxAbs(boltzmann)));
        var naiveErr = MaxDiff(naive32, boltzmann);
        rows.Add(new(check, pr.ToString(), $"O {device.Backend} float32", MaxDiff(backend, boltzmann), 2 * naiveErr + 1e-6,
            "<= 2 x naive float32 error + 1e-6", MaxAbs(boltzmann)));
    }

    private sealed record OpResult(float[] O, float[] DQ, float[] DK, float[] DV);

    private static OpResult RunOp(Device device, Problem pr, int d, float[] q, float[] k, float[] v, float[]? dOut, AttentionOptions options)
    {
        using var tq = device.FromArray(q, pr.B, pr.H, pr.N, d);
        using var tk = device.FromArray(k, pr.B, pr.Hkv, pr.M, d);
        using var tv = device.FromArray(v, pr.B, pr.Hkv, pr.M, d);
        using var fwd = Attention.Forward(tq, tk, tv, options);
        if (dOut is null) return new OpResult(fwd.Output.ToArray(), [], [], []);
        using var tdo = device.FromArray(dOut, pr.B, pr.H, pr.N, d);
        using var g = Attention.Backward(tdo, tq, tk, tv, fwd, options);
        return new OpResult(fwd.Output.ToArray(), g.DQ.ToArray(), g.DK.ToArray(), g.DV.ToArray());
    }

    private static (float[] Q, float[] K, float[] V, float[] DOut) Inputs(Problem pr, int seed)
    {
        var rng = new Random(seed);
        float[] Normal(int n)
        {
            var x = new float[n];
            for (var i = 0; i < n; i++)
                x[i] = (float)(Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
            return x;
        }
        int qn = pr.B * pr.H * pr.N * pr.D, kn = pr.B * pr.Hkv * pr.M * pr.D;
        return (Normal(qn), Normal(kn), Normal(kn), Normal(qn));
    }

    // Appends one coordinate per row of width d.
    private static float[] Augment(float[] x, int d, Func<float[], float> extra)
    {
        var rowsCount = x.Length / d;
        var y = new float[rowsCount * (d + 1)];
        for (var r = 0; r < rowsCount; r++)
        {
            var row = x.AsSpan(r * d, d).ToArray();
            row.CopyTo(y, r * (d + 1));
            y[r * (d + 1) + d] = extra(row);
        }
        return y;
    }

    // Drops the last coordinate of rows of width d + 1.
    private static float[] Strip(float[] x, int d)
    {
        var rowsCount = x.Length / (d + 1);
        var y = new float[rowsCount * d];
        for (var r = 0; r < rowsCount; r++) x.AsSpan(r * (d + 1), d).CopyTo(y.AsSpan(r * d, d));
        return y;
    }

    private static double[] Widen(float[] x) => Array.ConvertAll(x, f => (double)f);

    private static double MaxAbs(float[] x)
    {
        var max = 0.0;
        foreach (var v in x) max = Math.Max(max, Math.Abs(v));
        return max;
    }

    private static double MaxAbs(double[] x)
    {
        var max = 0.0;
        foreach (var v in x) max = Math.Max(max, Math.Abs(v));
        return max;
    }

    private static double Scale(float[] g)
    {
        var max = 1.0;
        foreach (var x in g) max = Math.Max(max, Math.Abs(x));
        return max;
    }

    private static double MaxDiff(float[] a, float[] b)
    {
        var max = 0.0;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs((double)a[i] - b[i]));
        return max;
    }

    private static double MaxDiff(float[] a, double[] b)
    {
        var max = 0.0;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }

    private static double MaxDiff(double[] a, double[] b)
    {
        var max = 0.0;
        for (var i = 0; i < a.Length; i++) max = Math.Max(max, Math.Abs(a[i] - b[i]));
        return max;
    }
}
