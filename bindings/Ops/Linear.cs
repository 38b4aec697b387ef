// Linear: launcher, validation and dispatcher of y = x W^T + b (DESIGN.md section 9, PyTorch's layout).
// Shapes: T tokens, I input features, O output features; x [T, I], W [O, I], b [O], y and dy [T, O].
// Implementations: Managed -> bindings/Managed/Sgemm.cs; ILGPU -> kernels/Linear/LinearKernels.cs (tiled SGEMM on
// IlgpuCpu, OpenCL and Cuda; cuBLAS is not wired yet). Reference -> bindings/Reference/LinearReference.cs.
// Time the Managed GEMM with `routekit-perf gemm`.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Linear;

namespace RouteKit;

/// <summary>Gradients of a linear layer: dx <c>[T, I]</c>, dW <c>[O, I]</c> and, with a bias, db <c>[O]</c>.</summary>
public sealed class LinearGradients : IDisposable
{
    /// <summary>Wraps the gradient tensors; <paramref name="db"/> is null for a layer without bias.</summary>
    public LinearGradients(Tensor dx, Tensor dw, Tensor? db)
    {
        (DX, DW, DB) = (dx, dw, db);
    }

    /// <summary>dL/dx = dy W, [T, I].</summary>
    public Tensor DX { get; }

    /// <summary>dL/dW = dy^T x, [O, I].</summary>
    public Tensor DW { get; }

    /// <summary>dL/db = the sum of dy over tokens, [O]; null for a layer without bias.</summary>
    public Tensor? DB { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        DX.Dispose();
        DW.Dispose();
        DB?.Dispose();
    }
}

/// <summary>
/// A fully connected layer, y = x W^T + b, with its explicit backward. Gradients overwrite their outputs (no
/// accumulation into existing gradients: a caller that sums over micro-batches adds the results itself). Both
/// directions are deterministic: every output element is summed by one thread in a fixed order, without atomics.
/// </summary>
public static class Linear
{
    /// <summary>y = x W^T + b for x <c>[T, I]</c>, W <c>[O, I]</c>, b <c>[O]</c> (null: no bias); y <c>[T, O]</c>.</summary>
    /// <param name="x">Inputs [T, I].</param>
    /// <param name="w">Weights [O, I].</param>
    /// <param name="b">Bias [O], or null.</param>
    /// <param name="y">Preallocated output [T, O], or null to allocate one. Untouched when the call refuses.</param>
    /// <exception cref="ArgumentException">A rank, shape or device does not match, y is one of the inputs, or an input
    /// holds NaN or infinity (nothing is launched then).</exception>
    public static Tensor Forward(Tensor x, Tensor w, Tensor? b = null, Tensor? y = null)
    {
        var (tokens, inputs, outputs) = Validate(x, w);
        var device = x.Device;
        if (b is not null) TensorChecks.Input(device, b, [outputs], nameof(b));
        if (y is not null) TensorChecks.Output(device, y, [tokens, outputs], nameof(y), x, w, b);
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(w, nameof(w));
        if (b is not null) TensorChecks.Finite(b, nameof(b));
        var result = y ?? device.Zeros(tokens, outputs);
        // y[T, O] = x[T, I] . W^T[I, O]: A = x (rows of I), B(i, o) = W[o, i].
        Gemm(device, tokens, outputs, inputs, x, inputs, 1, w, 1, inputs, b, result);
        return result;
    }

    /// <summary>
    /// dx = dy W, dW = dy^T x and, when <paramref name="hasBias"/>, db = the sum of dy over tokens. Overwrites the
    /// given gradients.
    /// </summary>
    /// <param name="dy">Gradient of the output [T, O].</param>
    /// <param name="x">The forward's input [T, I].</param>
    /// <param name="w">The forward's weights [O, I].</param>
    /// <param name="hasBias">Whether the layer has a bias, so db is computed.</param>
    /// <param name="gradients">Preallocated gradients (DB present exactly when <paramref name="hasBias"/>), or null to
    /// allocate them. Untouched when the call refuses.</param>
    /// <exception cref="ArgumentException">A rank, shape or device does not match, a gradient is an input or another
    /// gradient, or an input holds NaN or infinity (nothing is launched then).</exception>
    public static LinearGradients Backward(Tensor dy, Tensor x, Tensor w, bool hasBias, LinearGradients? gradients = null)
    {
        var (tokens, inputs, outputs) = Validate(x, w);
        var device = x.Device;
        TensorChecks.Input(device, dy, [tokens, outputs], nameof(dy));
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DX, [tokens, inputs], "gradients.DX", dy, x, w);
            TensorChecks.Output(device, gradients.DW, [outputs, inputs], "gradients.DW", dy, x, w, gradients.DX);
            if (hasBias != gradients.DB is not null)
                throw new ArgumentException(
                    $"gradients.DB is {(gradients.DB is null ? "null" : "given")} but hasBias is {hasBias}; give a [{outputs}] db exactly when the layer has a bias.",
                    nameof(gradients));
            if (gradients.DB is not null)
                TensorChecks.Output(device, gradients.DB, [outputs], "gradients.DB", dy, x, w, gradients.DX, gradients.DW);
        }
        TensorChecks.Finite(dy, nameof(dy));
        TensorChecks.Finite(x, nameof(x));
        TensorChecks.Finite(w, nameof(w));
        var g = gradients ?? new LinearGradients(device.Zeros(tokens, inputs), device.Zeros(outputs, inputs), hasBias ? device.Zeros(outputs) : null);
        // dx[T, I] = dy[T, O] . W[O, I].
        Gemm(device, tokens, inputs, outputs, dy, outputs, 1, w, inputs, 1, null, g.DX);
        // dW[O, I] = dy^T[O, T] . x[T, I]: A(o, t) = dy[t, o].
        Gemm(device, outputs, inputs, tokens, dy, 1, outputs, x, inputs, 1, null, g.DW);
        if (g.DB is not null)
        {
            if (device.Backend == Backend.Managed) Sgemm.ColumnSums(dy.HostSpan, tokens, outputs, g.DB.HostSpan);
            else
            {
                var sums = device.GetKernel("Linear.ColumnSums", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
                    ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(LinearKernels.ColumnSums));
                sums(outputs, dy.View, g.DB.View, tokens, outputs);
            }
        }
        return g;
    }

    // C[M, N] = A[M, K] . B[K, N] (+ bias per row) on the device's backend; A and B through (row, column) strides.
    private static unsafe void Gemm(Device device, int m, int n, int k, Tensor a, int aRow, int aCol, Tensor b, int bRow, int bCol,
        Tensor? bias, Tensor c)
    {
        if (device.Backend == Backend.Managed)
        {
            fixed (float* pa = a.HostSpan, pb = b.HostSpan, pc = c.HostSpan)
                Sgemm.Multiply(m, n, k, new MatrixOperand((nint)pa, aRow, aCol), new MatrixOperand((nint)pb, bRow, bCol), pc, n);
            if (bias is not null) Sgemm.AddRowVector(c.HostSpan, m, n, bias.HostSpan);
            return;
        }
        var kernel = device.GetKernel("Linear.Sgemm", static acc => acc.LoadStreamKernel<
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>,
            ArrayView1D<float, Stride1D.Dense>, GemmShape>(LinearKernels.Sgemm));
        var shape = new GemmShape { M = m, N = n, K = k, ARow = aRow, ACol = aCol, BRow = bRow, BCol = bCol, HasBias = bias is null ? 0 : 1 };
        var grid = new Index3D((n + LinearKernels.TileN - 1) / LinearKernels.TileN, (m + LinearKernels.TileM - 1) / LinearKernels.TileM, 1);
        // Without a bias the kernel never reads the bias view; C itself stands in so no buffer is allocated.
        kernel(new KernelConfig(grid, new Index3D(LinearKernels.GroupSize, 1, 1)), a.View, b.View, (bias ?? c).View, c.View, shape);
    }

    private static (int Tokens, int Inputs, int Outputs) Validate(Tensor x, Tensor w)
    {
        TensorChecks.NotNull(x, nameof(x));
        TensorChecks.NotNull(w, nameof(w));
        x.Device.ThrowIfDisposed();
        if (x.Rank != 2)
            throw new ArgumentException($"x must have rank 2 [T, I]; got shape {Tensor.Format(x.ShapeSpan)}.", nameof(x));
        TensorChecks.SameDevice(x.Device, w, nameof(w));
        if (w.Rank != 2 || w.Shape[1] != x.Shape[1])
            throw new ArgumentException(
                $"w has shape {Tensor.Format(w.ShapeSpan)}; wanted [O, {x.Shape[1]}] (PyTorch layout [out, in], in = x's last dimension).", nameof(w));
        return (x.Shape[0], x.Shape[1], w.Shape[0]);
    }
}
