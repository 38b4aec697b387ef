// NegExp on the Managed backend: a functor for ElementwiseManaged.cs (Vector<float>, any width, Vector.Exp).
//
// Versions:
//   1  (2026-12-03) y = -exp(x); the backward is handed the forward's y (f' = f), so dx = dy y is one multiply.
//      Not timed: its one user is Mamba's A = -exp(A_log), [Dc, Nst] parameters, once per step.
using System.Numerics;

namespace RouteKit;

/// <summary>-exp lane by lane; <see cref="Derivative"/> takes the forward's y, not x.</summary>
internal readonly struct NegExpOp : IElementwiseOp
{
    public static Vector<float> Value(Vector<float> x) => -Vector.Exp(x);

    /// <summary>d(-exp x)/dx = -exp x = y: the argument is y.</summary>
    public static Vector<float> Derivative(Vector<float> y) => y;
}

internal static class NegExpManaged
{
    public static void Forward(ReadOnlySpan<float> x, Span<float> y) => ElementwiseManaged.Forward<NegExpOp>(x, y);

    public static void Backward(ReadOnlySpan<float> dy, ReadOnlySpan<float> y, Span<float> dx) => ElementwiseManaged.Backward<NegExpOp>(dy, y, dx);
}
