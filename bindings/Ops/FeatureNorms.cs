// FeatureNorms: launcher, validation and dispatcher. Shapes: R rows, F features; x [R, F], every output [R].
// Implementations: Managed -> bindings/Managed/FeatureNormsManaged.cs; ILGPU -> kernels/FeatureNorms/FeatureNormsKernels.cs.
// Time with `routekit-perf featurenorms`.
// 2026-12-02: a norm that fits in float32 is returned on every backend even where x^2 overflows or underflows (on
// Managed a float64 recompute of any float32 block whose squares leave float32's range, in the kernel power-of-two-
// scaled sums); a norm beyond float.MaxValue is refused with an OverflowException naming the row and the norm, found
// by one scan of the row outputs (Managed) or one flag the kernel sets (ILGPU), so no per-element host sync. The
// backward checks the saved forward.L2 like every input.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.FeatureNorms;

namespace RouteKit;

/// <summary>Per-row norms of x <c>[R, F]</c>, each a tensor <c>[R]</c>.</summary>
public sealed class FeatureNormOutput : IDisposable
{
    /// <summary>Wraps five tensors of shape [R].</summary>
    public FeatureNormOutput(Tensor l1, Tensor l2, Tensor l0, Tensor max, Tensor nan)
    {
        (L1, L2, L0, Max, Nan) = (l1, l2, l0, max, nan);
    }

    /// <summary>sum |x|.</summary>
    public Tensor L1 { get; }
    /// <summary>sqrt(sum x^2).</summary>
    public Tensor L2 { get; }
    /// <summary>#{x &gt; 0} (the count of positive activations, as a float).</summary>
    public Tensor L0 { get; }
    /// <summary>max x.</summary>
    public Tensor Max { get; }
    /// <summary>The negative-aware norm L1 / L0 (0 where L0 = 0), ICCV 2023 eq. 10.</summary>
    public Tensor Nan { get; }

    internal IEnumerable<(Tensor Tensor, string Name)> All =>
        [(L1, "outputs.L1"), (L2, "outputs.L2"), (L0, "outputs.L0"), (Max, "outputs.Max"), (Nan, "outputs.Nan")];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (t, _) in All) t.Dispose();
    }
}

/// <summary>
/// Fused feature norms per row (L1, L2, L0, Max and NAN in one pass), and the backward of L1 and L2. Every norm that
/// fits in float32 is computed without intermediate overflow or underflow (on Managed, float32 block sums with a float64
/// recompute of any block whose squares leave float32's range; in the GPU kernel, sums scaled by a power of two near
/// the largest |x|, as BLAS nrm2 does); a norm that does not fit is refused.
/// </summary>
public static class FeatureNorms
{
    /// <summary>Computes every norm of every row of <paramref name="x"/> <c>[R, F]</c> in one pass.</summary>
    /// <remarks>
    /// When a row's L1 or L2 exceeds <see cref="float.MaxValue"/> the call throws instead of returning infinity. On
    /// Managed, preallocated <paramref name="outputs"/> are then left untouched; on ILGPU backends the kernel writes the
    /// norms as it computes them, so they hold this call's results, infinite in the refused row (outputs the call
    /// allocated itself are disposed).
    /// </remarks>
    /// <exception cref="ArgumentException">x is not rank 2, holds NaN or infinity, or outputs have the wrong shape.</exception>
    /// <exception cref="OverflowException">A row's L1 or L2 is larger than float32 can hold; the message names the first such
    /// row, the norm and its float64 value.</exception>
    public static FeatureNormOutput Forward(Tensor x, FeatureNormOutput? outputs = null)
    {
        var (rows, features) = Validate(x);
        var device = x.Device;
        if (outputs is not null)
            foreach (var (t, name) in outputs.All) TensorChecks.Output(device, t, [rows], name, x);
        if (device.Backend == Backend.Managed)
            return ForwardManaged(x, rows, features, outputs);
        TensorChecks.Finite(x, nameof(x));
        var o = outputs ?? new FeatureNormOutput(device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows));
        var kernel = device.GetKernel("FeatureNorms.Forward", static acc => acc.LoadStreamKernel<
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<int, Stride1D.Dense>, int, int>(FeatureNormsKernels.Forward));
        using var overflowRow = device.Accelerator!.Allocate1D(new[] { int.MaxValue }); // [1]: first row whose norm overflowed
        device.CountAllocation();
        device.CountRead();
        kernel(new KernelConfig(GridSize(device, rows), FeatureNormsKernels.GroupSize),
            x.View, o.L1.View, o.L2.View, o.L0.View, o.Max.View, o.Nan.View, overflowRow.View, rows, features);
        var row = overflowRow.GetAsArray1D()[0];
        if (row == int.MaxValue) return o;
        if (outputs is null) o.Dispose();
        throw Overflow(x, row, x.View.SubView((long)row * features, features).GetAsArray1D());
    }

    /// <summary>
    /// dx = dL1 sign(x) + dL2 x / L2 for a loss that depends on the rows' L1 and L2 norms (either gradient may be null,
    /// meaning zero). At x = 0 the L1 subgradient used is 0; an all-zero row gets no L2 gradient. The ratio x / L2 is
    /// formed first, so dx is finite and accurate for any finite x and saved L2.
    /// </summary>
    /// <exception cref="ArgumentException">A shape or device does not match, or x, dL1, dL2 or the saved forward.L2
    /// holds NaN or infinity (nothing is launched then).</exception>
    public static Tensor Backward(Tensor x, FeatureNormOutput forward, Tensor? dL1, Tensor? dL2, Tensor? dx = null)
    {
        var (rows, features) = Validate(x);
        var device = x.Device;
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, forward.L2, [rows], "forward.L2");
        if (dL1 is null && dL2 is null)
            throw new ArgumentException("Both dL1 and dL2 are null: give the gradient of at least one norm.", nameof(dL1));
        if (dL1 is not null) TensorChecks.Input(device, dL1, [rows], nameof(dL1));
        if (dL2 is not null) TensorChecks.Input(device, dL2, [rows], nameof(dL2));
        if (dx is not null) TensorChecks.Output(device, dx, [rows, features], nameof(dx), x, forward.L2, dL1 ?? x, dL2 ?? x);
        TensorChecks.Finite(x, nameof(x));
        if (dL1 is not null) TensorChecks.Finite(dL1, nameof(dL1));
        if (dL2 is not null) TensorChecks.Finite(dL2, nameof(dL2));
        TensorChecks.Finite(forward.L2, "forward.L2");
        var result = dx ?? device.Zeros(rows, features);
        if (device.Backend == Backend.Managed)
        {
            FeatureNormsManaged.Backward(x.Host, rows, features, forward.L2.Host, dL1?.Host, dL2?.Host, result.Host);
            return result;
        }
        // A missing gradient is zero: launch with a zero vector from the same device rather than branching in the kernel.
        using var zeros = dL1 is null || dL2 is null ? device.Zeros(rows) : null;
        var kernel = device.GetKernel("FeatureNorms.Backward", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int>(FeatureNormsKernels.Backward));
        kernel(x.Length, x.View, forward.L2.View, (dL1 ?? zeros!).View, (dL2 ?? zeros!).View, result.View, features);
        return result;
    }

    // The pass is memory-bound, so a separate finite check would halve its speed. Instead the norms land in scratch
    // first: a NaN or infinity in x makes its row's L1 non-finite, and only then is x scanned to name the element and
    // throw; with x finite a non-finite L1 or L2 is a norm beyond float32 (the float64 sums themselves cannot
    // overflow), refused with the row named. Otherwise the scratch is copied out. Outputs are untouched on refusal.
    private static FeatureNormOutput ForwardManaged(Tensor x, int rows, int features, FeatureNormOutput? outputs)
    {
        var pool = System.Buffers.ArrayPool<float>.Shared;
        float[][] scratch = [pool.Rent(rows), pool.Rent(rows), pool.Rent(rows), pool.Rent(rows), pool.Rent(rows)];
        try
        {
            FeatureNormsManaged.Forward(x.Host, rows, features, scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]);
            var row = FirstNonFiniteRow(scratch[0].AsSpan(0, rows), scratch[1].AsSpan(0, rows));
            if (row >= 0)
            {
                TensorChecks.Finite(x, nameof(x)); // throws when x itself holds the NaN or infinity
                throw Overflow(x, row, x.Host.AsSpan(row * features, features));
            }
            var device = x.Device;
            var o = outputs ?? new FeatureNormOutput(device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows), device.Zeros(rows));
            var k = 0;
            foreach (var (t, _) in o.All) scratch[k++].AsSpan(0, rows).CopyTo(t.Host);
            return o;
        }
        finally
        {
            foreach (var a in scratch) pool.Return(a);
        }
    }

    private static int FirstNonFiniteRow(ReadOnlySpan<float> l1, ReadOnlySpan<float> l2)
    {
        if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(l1))
            && float.IsFinite(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(l2)))
            return -1;
        for (var r = 0; r < l1.Length; r++)
            if (!float.IsFinite(l1[r]) || !float.IsFinite(l2[r])) return r;
        return -1;
    }

    // The refusal of a row whose norm does not fit, with the norm recomputed in float64 to say what it would be.
    private static OverflowException Overflow(Tensor x, int row, ReadOnlySpan<float> values)
    {
        double l1 = 0, squares = 0;
        foreach (var v in values)
        {
            l1 += Math.Abs(v);
            squares += (double)v * v;
        }
        var l2 = Math.Sqrt(squares);
        var l2Over = float.IsInfinity((float)l2);
        // L1 >= L2, so L1 is the norm at float32's edge whenever the rounding of the backend's own sum tipped it over.
        var l1Over = float.IsInfinity((float)l1) || !l2Over;
        var what = string.Join(" and ", new[] { l1Over ? $"L1 = sum|x| = {l1:E4}" : null, l2Over ? $"L2 = sqrt(sum x^2) = {l2:E4}" : null }
            .Where(s => s is not null));
        return new OverflowException(
            $"FeatureNorms.Forward: row {row} of x {Tensor.Format(x.Shape.ToArray())} has {what}, beyond float32's largest value " +
            $"{float.MaxValue:E4}; the norms are refused rather than returned as infinity. Scale the rows down first " +
            "(every norm but L0 scales with x: norm(x / s) = norm(x) / s).");
    }

    internal static (int Rows, int Features) Validate(Tensor x)
    {
        TensorChecks.NotNull(x, nameof(x));
        x.Device.ThrowIfDisposed();
        if (x.Rank != 2)
            throw new ArgumentException($"x must have rank 2 [R, F]; got shape {Tensor.Format(x.Shape.ToArray())}.", nameof(x));
        return (x.Shape[0], x.Shape[1]);
    }

    internal static int GridSize(Device device, int rows) =>
        Math.Min(rows, Math.Max(1, device.Accelerator!.NumMultiprocessors) * 64);
}
