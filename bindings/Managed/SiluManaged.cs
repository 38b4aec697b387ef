// SiLU on the Managed backend: a functor for ElementwiseManaged.cs (Vector<float>, any width, Vector.Exp).
//
// Versions:
//   1  (2026-12-02) the kernel's formulation (kernels/Training/SiluKernels.cs): e = exp(-|x|) in [0, 1],
//      sigmoid = select(x >= 0, 1, e) / (1 + e), sigmoid (1 - sigmoid) = e / (1 + e)^2: no overflow, no cancellation.
//      Timing 2026-12-02 (Stopwatch loop run by hand, best of 20, Vector<float>.Count 8, 2-core EPYC shared, load1 74-82, so noisy): 
//      n = 1024 x 3072: forward 3.5 ms, backward 5.7 ms.
using System.Numerics;

namespace RouteKit;

/// <summary>SiLU lane by lane.</summary>
internal readonly struct SiluOp : IElementwiseOp
{
    public static Vector<float> Value(Vector<float> x) => x * Sigmoid(x, out _, out _);

    public static Vector<float> Derivative(Vector<float> x)
    {
        var s = Sigmoid(x, out var e, out var r);
        return s + x * (e * r * r);
    }

    // sigmoid(x) from e = exp(-|x|) and r = 1 / (1 + e).
    private static Vector<float> Sigmoid(Vector<float> x, out Vector<float> e, out Vector<float> r)
    {
        e = Vector.Exp(-Vector.Abs(x));
        r = Vector<float>.One / (Vector<float>.One + e);
        return Vector.ConditionalSelect(Vector.GreaterThanOrEqual(x, Vector<float>.Zero), r, e * r);
    }
}

internal static class SiluManaged
{
    public static void Forward(ReadOnlySpan<float> x, Span<float> y) => ElementwiseManaged.Forward<SiluOp>(x, y);

    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx) => ElementwiseManaged.Backward<SiluOp>(dy, x, dx);
}
