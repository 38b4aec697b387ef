// AdamW: launcher, validation and dispatcher of the optimizer step (torch.optim.AdamW's equations) over one flat
// parameter buffer, with decoupled weight decay where a DecayMask says "matrix".
// Shapes: N parameters; parameters, gradients, m, v [N]; the mask [N] (1 where decay applies, 0 elsewhere).
// Implementations: Managed -> bindings/Managed/AdamWManaged.cs; ILGPU -> kernels/Training/AdamWKernels.cs;
// reference -> bindings/Reference/AdamWReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>One contiguous range of the flat parameter buffer and whether weight decay applies to it.</summary>
/// <param name="Offset">First element.</param>
/// <param name="Length">Number of elements (at least 1).</param>
/// <param name="Decay">True for matrices (decayed), false for biases, norms' gains and other vectors.</param>
public readonly record struct ParameterSegment(int Offset, int Length, bool Decay);

/// <summary>
/// Where weight decay applies in a flat parameter buffer of length N: built once from segments that cover [0, N)
/// exactly (every parameter's decay is stated, so a layout mistake is an error, not a silently undecayed weight), and
/// kept on the device as a [N] tensor of 1 (decay) and 0 (no decay), so a step uploads nothing.
/// </summary>
public sealed class DecayMask : IDisposable
{
    private DecayMask(Tensor mask, IReadOnlyList<ParameterSegment> segments)
    {
        Mask = mask;
        Segments = segments;
    }

    /// <summary>The mask <c>[N]</c>: 1 where decay applies, 0 elsewhere.</summary>
    public Tensor Mask { get; }

    /// <summary>The segments it was built from, sorted by offset.</summary>
    public IReadOnlyList<ParameterSegment> Segments { get; }

    /// <summary>Number of parameters N.</summary>
    public int Length => Mask.Length;

    /// <summary>Builds the mask of a buffer of <paramref name="length"/> parameters on <paramref name="device"/>.</summary>
    /// <exception cref="ArgumentException">A segment is empty, out of range, overlaps another, or the segments leave a gap
    /// in [0, length).</exception>
    public static DecayMask Create(Device device, int length, IEnumerable<ParameterSegment> segments)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(segments);
        if (length < 1) throw new ArgumentException($"length is {length}; a parameter buffer holds at least 1 element.", nameof(length));
        var sorted = segments.OrderBy(s => s.Offset).ToArray();
        var mask = new float[length];
        long covered = 0;
        foreach (var s in sorted)
        {
            if (s.Length < 1 || s.Offset < 0 || (long)s.Offset + s.Length > length)
                throw new ArgumentException(
                    $"segment (offset {s.Offset}, length {s.Length}) is empty or outside [0, {length}).", nameof(segments));
            if (s.Offset != covered)
                throw new ArgumentException(
                    s.Offset < covered
                        ? $"segment (offset {s.Offset}, length {s.Length}) overlaps the segment ending at {covered}."
                        : $"no segment covers [{covered}, {s.Offset}): every parameter must have its decay stated.", nameof(segments));
            if (s.Decay) mask.AsSpan(s.Offset, s.Length).Fill(1f);
            covered = (long)s.Offset + s.Length;
        }
        if (covered != length)
            throw new ArgumentException($"no segment covers [{covered}, {length}): every parameter must have its decay stated.", nameof(segments));
        return new DecayMask(device.FromArray(mask, length), sorted);
    }

    /// <inheritdoc />
    public void Dispose() => Mask.Dispose();
}

/// <summary>AdamW's constant hyper-parameters (torch.optim.AdamW's defaults); the learning rate is given per step.</summary>
public sealed record AdamWOptions
{
    /// <summary>Decay of the first moment, in [0, 1).</summary>
    public float Beta1 { get; init; } = 0.9f;
    /// <summary>Decay of the second moment, in [0, 1).</summary>
    public float Beta2 { get; init; } = 0.999f;
    /// <summary>Added to sqrt(v hat), &gt; 0.</summary>
    public float Eps { get; init; } = 1e-8f;
    /// <summary>Decoupled weight decay (p *= 1 - lr wd where the mask says so), &gt;= 0.</summary>
    public float WeightDecay { get; init; } = 0.01f;
}

/// <summary>
/// One AdamW step in place over a flat parameter buffer, its gradient and the moments m and v, with torch.optim.AdamW's
/// update: decoupled decay p *= 1 - lr wd (masked), m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
/// p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
/// </summary>
public static class AdamW
{
    /// <summary>Applies step <paramref name="step"/> (1-based, for the bias corrections) with learning rate <paramref name="learningRate"/>.</summary>
    /// <param name="parameters">Parameters <c>[N]</c>, updated in place.</param>
    /// <param name="gradients">Gradients <c>[N]</c>, read only.</param>
    /// <param name="m">First moment <c>[N]</c> (zeros before step 1), updated in place.</param>
    /// <param name="v">Second moment <c>[N]</c> (zeros before step 1; it stays non-negative, and the op trusts the caller not to write negative values into it), updated in place.</param>
    /// <param name="decay">Where weight decay applies.</param>
    /// <param name="options">Betas, eps and weight decay.</param>
    /// <param name="step">The step count t, at least 1.</param>
    /// <param name="learningRate">This step's learning rate (e.g. from <see cref="CosineSchedule"/>), finite, &gt;= 0.</param>
    /// <exception cref="ArgumentException">A shape or device does not match, two buffers are the same tensor, a buffer holds
    /// NaN or infinity, or a hyper-parameter is out of range; nothing is launched and every
    /// buffer is untouched.</exception>
    public static void Step(Tensor parameters, Tensor gradients, Tensor m, Tensor v, DecayMask decay, AdamWOptions options,
        int step, float learningRate)
    {
        TensorChecks.NotNull(parameters, nameof(parameters));
        parameters.Device.ThrowIfDisposed();
        var device = parameters.Device;
        ReadOnlySpan<int> shape = [parameters.Length];
        TensorChecks.Shape(parameters, shape, nameof(parameters));
        TensorChecks.Input(device, gradients, shape, nameof(gradients));
        TensorChecks.Input(device, m, shape, nameof(m));
        TensorChecks.Input(device, v, shape, nameof(v));
        ArgumentNullException.ThrowIfNull(decay);
        TensorChecks.Input(device, decay.Mask, shape, "decay.Mask");
        ArgumentNullException.ThrowIfNull(options);
        TensorChecks.NotAliased(parameters, nameof(parameters), gradients, m, v, decay.Mask);
        TensorChecks.NotAliased(m, nameof(m), gradients, v, decay.Mask);
        TensorChecks.NotAliased(v, nameof(v), gradients, decay.Mask);
        if (step < 1) throw new ArgumentException($"step is {step}; AdamW counts steps from 1.", nameof(step));
        if (!float.IsFinite(learningRate) || learningRate < 0)
            throw new ArgumentException($"learningRate is {learningRate}; wanted a finite value >= 0.", nameof(learningRate));
        if (!(options.Beta1 >= 0f && options.Beta1 < 1f))
            throw new ArgumentException($"options.Beta1 is {options.Beta1}; wanted [0, 1).", nameof(options));
        if (!(options.Beta2 >= 0f && options.Beta2 < 1f))
            throw new ArgumentException($"options.Beta2 is {options.Beta2}; wanted [0, 1).", nameof(options));
        if (!(options.Eps > 0f && float.IsFinite(options.Eps)))
            throw new ArgumentException($"options.Eps is {options.Eps}; wanted a finite value > 0.", nameof(options));
        if (!(options.WeightDecay >= 0f && float.IsFinite(options.WeightDecay)))
            throw new ArgumentException($"options.WeightDecay is {options.WeightDecay}; wanted a finite value >= 0.", nameof(options));
        TensorChecks.Finite(parameters, nameof(parameters));
        TensorChecks.Finite(gradients, nameof(gradients));
        TensorChecks.Finite(m, nameof(m));
        TensorChecks.Finite(v, nameof(v));

        // The step's constants in float64, rounded once.
        var lrDecay = (float)((double)learningRate * options.WeightDecay);
        var stepSize = (float)(learningRate / (1.0 - Math.Pow(options.Beta1, step)));
        var sqrtCorrection2 = (float)Math.Sqrt(1.0 - Math.Pow(options.Beta2, step));
        // Inside a training step, a failed input check earlier in the step (or in this call) skips the update.
        var failed = false;
        var stepFlag = device.ActiveStep is { } activeStep ? activeStep.Summary(out failed) : default;
        if (device.Backend == Backend.Managed)
        {
            if (failed) return;
            AdamWManaged.Update(parameters.HostSpan, gradients.HostSpan, m.HostSpan, v.HostSpan, decay.Mask.HostSpan, lrDecay, options.Beta1, options.Beta2,
                stepSize, sqrtCorrection2, options.Eps);
            return;
        }
        var kernel = device.GetKernel("AdamW.Update", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<int, Stride1D.Dense>,
            float, float, float, float, float, float>(AdamWKernels.Update));
        var failedCheck = device.ActiveStep is not null ? stepFlag : device.PassFlag;
        kernel(parameters.Length, parameters.View, gradients.View, m.View, v.View, decay.Mask.View, failedCheck, lrDecay, options.Beta1,
            options.Beta2, stepSize, sqrtCorrection2, options.Eps);
    }
}
