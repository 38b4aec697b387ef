// CrossEntropy: launcher, validation and dispatcher of the fused classifier (llm.c's fused_classifier).
// Shapes: T rows (tokens), V classes; logits [T, V], targets [T] (float-coded ids, see TokenIds), losses [T], mean [1],
// dlogits [T, V].
// Implementations: Managed -> bindings/Managed/CrossEntropyManaged.cs; ILGPU -> kernels/Training/CrossEntropyKernels.cs;
// reference -> bindings/Reference/CrossEntropyReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>The outputs of <see cref="CrossEntropy.Forward"/>: per-row losses, their mean and the gradient of the mean.</summary>
public sealed class CrossEntropyOutput : IDisposable
{
    /// <summary>Wraps losses [T], mean [1] and dlogits [T, V].</summary>
    public CrossEntropyOutput(Tensor losses, Tensor mean, Tensor dlogits)
    {
        (Losses, Mean, DLogits) = (losses, mean, dlogits);
    }

    /// <summary>Per-row loss <c>[T]</c>: logsumexp(logits[t]) - logits[t, target[t]], 0 on ignored rows.</summary>
    public Tensor Losses { get; }
    /// <summary>The mean loss over non-ignored rows <c>[1]</c> (0 when every row is ignored), left on the device.</summary>
    public Tensor Mean { get; }
    /// <summary>d Mean / d logits <c>[T, V]</c>: (softmax - onehot) / count, zero rows where ignored.</summary>
    public Tensor DLogits { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Losses.Dispose();
        Mean.Dispose();
        DLogits.Dispose();
    }
}

/// <summary>
/// Softmax, cross-entropy loss and its gradient fused in one op, as a training step needs them (the loss is never
/// differentiated separately, so forward and backward are one call). Rows whose target equals the ignore index
/// contribute nothing: loss 0 and zero dlogits, and they are not counted in the mean. When every row is ignored the
/// mean is defined as 0 and every gradient is zero (nothing to learn from), not 0 / 0. Numerically stable for any
/// finite logits (the row max is subtracted before exp).
/// </summary>
public static class CrossEntropy
{
    /// <summary>The ignore index PyTorch uses by default.</summary>
    public const int DefaultIgnoreIndex = -100;

    /// <summary>
    /// Computes per-row losses, their mean over the rows whose target is not <paramref name="ignoreIndex"/>, and
    /// dlogits = (softmax(logits) - onehot(targets)) / count, where count is the number of such rows.
    /// </summary>
    /// <param name="logits">Scores <c>[T, V]</c>, finite.</param>
    /// <param name="targets">Class ids <c>[T]</c> as float-coded integers in [0, V), or <paramref name="ignoreIndex"/>.</param>
    /// <param name="ignoreIndex">The target that marks a row to skip (|ignoreIndex| at most 2^24).</param>
    /// <param name="outputs">Preallocated outputs (losses [T], mean [1], dlogits [T, V]), distinct from the inputs and
    /// from each other; allocated when null.</param>
    /// <exception cref="ArgumentException">A shape, rank or device does not match, logits hold NaN or infinity, a target
    /// is not an integer in [0, V) nor the ignore index, T or V exceeds 2^24, or an output aliases an input; nothing is
    /// launched and preallocated outputs are untouched.</exception>
    public static CrossEntropyOutput Forward(Tensor logits, Tensor targets, int ignoreIndex = DefaultIgnoreIndex,
        CrossEntropyOutput? outputs = null)
    {
        TensorChecks.NotNull(logits, nameof(logits));
        logits.Device.ThrowIfDisposed();
        if (logits.Rank != 2)
            throw new ArgumentException($"logits must have rank 2 [T, V]; got shape {Tensor.Format(logits.ShapeSpan)}.", nameof(logits));
        int rows = logits.Shape[0], classes = logits.Shape[1];
        var device = logits.Device;
        TensorChecks.Input(device, targets, [rows], nameof(targets));
        TokenIds.CheckLimit(classes, "V (logits.Shape[1])");
        TokenIds.CheckLimit(rows, "T (logits.Shape[0])"); // the GPU counts rows in float32, exact up to 2^24
        TokenIds.CheckIgnore(ignoreIndex, nameof(ignoreIndex));
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Losses, [rows], "outputs.Losses", logits, targets);
            TensorChecks.Output(device, outputs.Mean, [1], "outputs.Mean", logits, targets, outputs.Losses);
            TensorChecks.Output(device, outputs.DLogits, [rows, classes], "outputs.DLogits", logits, targets, outputs.Losses, outputs.Mean);
        }
        TensorChecks.Finite(logits, nameof(logits));
        TokenIds.Check(targets, classes, ignoreIndex, nameof(targets));

        var o = outputs ?? new CrossEntropyOutput(device.Zeros(rows), device.Zeros(1), device.Zeros(rows, classes));
        if (device.Backend == Backend.Managed)
        {
            o.Mean.HostSpan[0] = CrossEntropyManaged.Forward(logits.HostSpan, targets.HostSpan, rows, classes, ignoreIndex, o.Losses.HostSpan, o.DLogits.HostSpan);
            return o;
        }
        var count = device.Kernel("CrossEntropy.Count", CrossEntropyKernels.Count);
        var rowsKernel = device.GetKernel("CrossEntropy.Rows", static acc => acc.LoadStreamKernel<
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int, float>(CrossEntropyKernels.Rows));
        var mean = device.GetKernel("CrossEntropy.Mean", static acc => acc.LoadStreamKernel<
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int>(
            CrossEntropyKernels.Mean));
        var stats = device.Workspace("crossentropy.stats", 1); // [1]: count of non-ignored rows
        var one = new KernelConfig(1, CrossEntropyKernels.GroupSize);
        count(one, targets.View, stats, rows, ignoreIndex);
        rowsKernel(new KernelConfig(FeatureNorms.GridSize(device, rows), CrossEntropyKernels.GroupSize),
            logits.View, targets.View, stats, o.Losses.View, o.DLogits.View, rows, classes, ignoreIndex);
        mean(one, o.Losses.View, stats, o.Mean.View, rows);
        return o;
    }

    private static Action<KernelConfig, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, float> Kernel(
        this Device device, string key,
        Action<ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, float> method) =>
        device.GetKernel(key, acc => acc.LoadStreamKernel(method));
}
