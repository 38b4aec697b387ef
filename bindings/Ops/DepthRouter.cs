// DepthRouter: launcher, validation and the one dispatcher from backend to implementation.
// Shapes: Lq query layers, L key/value layers (Lq <= L <= 64), T tokens, H heads, D head dim; tensors [layer, T, H, D].
// Implementations: Managed -> bindings/Managed/DepthRouterManaged.cs; Cuda, OpenCL, IlgpuCpu -> bindings/Ops/DepthRouterIlgpu.cs
// over the kernels in kernels/Depth/. Spec: bindings/Reference/DepthRouterReference.cs. Time with `routekit-perf depth`.
//
// Why [layer, T, H, D] with Lq <= L (2026-12-02): a depth-routed model keeps one stack of every block's keys and values,
// [Lmax, T, H, D], and block l reads its first l + 1 layers. Layers are the outermost axis, so that prefix is one
// contiguous Tensor.Slice(0, l + 1, T, H, D): no copy. Its query is [1, T, H, D] (Lq = 1, query depth l = L - 1), the
// common training call; Lq = L routes every layer at once (causal over depth), for analysis and for models that
// compute all queries from one shared stream. Both run the same kernels.
namespace RouteKit;

/// <summary>
/// Softmax routing over depth (DESIGN.md section 4): for query layer i at depth l = i + (L - Lq), token t and head h,
/// <c>out = sum_{j &lt;= l} softmax_j(score(q, k'_j) - m_h (l - j)) v_j</c> over the L layers' keys and values of the
/// same token, with attention's Dot/Distance scores and key normalisation. O(1) extra memory per (token, head).
/// </summary>
public static class DepthRouter
{
    /// <summary>Computes the routed mix and the saved statistics (and the diagnostics when asked).</summary>
    /// <param name="q">Queries <c>[Lq, T, H, D]</c>: query layer i sits at depth i + (L - Lq).</param>
    /// <param name="k">Keys of every layer <c>[L, T, H, D]</c>, L &lt;= 64 (e.g. a Slice of a model's key stack).</param>
    /// <param name="v">Values <c>[L, T, H, D]</c>.</param>
    /// <param name="options">Score, key normalisation, brake, diagnostics; null for defaults.</param>
    /// <param name="outputs">Preallocated outputs to overwrite; null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices, options or non-finite inputs, before any kernel runs.</exception>
    public static DepthRouterOutput Forward(Tensor q, Tensor k, Tensor v, DepthRouterOptions? options = null,
        DepthRouterOutput? outputs = null)
    {
        var p = Validate(q, k, v, options).P;
        var device = q.Device;
        if (outputs is not null)
        {
            // Shapes as spans on the stack (the params' shape properties allocate an array each).
            ReadOnlySpan<int> rowShape = [p.Lq, p.T, p.H];
            TensorChecks.Output(device, outputs.Output, [p.Lq, p.T, p.H, p.D], "outputs.Output", q, k, v);
            TensorChecks.Output(device, outputs.Stats, [p.Lq, p.T, p.H, 2], "outputs.Stats", q, k, v);
            if (p.Diagnostics)
            {
                var dg = outputs.Diagnostics ?? throw new ArgumentException(
                    "options.Diagnostics is set but outputs.Diagnostics is null; preallocate all three [Lq, T, H] tensors.", nameof(outputs));
                TensorChecks.Output(device, dg.NormalizedEntropy, rowShape, "outputs.Diagnostics.NormalizedEntropy", q, k, v);
                TensorChecks.Output(device, dg.MaxProb, rowShape, "outputs.Diagnostics.MaxProb", q, k, v);
                TensorChecks.Output(device, dg.EmbeddingMass, rowShape, "outputs.Diagnostics.EmbeddingMass", q, k, v);
            }
        }
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));

        var result = outputs ?? DepthRouterOutput.Allocate(device, p.Lq, p.T, p.H, p.D, p.Diagnostics);
        var diag = p.Diagnostics ? result.Diagnostics : null;
        if (device.Backend == Backend.Managed)
            DepthRouterManaged.Forward(p, q.HostSpan, k.HostSpan, v.HostSpan, result.Output.HostSpan, result.Stats.HostSpan,
                diag is null ? default : diag.NormalizedEntropy.HostSpan, diag is null ? default : diag.MaxProb.HostSpan,
                diag is null ? default : diag.EmbeddingMass.HostSpan);
        else
            DepthRouterIlgpu.Forward(device, p, q, k, v, result.Output, result.Stats, diag);
        return result;
    }

    /// <summary>
    /// Gradients of a scalar loss with respect to q, k and v, given <c>dOut = dL/dOutput</c> and the forward's Output and
    /// Stats (P is recomputed from them). Deterministic: repeated calls give bitwise-equal gradients.
    /// </summary>
    /// <param name="dOut">dL/dOutput <c>[Lq, T, H, D]</c>.</param>
    /// <param name="q">The forward's queries.</param>
    /// <param name="k">The forward's keys.</param>
    /// <param name="v">The forward's values.</param>
    /// <param name="forward">The forward's result (Output and Stats are read and checked).</param>
    /// <param name="options">The forward's options.</param>
    /// <param name="gradients">Preallocated gradients to overwrite; null to allocate.</param>
    public static DepthRouterGradients Backward(Tensor dOut, Tensor q, Tensor k, Tensor v, DepthRouterOutput forward,
        DepthRouterOptions? options = null, DepthRouterGradients? gradients = null)
    {
        var problem = Validate(q, k, v, options);
        var p = problem.P;
        var device = q.Device;
        ArgumentNullException.ThrowIfNull(forward);
        ReadOnlySpan<int> queryShape = [p.Lq, p.T, p.H, p.D], keyShape = [p.L, p.T, p.H, p.D];
        TensorChecks.Input(device, dOut, queryShape, nameof(dOut));
        TensorChecks.Input(device, forward.Output, queryShape, "forward.Output");
        TensorChecks.Input(device, forward.Stats, [p.Lq, p.T, p.H, 2], "forward.Stats");
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DQ, queryShape, "gradients.DQ", dOut, q, k, v, forward.Output, forward.Stats);
            TensorChecks.Output(device, gradients.DK, keyShape, "gradients.DK", dOut, q, k, v, forward.Output, forward.Stats);
            TensorChecks.Output(device, gradients.DV, keyShape, "gradients.DV", dOut, q, k, v, forward.Output, forward.Stats);
        }
        TensorChecks.Finite(dOut, nameof(dOut));
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));
        TensorChecks.Finite(forward.Output, "forward.Output");
        Attention.CheckSavedStats(problem.StatsRows, forward.Stats, nameof(DepthRouter), problem.DescribeStatsRow);

        var result = gradients ?? new DepthRouterGradients(device.Zeros(p.QueryShape), device.Zeros(p.KeyShape), device.Zeros(p.KeyShape));
        if (device.Backend == Backend.Managed)
            DepthRouterManaged.Backward(p, problem.KeyRows, dOut.HostSpan, q.HostSpan, k.HostSpan, v.HostSpan, forward.Output.HostSpan,
                forward.Stats.HostSpan, result.DQ.HostSpan, result.DK.HostSpan, result.DV.HostSpan);
        else
            DepthRouterIlgpu.Backward(device, p, dOut, q, k, v, forward.Output, forward.Stats, result.DQ, result.DK, result.DV);
        return result;
    }

    private static Problem Validate(Tensor q, Tensor k, Tensor v, DepthRouterOptions? options)
    {
        TensorChecks.QueryKeyValue(q, k, v);
        ReadOnlySpan<int> qShape = q.ShapeSpan, kShape = k.ShapeSpan, vShape = v.ShapeSpan;
        var length = 3 + qShape.Length + kShape.Length + vShape.Length;
        if (length > RecentProblems<DepthRouterOptions, Problem>.MaxKey) // a bad rank: Resolve throws
            return new Problem(DepthRouterParams.Resolve(qShape, kShape, vShape, options));
        Span<int> key = stackalloc int[length];
        key[0] = qShape.Length;
        qShape.CopyTo(key[1..]);
        key[1 + qShape.Length] = kShape.Length;
        kShape.CopyTo(key[(2 + qShape.Length)..]);
        key[2 + qShape.Length + kShape.Length] = vShape.Length;
        vShape.CopyTo(key[(3 + qShape.Length + kShape.Length)..]);
        var recent = ManagedParallel.WorkerLocal<RecentProblems<DepthRouterOptions, Problem>>();
        return recent.Find(key, options, options?.BrakeSlopes)
            ?? recent.Store(key, options, options?.BrakeSlopes, new Problem(DepthRouterParams.Resolve(qShape, kShape, vShape, options)));
    }

    /// <summary>
    /// A resolved problem with what its calls derive from it, built once and reused while the shapes and options stay the
    /// same (<see cref="RecentProblems{TOptions, TProblem}"/>), so a call allocates nothing.
    /// </summary>
    private sealed class Problem(DepthRouterParams p)
    {
        public DepthRouterParams P { get; } = p;
        public AttentionParams KeyRows { get; } = p.KeyRows;
        public AttentionParams StatsRows { get; } = p.StatsRows;
        public Func<int, string> DescribeStatsRow { get; } = row => $"(layer {row / p.Columns}, t {row / p.H % p.T}, h {row % p.H})";
    }
}
