// ReLU on the Managed backend: a functor for ElementwiseManaged.cs (Vector<float>, any width).
//
// Versions:
//   1  (2026-12-02) select(x > 0, x, 0) and select(x > 0, 1, 0); the select keeps -0 out of y and gives the
//      subgradient 0 at x = 0.
//      Timing 2026-12-02 (Stopwatch loop run by hand, best of 20, Vector<float>.Count 8, 2-core EPYC shared, load1 74-82, so noisy): 
//      n = 1024 x 3072: forward 0.8 ms, backward 1.5 ms.
using System.Numerics;

namespace RouteKit;

/// <summary>ReLU lane by lane.</summary>
internal readonly struct ReluOp : IElementwiseOp
{
    public static Vector<float> Value(Vector<float> x) =>
        Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), x, Vector<float>.Zero);

    public static Vector<float> Derivative(Vector<float> x) =>
        Vector.ConditionalSelect(Vector.GreaterThan(x, Vector<float>.Zero), Vector<float>.One, Vector<float>.Zero);
}

internal static class ReluManaged
{
    public static void Forward(ReadOnlySpan<float> x, Span<float> y) => ElementwiseManaged.Forward<ReluOp>(x, y);

    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx) => ElementwiseManaged.Backward<ReluOp>(dy, x, dx);
}
