// Collapse measures (DESIGN.md section 4) on a set of vectors X [R rows, C columns]: the O(R C) and O(R C^2)
// reductions run on the device (kernels/Collapse/CollapseKernels.cs, bindings/Managed/FeatureNormsManaged.cs); the
// O(C) and O(C^3) remainders (norms of sums, eigenvalues) run on the host in float64.
// Time with `routekit-perf collapse`.
using ILGPU;
using ILGPU.Runtime;
using MathNet.Numerics.LinearAlgebra;
using RouteKit.Kernels.Collapse;

namespace RouteKit;

/// <summary>How unevenly a set of keys is normed: the signature of norm stratification.</summary>
/// <param name="CoefficientOfVariation">std(|k|) / mean(|k|), population std; 0 when every norm is 0.</param>
/// <param name="MaxOverMedian">max |k| / median |k|; +inf when the median is 0 and the max is not, 1 when all are 0.</param>
/// <param name="MeanNorm">mean |k|.</param>
public sealed record NormStratification(double CoefficientOfVariation, double MaxOverMedian, double MeanNorm);

/// <summary>Per-head averages of the attention diagnostics over batch and visible query rows.</summary>
/// <param name="Head">Query head index.</param>
/// <param name="MeanSinkMass">Mean SinkMass over rows that see at least one key.</param>
/// <param name="MeanNormalizedEntropy">Mean Entropy / log(visible keys) over rows that see at least two keys (1 = uniform, 0 = one-hot).</param>
/// <param name="MeanMaxProb">Mean MaxProb over rows that see at least one key.</param>
/// <param name="Rows">Rows (over batch) that see at least one key.</param>
public sealed record HeadRouting(int Head, double MeanSinkMass, double MeanNormalizedEntropy, double MeanMaxProb, int Rows);

/// <summary>Measures of representation collapse, concentration and norm stratification.</summary>
public static class Collapse
{
    /// <summary>G = X^T X <c>[C, C]</c> for x <c>[R, C]</c>, reduced on the device.</summary>
    public static Tensor Gram(Tensor x, Tensor? output = null)
    {
        var (rows, columns) = Validate(x);
        var device = x.Device;
        if (output is not null) TensorChecks.Output(device, output, [columns, columns], nameof(output), x);
        TensorChecks.Finite(x, nameof(x));
        var g = output ?? device.Zeros(columns, columns);
        if (device.Backend == Backend.Managed)
            FeatureNormsManaged.Gram(x.Host, rows, columns, g.Host);
        else
            device.GetKernel("Collapse.Gram", static acc => acc.LoadAutoGroupedStreamKernel<Index2D,
                ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(CollapseKernels.Gram))(
                new Index2D(columns, columns), x.View, g.View, rows, columns);
        return g;
    }

    /// <summary>
    /// Effective rank exp(-sum p_i log p_i), p = singular values / their sum (Roy and Vetterli 2007); the singular values
    /// are the square roots of the Gram matrix's eigenvalues. The float32 Gram carries rounding of about
    /// C eps_float32 lambda_max in every eigenvalue, so eigenvalues below that floor (singular values below
    /// sqrt(C eps_float32) sigma_max, ~1e-3 sigma_max at C = 16) are treated as 0 rather than counted as directions.
    /// 0 for X = 0.
    /// </summary>
    public static double EffectiveRank(Tensor x)
    {
        var (_, columns) = Validate(x);
        TensorChecks.Finite(x, nameof(x));
        float[] rowNorms;
        using (var norms = FeatureNorms.Forward(x)) rowNorms = norms.L2.ToArray();
        using var scaled = ScaledIntoRange(x, rowNorms, out _);
        using var g = Gram(scaled ?? x);
        var host = g.ToArray();
        var m = Matrix<double>.Build.Dense(columns, columns, (i, j) => 0.5 * ((double)host[i * columns + j] + host[j * columns + i]));
        var eig = m.Evd(Symmetricity.Symmetric).EigenValues;
        var lambdaMax = 0.0;
        for (var i = 0; i < columns; i++) lambdaMax = Math.Max(lambdaMax, eig[i].Real);
        var floor = columns * Math.Pow(2, -24) * lambdaMax; // C eps_float32 lambda_max
        var sv = new double[columns];
        for (var i = 0; i < columns; i++) sv[i] = eig[i].Real > floor ? Math.Sqrt(eig[i].Real) : 0.0;
        return EffectiveRankFromSingularValues(sv);
    }

    /// <summary>exp(-sum p log p) with p = s / sum s; 0 when every singular value is 0.</summary>
    public static double EffectiveRankFromSingularValues(IReadOnlyList<double> singularValues)
    {
        var total = singularValues.Sum();
        if (total <= 0) return 0.0;
        var h = 0.0;
        foreach (var s in singularValues)
        {
            var p = s / total;
            if (p > 0) h -= p * Math.Log(p);
        }
        return Math.Exp(h);
    }

    /// <summary>
    /// ||X - 1 mean(X)^T||_F / ||X||_F (rank collapse, Dong et al. 2021), with the deviations summed directly rather than
    /// as ||X||^2 - R |mean|^2, which cancels catastrophically exactly when the rows collapse. 0 for R = 1 or X = 0.
    /// </summary>
    public static double ResidualRatio(Tensor x)
    {
        var (rows, columns) = Validate(x);
        TensorChecks.Finite(x, nameof(x));
        float[] rowNorms;
        using (var norms = FeatureNorms.Forward(x)) rowNorms = norms.L2.ToArray();
        using var scaled = ScaledIntoRange(x, rowNorms, out var inverse);
        x = scaled ?? x;
        var device = x.Device;
        using var sums = device.Zeros(columns);
        using var deviation = device.Zeros(rows);
        ColumnSums(x, null, sums, rows, columns);
        var mean = sums.ToArray();
        for (var c = 0; c < columns; c++) mean[c] /= rows;
        sums.CopyFrom(mean);
        RowDeviation(x, sums, deviation, rows, columns);
        var total = rowNorms.Sum(n => n * inverse * (n * inverse));
        var residual = deviation.ToArray().Sum(d => (double)d);
        return total > 0 ? Math.Sqrt(residual / total) : 0.0;
    }

    /// <summary>
    /// Mean cosine over ordered pairs of distinct non-zero rows, in O(R C) by the identity
    /// (|sum_i x_i/|x_i||^2 - R') / (R'(R'-1)), R' the number of non-zero rows. Defined as 1 when R' = 1 (one direction
    /// is fully collapsed) and 0 when R' = 0.
    /// </summary>
    public static double MeanPairwiseCosine(Tensor x)
    {
        var (rows, columns) = Validate(x);
        using var norms = FeatureNorms.Forward(x);
        var live = norms.L2.ToArray().Count(n => n > 0f);
        if (live == 0) return 0.0;
        if (live == 1) return 1.0;
        using var sums = x.Device.Zeros(columns);
        ColumnSums(x, norms.L2, sums, rows, columns);
        var sq = sums.ToArray().Sum(s => (double)s * s);
        return (sq - live) / (live * (live - 1.0));
    }

    /// <summary>
    /// Norm stratification of keys: coefficient of variation and max/median of the row norms. <paramref name="keys"/> may
    /// have any rank &gt;= 2; its last dimension is the vector, the others index the keys (e.g. [B, Hkv, M, D]).
    /// </summary>
    public static NormStratification KeyNorms(Tensor keys)
    {
        TensorChecks.NotNull(keys, nameof(keys));
        if (keys.Rank < 2)
            throw new ArgumentException($"keys must have rank >= 2 [..., D]; got shape {Tensor.Format(keys.Shape.ToArray())}.", nameof(keys));
        var d = keys.Shape[^1];
        var rows = keys.Length / d;
        using var flat = keys.Device.FromArray(keys.ToArray(), rows, d); // views (a Slice of a key stack) included
        using var norms = FeatureNorms.Forward(flat);
        var n = Array.ConvertAll(norms.L2.ToArray(), v => (double)v);
        var mean = n.Average();
        var std = Math.Sqrt(n.Sum(v => (v - mean) * (v - mean)) / n.Length);
        Array.Sort(n);
        var median = n.Length % 2 == 1 ? n[n.Length / 2] : 0.5 * (n[n.Length / 2 - 1] + n[n.Length / 2]);
        var max = n[^1];
        var maxOverMedian = median > 0 ? max / median : max > 0 ? double.PositiveInfinity : 1.0;
        return new NormStratification(mean > 0 ? std / mean : 0.0, maxOverMedian, mean);
    }

    /// <summary>
    /// Per-head means of the attention op's fused diagnostics, with Entropy normalised by the log of each row's number of
    /// visible keys (from the masks in <paramref name="p"/>), so heads with different windows compare.
    /// </summary>
    public static IReadOnlyList<HeadRouting> AttentionHeads(AttentionDiagnostics diagnostics, AttentionParams p)
    {
        ArgumentNullException.ThrowIfNull(diagnostics);
        ArgumentNullException.ThrowIfNull(p);
        foreach (var (t, name) in new[] { (diagnostics.Entropy, "Entropy"), (diagnostics.SinkMass, "SinkMass"), (diagnostics.MaxProb, "MaxProb") })
        {
            TensorChecks.NotNull(t, $"diagnostics.{name}");
            TensorChecks.Shape(t, p.RowShape, $"diagnostics.{name}");
        }
        float[] entropy = diagnostics.Entropy.ToArray(), sink = diagnostics.SinkMass.ToArray(), maxProb = diagnostics.MaxProb.ToArray();
        var heads = new HeadRouting[p.H];
        for (var h = 0; h < p.H; h++)
        {
            double sinkSum = 0, entropySum = 0, maxSum = 0;
            int rows = 0, entropyRows = 0;
            for (var b = 0; b < p.B; b++)
            for (var i = 0; i < p.N; i++)
            {
                var visible = VisibleKeys(p, b, i);
                if (visible == 0) continue;
                var idx = (b * p.H + h) * p.N + i;
                rows++;
                sinkSum += sink[idx];
                maxSum += maxProb[idx];
                if (visible < 2) continue;
                entropyRows++;
                entropySum += entropy[idx] / Math.Log(visible);
            }
            heads[h] = new HeadRouting(h, rows > 0 ? sinkSum / rows : 0, entropyRows > 0 ? entropySum / entropyRows : 0,
                rows > 0 ? maxSum / rows : 0, rows);
        }
        return heads;
    }

    /// <summary>Number of keys query row i sees under the causal and window masks.</summary>
    public static int VisibleKeys(AttentionParams p, int i)
    {
        var (lo, hi) = p.KeyRange(i);
        return Math.Max(0, hi - lo + 1);
    }

    /// <summary>Number of keys query row i of batch element b sees (key padding, causal and window masks).</summary>
    public static int VisibleKeys(AttentionParams p, int b, int i)
    {
        ArgumentNullException.ThrowIfNull(p);
        var (lo, hi) = p.KeyRange(b, i);
        return Math.Max(0, hi - lo + 1);
    }

    // sum_c (x_ic - mean_c)^2 per row, into deviation [R].
    internal static void RowDeviation(Tensor x, Tensor mean, Tensor deviation, int rows, int columns)
    {
        var device = x.Device;
        if (device.Backend == Backend.Managed)
            FeatureNormsManaged.RowDeviation(x.Host, rows, columns, mean.Host, deviation.Host);
        else
            device.GetKernel("Collapse.RowDeviation", static acc => acc.LoadStreamKernel<ArrayView1D<float, Stride1D.Dense>,
                ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(CollapseKernels.RowDeviation))(
                new KernelConfig(FeatureNorms.GridSize(device, rows), Kernels.Common.GroupReduce.GroupSize),
                x.View, mean.View, deviation.View, rows, columns);
    }

    // Column sums of x (norms null) or of its rows' unit vectors (norms = row L2 norms), into sums [C].
    internal static void ColumnSums(Tensor x, Tensor? norms, Tensor sums, int rows, int columns)
    {
        var device = x.Device;
        if (device.Backend == Backend.Managed)
        {
            FeatureNormsManaged.ColumnSums(x.Host, rows, columns, norms?.Host, sums.Host);
            return;
        }
        if (norms is null)
            device.GetKernel("Collapse.ColumnSums", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
                ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(CollapseKernels.ColumnSums))(
                columns, x.View, sums.View, rows, columns);
        else
            device.GetKernel("Collapse.UnitColumnSums", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
                ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(
                CollapseKernels.UnitColumnSums))(columns, x.View, norms.View, sums.View, rows, columns);
    }

    /// <summary>Largest row norm the float32 Gram and squared deviations take without overflow (rows up to 1e6).</summary>
    private const float LargestSafeNorm = 1e12f;

    /// <summary>Smallest row norm whose squares stay normal floats (no flush to zero before the eigenvalue floor).</summary>
    private const float SmallestSafeNorm = 1e-12f;

    /// <summary>
    /// The measures that square X (effective rank through the Gram, the residual ratio through squared deviations) are
    /// invariant to scaling X, but float32 squares are not: rows of norm 1e20 overflow to +inf and rows of norm 1e-25
    /// underflow to 0, so the measure came out NaN or 0 where the answer is an ordinary number. Such an X is divided
    /// by its largest row norm (<paramref name="rowNorms"/>, computed overflow-free by <see cref="FeatureNorms"/>) into
    /// a copy, and <paramref name="inverse"/> is the factor applied (1 when none); null when X is already in range
    /// (the common case: no copy) or zero.
    /// </summary>
    private static Tensor? ScaledIntoRange(Tensor x, float[] rowNorms, out double inverse)
    {
        inverse = 1.0;
        var largest = rowNorms.Max();
        if (largest == 0f || (largest >= SmallestSafeNorm && largest <= LargestSafeNorm)) return null;
        inverse = 1.0 / largest;
        var data = x.ToArray();
        for (var i = 0; i < data.Length; i++) data[i] = (float)(data[i] * inverse);
        return x.Device.FromArray(data, x.Shape.ToArray());
    }

    private static (int Rows, int Columns) Validate(Tensor x)
    {
        TensorChecks.NotNull(x, nameof(x));
        if (x.Rank != 2)
            throw new ArgumentException($"x must have rank 2 [R, C]; got shape {Tensor.Format(x.Shape.ToArray())}.", nameof(x));
        return (x.Shape[0], x.Shape[1]);
    }
}
