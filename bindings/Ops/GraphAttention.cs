// GraphAttention: launcher, validation and the one dispatcher from backend to implementation.
// Shapes: H heads, Nn nodes, E edges, D head dim; q, k, v [H, Nn, D]; the graph is a CsrGraph (rowPtr [Nn + 1], colIdx [E]).
// Implementations: Managed -> bindings/Managed/GraphAttentionManaged.cs; Cuda, OpenCL, IlgpuCpu ->
// bindings/Ops/GraphAttentionIlgpu.cs over kernels/Graph/. Reference: bindings/Reference/GraphAttentionReference.cs.
// Time them with `routekit-perf graph`.
namespace RouteKit;

/// <summary>
/// Softmax attention of every node over its graph neighbours (DESIGN.md section 4): the scores, key normalisation and
/// brake of <see cref="Attention"/>, one softmax per node over <c>colIdx[rowPtr[i] .. rowPtr[i + 1])</c>, O(E D) work
/// and no per-edge buffer. H heads share the graph; no GQA (k and v have q's shape).
/// </summary>
public static class GraphAttention
{
    /// <summary>Computes <c>O_i = sum_j P_ij v_j</c>, Lse, the saved statistics and (when asked) the diagnostics.</summary>
    /// <param name="graph">The graph, created on the tensors' device.</param>
    /// <param name="q">Queries <c>[H, Nn, D]</c>.</param>
    /// <param name="k">Keys <c>[H, Nn, D]</c>.</param>
    /// <param name="v">Values <c>[H, Nn, D]</c>.</param>
    /// <param name="options">Score, keys, brake, diagnostics; null for defaults.</param>
    /// <param name="outputs">Preallocated outputs to overwrite; null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices, options or non-finite inputs, before any kernel runs.</exception>
    public static GraphAttentionOutput Forward(CsrGraph graph, Tensor q, Tensor k, Tensor v, GraphAttentionOptions? options = null,
        GraphAttentionOutput? outputs = null)
    {
        var p = Validate(graph, q, k, v, options);
        var device = q.Device;
        if (outputs is not null)
        {
            // Shapes as spans on the stack (the params' shape properties allocate an array each).
            ReadOnlySpan<int> rowShape = [p.H, p.Nodes];
            TensorChecks.Output(device, outputs.Output, [p.H, p.Nodes, p.D], "outputs.Output", q, k, v);
            TensorChecks.Output(device, outputs.Lse, rowShape, "outputs.Lse", q, k, v);
            TensorChecks.Output(device, outputs.Stats, [p.H, p.Nodes, 2], "outputs.Stats", q, k, v);
            if (p.Diagnostics)
            {
                var dg = outputs.Diagnostics ?? throw new ArgumentException(
                    "options.Diagnostics is set but outputs.Diagnostics is null; preallocate all three [H, Nn] tensors.", nameof(outputs));
                TensorChecks.Output(device, dg.NormalizedEntropy, rowShape, "outputs.Diagnostics.NormalizedEntropy", q, k, v);
                TensorChecks.Output(device, dg.MaxProb, rowShape, "outputs.Diagnostics.MaxProb", q, k, v);
                TensorChecks.Output(device, dg.SelfMass, rowShape, "outputs.Diagnostics.SelfMass", q, k, v);
            }
        }
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));

        var result = outputs ?? GraphAttentionOutput.Allocate(device, p.H, p.Nodes, p.D, p.Diagnostics);
        var diag = p.Diagnostics ? result.Diagnostics : null;
        if (device.Backend == Backend.Managed)
            GraphAttentionManaged.Forward(p, graph, q.HostSpan, k.HostSpan, v.HostSpan, result.Output.HostSpan, result.Lse.HostSpan,
                result.Stats.HostSpan, diag is null ? default : diag.NormalizedEntropy.HostSpan,
                diag is null ? default : diag.MaxProb.HostSpan, diag is null ? default : diag.SelfMass.HostSpan);
        else
            GraphAttentionIlgpu.Forward(device, p, graph, q, k, v, result.Output, result.Lse, result.Stats, diag);
        return result;
    }

    /// <summary>
    /// Gradients with respect to q, k and v given <c>dOut = dL/dO</c> and the forward's O and statistics. Deterministic:
    /// dK and dV are gathered per key node over the graph's transpose (no atomics), so repeated calls are bitwise equal.
    /// </summary>
    /// <param name="graph">The forward's graph.</param>
    /// <param name="dOut">dL/dO <c>[H, Nn, D]</c>.</param>
    /// <param name="q">The forward's queries.</param>
    /// <param name="k">The forward's keys.</param>
    /// <param name="v">The forward's values.</param>
    /// <param name="forward">The forward's result (Output and Stats are read).</param>
    /// <param name="options">The forward's options.</param>
    /// <param name="gradients">Preallocated gradients to overwrite; null to allocate.</param>
    public static GraphAttentionGradients Backward(CsrGraph graph, Tensor dOut, Tensor q, Tensor k, Tensor v, GraphAttentionOutput forward,
        GraphAttentionOptions? options = null, GraphAttentionGradients? gradients = null)
    {
        var p = Validate(graph, q, k, v, options);
        var device = q.Device;
        ArgumentNullException.ThrowIfNull(forward);
        ReadOnlySpan<int> nodeShape = [p.H, p.Nodes, p.D];
        TensorChecks.Input(device, dOut, nodeShape, nameof(dOut));
        TensorChecks.Input(device, forward.Output, nodeShape, "forward.Output");
        TensorChecks.Input(device, forward.Stats, [p.H, p.Nodes, 2], "forward.Stats");
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DQ, nodeShape, "gradients.DQ", dOut, q, k, v, forward.Output, forward.Stats);
            TensorChecks.Output(device, gradients.DK, nodeShape, "gradients.DK", dOut, q, k, v, forward.Output, forward.Stats);
            TensorChecks.Output(device, gradients.DV, nodeShape, "gradients.DV", dOut, q, k, v, forward.Output, forward.Stats);
        }
        TensorChecks.Finite(dOut, nameof(dOut));
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));
        TensorChecks.Finite(forward.Output, "forward.Output");
        CheckSavedStats(p, graph, forward.Stats);

        var result = gradients ?? new GraphAttentionGradients(device.Zeros(p.NodeShape), device.Zeros(p.NodeShape), device.Zeros(p.NodeShape));
        if (device.Backend == Backend.Managed)
            GraphAttentionManaged.Backward(p, graph, dOut.HostSpan, q.HostSpan, k.HostSpan, v.HostSpan, forward.Output.HostSpan,
                forward.Stats.HostSpan, result.DQ.HostSpan, result.DK.HostSpan, result.DV.HostSpan);
        else
            GraphAttentionIlgpu.Backward(device, p, graph, dOut, q, k, v, forward.Output, forward.Stats, result.DQ, result.DK, result.DV);
        return result;
    }

    /// <summary>
    /// Refuses saved statistics the forward cannot have written (as <see cref="Attention.Backward"/>): a node with
    /// neighbours needs a finite m and a log-sum in [0, log degree]; a node with none needs (-inf, 0). Inside a
    /// <see cref="TrainingStep"/> it is skipped (the finiteness checks are deferred into the step as usual); outside one,
    /// an ILGPU device reads the statistics back once.
    /// </summary>
    private static void CheckSavedStats(GraphAttentionParams p, CsrGraph graph, Tensor stats)
    {
        if (stats.Device.ActiveStep is not null) return;
        const float slack = 1e-3f;
        ReadOnlySpan<float> s = stats.Device.IsIlgpu ? stats.ToArray() : stats.HostSpan;
        for (var row = 0; row < p.H * p.Nodes; row++)
        {
            float m = s[2 * row], logSum = s[2 * row + 1];
            var degree = graph.Degree(row % p.Nodes);
            var ok = degree > 0
                ? float.IsFinite(m) && logSum >= -slack && logSum <= (float)Math.Log(degree) + slack
                : float.IsNegativeInfinity(m) && logSum == 0f;
            if (ok) continue;
            throw new ArgumentException(
                $"forward.Stats {Tensor.Format(p.StatsShape)} holds (m, logsum) = ({m}, {logSum}) at (h {row / p.Nodes}, node {row % p.Nodes}) " +
                $"of degree {degree}; pass the GraphAttentionOutput of the forward call with these inputs and options.", "forward");
        }
    }

    private static GraphAttentionParams Validate(CsrGraph graph, Tensor q, Tensor k, Tensor v, GraphAttentionOptions? options)
    {
        ArgumentNullException.ThrowIfNull(graph);
        TensorChecks.QueryKeyValue(q, k, v);
        if (!ReferenceEquals(graph.Device, q.Device))
            throw new ArgumentException($"graph was created on {graph.Device}; the tensors live on {q.Device}. Create the graph on their device.",
                nameof(graph));
        // The resolved problem is cached per calling thread (RecentProblems), keyed by the shapes, the graph's sizes, the
        // options object and its slopes, so a training step does not allocate it again. The graph itself was validated
        // once by CsrGraph.Create and is immutable (its arrays are private copies).
        ReadOnlySpan<int> qShape = q.ShapeSpan, kShape = k.ShapeSpan, vShape = v.ShapeSpan;
        var length = 5 + qShape.Length + kShape.Length + vShape.Length;
        if (length > RecentProblems<GraphAttentionOptions, GraphAttentionParams>.MaxKey) // a bad rank: Resolve throws
            return GraphAttentionParams.Resolve(qShape, kShape, vShape, graph.Nodes, graph.Edges, options);
        Span<int> key = stackalloc int[length];
        key[0] = graph.Nodes;
        key[1] = graph.Edges;
        key[2] = qShape.Length;
        qShape.CopyTo(key[3..]);
        key[3 + qShape.Length] = kShape.Length;
        kShape.CopyTo(key[(4 + qShape.Length)..]);
        key[4 + qShape.Length + kShape.Length] = vShape.Length;
        vShape.CopyTo(key[(5 + qShape.Length + kShape.Length)..]);
        var recent = ManagedParallel.WorkerLocal<RecentProblems<GraphAttentionOptions, GraphAttentionParams>>();
        return recent.Find(key, options, options?.BrakeSlopes)
            ?? recent.Store(key, options, options?.BrakeSlopes,
                GraphAttentionParams.Resolve(qShape, kShape, vShape, graph.Nodes, graph.Edges, options));
    }
}
