// Attention: launcher, validation and the one dispatcher from backend to implementation.
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim.
// Implementations: Managed -> bindings/Managed/AttentionManaged.cs; Cuda, OpenCL, IlgpuCpu -> bindings/Ops/AttentionIlgpu.cs
// over the kernels in kernels/Attention/. Time them with `routekit-perf attention`.
using ILGPU.Runtime;

namespace RouteKit;

/// <summary>
/// Fused softmax attention with Dot or Distance scores, optional key normalisation, causal and window masks, a
/// per-head positional brake, GQA/MQA and fused diagnostics (DESIGN.md section 4). O(N) extra memory: never an N x M buffer.
/// </summary>
public static class Attention
{
    /// <summary>
    /// Computes <c>O = softmax(z) v</c> and <c>Lse</c> (and the diagnostics when asked).
    /// </summary>
    /// <param name="q">Queries <c>[B, H, N, D]</c>.</param>
    /// <param name="k">Keys <c>[B, Hkv, M, D]</c>, H % Hkv == 0.</param>
    /// <param name="v">Values <c>[B, Hkv, M, D]</c>.</param>
    /// <param name="options">Score, masks, brake, diagnostics; null for defaults.</param>
    /// <param name="outputs">Preallocated outputs to overwrite (so a training step allocates nothing); null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices, options or non-finite inputs, before any kernel runs.</exception>
    public static AttentionOutput Forward(Tensor q, Tensor k, Tensor v, AttentionOptions? options = null, AttentionOutput? outputs = null)
    {
        var p = Validate(q, k, v, options);
        var device = q.Device;
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Output, [p.B, p.H, p.N, p.D], "outputs.Output", q, k, v);
            TensorChecks.Output(device, outputs.Lse, [p.B, p.H, p.N], "outputs.Lse", q, k, v);
            TensorChecks.Output(device, outputs.Stats, [p.B, p.H, p.N, 2], "outputs.Stats", q, k, v);
            if (p.Diagnostics)
            {
                var dg = outputs.Diagnostics ?? throw new ArgumentException(
                    "options.Diagnostics is set but outputs.Diagnostics is null; preallocate all three [B, H, N] tensors.", nameof(outputs));
                TensorChecks.Output(device, dg.Entropy, [p.B, p.H, p.N], "outputs.Diagnostics.Entropy", q, k, v);
                TensorChecks.Output(device, dg.SinkMass, [p.B, p.H, p.N], "outputs.Diagnostics.SinkMass", q, k, v);
                TensorChecks.Output(device, dg.MaxProb, [p.B, p.H, p.N], "outputs.Diagnostics.MaxProb", q, k, v);
            }
        }
        TensorChecks.Finite(q, nameof(q));
        TensorChecks.Finite(k, nameof(k));
        TensorChecks.Finite(v, nameof(v));

        var result = outputs ?? AttentionOutput.Allocate(device, p.B, p.H, p.N, p.D, p.Diagnostics);
        var diag = p.Diagnostics ? result.Diagnostics : null;

        if (device.Backend == Backend.Managed)
            AttentionManaged.Forward(p, q.HostSpan, k.HostSpan, v.HostSpan, result.Output.HostSpan, result.Lse.HostSpan,
                result.Stats.HostSpan, diag is null ? default : diag.Entropy.HostSpan, diag is null ? default : diag.SinkMass.HostSpan,
                diag is null ? default : diag.MaxProb.HostSpan);
        else
            AttentionIlgpu.Forward(device, p, q, k, v, result.Output, result.Lse, result.Stats, diag);
        return result;
    }

    /// <summary>
    /// Gradients of a scalar loss L with respect to q, k and v, given <c>dOut = dL/dO</c> and the forward's O and saved
    /// statistics. P is recomputed from <see cref="AttentionOutput.Stats"/>; nothing of size N x M is stored. The
    /// backward is deterministic: repeated calls give bitwise-equal gradients.
    /// </summary>
    /// <param name="dOut">dL/dO <c>[B, H, N, D]</c>.</param>
    /// <param name="q">The forward's queries.</param>
    /// <param name="k">The forward's keys.</param>
    /// <param name="v">The forward's values.</param>
    /// <param name="forward">The forward's result (Output and Stats are read, and checked like every input).</param>
    /// <param name="options">The forward's options (must be the same).</param>
    /// <param name="gradients">Preallocated gradients to overwrite; null to allocate.</param>
    public static AttentionGradients Backward(
        Tensor dOut, Tensor q, Tensor k, Tensor v, AttentionOutput forward, AttentionOptions? options = null,
        AttentionGradients? gradients = null)
    {
        var p = Validate(q, k, v, options);
        var device = q.Device;
        ArgumentNullException.ThrowIfNull(forward);
        ReadOnlySpan<int> queryShape = [p.B, p.H, p.N, p.D], keyShape = [p.B, p.Hkv, p.M, p.D];
        TensorChecks.Input(device, dOut, queryShape, nameof(dOut));
        TensorChecks.Input(device, forward.Output, queryShape, "forward.Output");
        TensorChecks.Input(device, forward.Stats, [p.B, p.H, p.N, 2], "forward.Stats");
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
        CheckSavedStats(p, forward.Stats);

        var result = gradients ?? new AttentionGradients(device.Zeros(p.QueryShape), device.Zeros(p.KeyShape), device.Zeros(p.KeyShape));
        if (device.Backend == Backend.Managed)
            AttentionManaged.Backward(p, dOut.HostSpan, q.HostSpan, k.HostSpan, v.HostSpan, forward.Output.HostSpan,
                forward.Stats.HostSpan, result.DQ.HostSpan, result.DK.HostSpan, result.DV.HostSpan);
        else
            AttentionIlgpu.Backward(device, p, dOut, q, k, v, forward.Output, forward.Stats, result.DQ, result.DK, result.DV);
        return result;
    }

    /// <summary>
    /// Refuses saved statistics the forward cannot have written: a row that sees some key needs a finite m and a
    /// log-sum in [0, log M] (a sum of at most M terms, the largest exactly 1; a little slack for the rounding of exp
    /// and log); a row that sees none needs (-inf, 0). A NaN there would reach every gradient of the row, and an
    /// infinite m would silently give zero gradients. Shared with <see cref="DepthRouter"/>, which describes its rows as
    /// one batch and head (<see cref="DepthRouterParams.StatsRows"/>) and names them with <paramref name="describeRow"/>.
    /// </summary>
    internal static void CheckSavedStats(AttentionParams p, Tensor stats, string op = "Attention",
        Func<int, string>? describeRow = null)
    {
        const float slack = 1e-3f;
        float minLogSum = -slack, maxLogSum = (float)Math.Log(p.M) + slack;
        int bad;
        var step = stats.Device.ActiveStep;
        if (step is { Checks: StepChecks.Off }) return;
        if (stats.Device.IsIlgpu && step is not null)
        {
            // Deferred: the check kernel writes into the step's slot; TrainingStep.Finish reads it.
            var slot = step.Claim(new TrainingStep.Slot(TrainingStep.SlotKind.Rows, "forward.Stats", op, stats, 0, 0f));
            AttentionIlgpu.LaunchStatsCheck(stats.Device, p, stats, minLogSum, maxLogSum, step.SlotView(slot));
            return;
        }
        if (stats.Device.IsIlgpu)
        {
            bad = AttentionIlgpu.FirstBadStatsRow(stats.Device, p, stats, minLogSum, maxLogSum);
            if (bad == int.MaxValue) return;
        }
        else
        {
            ReadOnlySpan<float> s = stats.HostSpan;
            bad = int.MaxValue;
            for (var row = 0; row < p.B * p.H * p.N && bad == int.MaxValue; row++)
            {
                float m = s[2 * row], logSum = s[2 * row + 1];
                var ok = p.SeesAnyKey(row / p.N / p.H, row % p.N)
                    ? float.IsFinite(m) && logSum >= minLogSum && logSum <= maxLogSum
                    : float.IsNegativeInfinity(m) && logSum == 0f;
                if (!ok) bad = row;
            }
            if (step is not null)
            {
                step.SetHostSlot(step.Claim(new TrainingStep.Slot(TrainingStep.SlotKind.Rows, "forward.Stats", op, stats, 0, 0f)), bad);
                return;
            }
            if (bad == int.MaxValue) return;
        }
        var pair = stats.Device.IsIlgpu ? stats.View.SubView(2L * bad, 2).GetAsArray1D() : stats.HostSpan.Slice(2 * bad, 2).ToArray();
        int i = bad % p.N, h = bad / p.N % p.H, b = bad / p.N / p.H;
        var wanted = p.SeesAnyKey(b, i)
            ? $"a finite row max and a log-sum in [0, log M = {Math.Log(p.M):G4}]"
            : "(-inf, 0), since that row sees no key";
        throw new ArgumentException(
            $"forward.Stats {Tensor.Format(stats.ShapeSpan)} holds (m, logsum) = ({pair[0]}, {pair[1]}) at row " +
            $"{describeRow?.Invoke(bad) ?? $"(b {b}, h {h}, i {i})"}; wanted {wanted}. Pass the output of the {op} forward call " +
            "with these inputs and options.", "forward");
    }

    private static AttentionParams Validate(Tensor q, Tensor k, Tensor v, AttentionOptions? options)
    {
        TensorChecks.QueryKeyValue(q, k, v);
        return Resolved.Get(q.ShapeSpan, k.ShapeSpan, v.ShapeSpan, options);
    }

    // The last problems this thread resolved (one per layer of a model, up to Slots), reused while the shapes and the
    // options object are the same (a training loop calls with the same ones every step), so a call does not allocate a
    // new AttentionParams. The options record is immutable but for the contents of its BrakeSlopes array, compared too.
    private sealed class Resolved
    {
        private const int Slots = 16;
        [ThreadStatic] private static Resolved[]? recent;
        [ThreadStatic] private static int next;

        private readonly int[] q = new int[4], k = new int[4], v = new int[4];
        private AttentionOptions? options;
        private AttentionParams? p;

        public static AttentionParams Get(ReadOnlySpan<int> qShape, ReadOnlySpan<int> kShape, ReadOnlySpan<int> vShape, AttentionOptions? options)
        {
            var slots = recent ??= CreateSlots();
            foreach (var c in slots)
                if (c.p is { } hit && ReferenceEquals(c.options, options) && qShape.SequenceEqual(c.q) && kShape.SequenceEqual(c.k)
                    && vShape.SequenceEqual(c.v) && (options?.BrakeSlopes is not { } slopes || slopes.AsSpan().SequenceEqual(hit.BrakeSlopes)))
                    return hit;
            var p = AttentionParams.Resolve(qShape, kShape, vShape, options); // throws on bad input: nothing is cached
            var r = slots[next];
            next = (next + 1) % Slots;
            qShape.CopyTo(r.q);
            kShape.CopyTo(r.k);
            vShape.CopyTo(r.v);
            (r.options, r.p) = (options, p);
            return p;
        }

        private static Resolved[] CreateSlots()
        {
            var slots = new Resolved[Slots];
            for (var i = 0; i < Slots; i++) slots[i] = new Resolved();
            return slots;
        }
    }
}
