// Permute: the layout changes between the routers. Shapes: A outer batch, P and Q the swapped dimensions, R the
// contiguous inner run; x [A, P, Q, R] -> y [A, Q, P, R], n = A P Q R. Uses: [B, T, H, D] -> [B, H, T, D] for
// attention heads (A = B, P = T, Q = H, R = D) and [B, T, C] -> [B, C, T] for the scans' channel-major layout
// (A = B, P = T, Q = C, R = 1).
// Implementations: Managed -> bindings/Managed/PermuteManaged.cs; ILGPU -> kernels/Training/PermuteKernels.cs
// (Transpose32 when R = 1, Gather otherwise). The reference is the definition itself (tests/Training/PermuteTests.cs).
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;
using View = ILGPU.Runtime.ArrayView1D<float, ILGPU.Stride1D.Dense>;

namespace RouteKit;

/// <summary>Axis permutations of contiguous tensors.</summary>
public static class Permute
{
    /// <summary>
    /// y[a, q, p, r] = x[a, p, q, r]: swaps the two middle dimensions of x viewed as [A, P, Q, R]. Tensors cannot be
    /// reshaped, so the dimensions are given explicitly: x may have any shape with Length = a p q r, and y (when given)
    /// any shape of the same length; an allocated y has shape [a, q, p, r]. The copy is exact (bitwise).
    /// </summary>
    /// <remarks>
    /// The backward of SwapMiddle is SwapMiddle with p and q exchanged: dx = SwapMiddle(dy, a, q, p, r), which
    /// <see cref="SwapMiddleBackward"/> spells out. Applying it twice with the dimensions exchanged is the identity.
    /// </remarks>
    /// <exception cref="ArgumentException">A dimension is below 1, a p q r differs from x's length, y has another length or
    /// device or is x, or x holds NaN or infinity. Nothing is launched and y is untouched then.</exception>
    public static Tensor SwapMiddle(Tensor x, int a, int p, int q, int r, Tensor? y = null) =>
        Swap(x, a, p, q, r, y, nameof(x), nameof(y));

    /// <summary>
    /// The gradient of <see cref="SwapMiddle"/>: dx = SwapMiddle(dy, a, q, p, r, dx), for dy laid out as [A, Q, P, R]
    /// (the forward's y) and dx as [A, P, Q, R]; a, p, q, r are the FORWARD's dimensions, and an allocated dx has shape
    /// [a, p, q, r]. Overwrites dx.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="SwapMiddle"/>, naming dy and dx.</exception>
    public static Tensor SwapMiddleBackward(Tensor dy, int a, int p, int q, int r, Tensor? dx = null) =>
        Swap(dy, a, q, p, r, dx, nameof(dy), nameof(dx));

    private static Tensor Swap(Tensor x, int a, int p, int q, int r, Tensor? y, string xName, string yName)
    {
        TensorChecks.NotNull(x, xName);
        var device = x.Device;
        device.ThrowIfDisposed();
        CheckDims(x, a, p, q, r, xName);
        if (y is not null)
        {
            TensorChecks.NotNull(y, yName);
            TensorChecks.SameDevice(device, y, yName);
            if (y.Length != x.Length)
                throw new ArgumentException(
                    $"{yName} has shape {Tensor.Format(y.ShapeSpan)} ({y.Length:N0} elements); wanted {x.Length:N0} elements, " +
                    $"e.g. [{a}, {q}, {p}, {r}].", yName);
            TensorChecks.NotAliased(y, yName, x);
        }
        TensorChecks.Finite(x, xName);
        var result = y ?? device.Zeros(a, q, p, r);
        if (device.Backend == Backend.Managed)
        {
            PermuteManaged.SwapMiddle(x.HostSpan, result.HostSpan, a, p, q, r);
            return result;
        }
        if (r == 1)
        {
            int tilesP = (p + PermuteKernels.Tile - 1) / PermuteKernels.Tile, tilesQ = (q + PermuteKernels.Tile - 1) / PermuteKernels.Tile;
            var transpose = device.GetKernel("Permute.Transpose32", static acc =>
                acc.LoadStreamKernel<View, View, int, int, int, int>(PermuteKernels.Transpose32));
            transpose(new KernelConfig((int)Math.Min(int.MaxValue, (long)a * tilesP * tilesQ), PermuteKernels.GroupSize),
                x.View, result.View, p, q, tilesP, tilesQ);
            return result;
        }
        var gather = device.GetKernel("Permute.Gather", static acc =>
            acc.LoadAutoGroupedStreamKernel<Index1D, View, View, int, int, int>(PermuteKernels.Gather));
        gather(x.Length, x.View, result.View, p, q, r);
        return result;
    }

    private static void CheckDims(Tensor x, int a, int p, int q, int r, string xName)
    {
        if (a < 1 || p < 1 || q < 1 || r < 1)
            throw new ArgumentException($"Dimensions [a, p, q, r] = [{a}, {p}, {q}, {r}] must all be at least 1.", a < 1 ? nameof(a) : p < 1 ? nameof(p) : q < 1 ? nameof(q) : nameof(r));
        var n = (long)a * p * q * r;
        if (n != x.Length)
            throw new ArgumentException(
                $"{xName} has shape {Tensor.Format(x.ShapeSpan)} ({x.Length:N0} elements) but its dimensions " +
                $"[{a}, {p}, {q}, {r}] describe {n:N0}.", xName);
    }
}
