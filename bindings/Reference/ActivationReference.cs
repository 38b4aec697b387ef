// GELU (both forms), SiLU, ReLU and NegExp, the executable spec (DESIGN.md section 9): textbook formulas, elementwise, generic
// so the same code gives the float64 reference and the naive float32 result of the 2x rule. Shapes: n elements.
// The erf form takes erf from MathNet.Numerics in float64 (.NET has no erf), rounded to T.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive activations and their derivatives; Backward returns dy f'(x).</summary>
public static class ActivationReference
{
    /// <summary>gelu(x): tanh form 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))), erf form 0.5 x (1 + erf(x / sqrt 2)).</summary>
    public static T[] GeluForward<T>(T[] x, GeluForm form) where T : IFloatingPointIeee754<T> =>
        Array.ConvertAll(x, v => form == GeluForm.Tanh
            ? Half<T>() * v * (T.One + T.Tanh(GeluScale<T>() * (v + Cubic<T>() * v * v * v)))
            : Half<T>() * v * (T.One + Erf(v / T.Sqrt(T.CreateChecked(2)))));

    /// <summary>
    /// dy gelu'(x): tanh form as llm.c, 0.5 (1 + t) + 0.5 x sech^2(u) sqrt(2/pi)(1 + 3 0.044715 x^2), t = tanh(u);
    /// erf form 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi).
    /// </summary>
    public static T[] GeluBackward<T>(T[] dy, T[] x, GeluForm form) where T : IFloatingPointIeee754<T>
    {
        var dx = new T[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            var v = x[i];
            T local;
            if (form == GeluForm.Tanh)
            {
                var u = GeluScale<T>() * (v + Cubic<T>() * v * v * v);
                var t = T.Tanh(u);
                var cosh = T.Cosh(u);
                var sech2 = T.One / (cosh * cosh);
                local = Half<T>() * (T.One + t) + v * Half<T>() * sech2 * GeluScale<T>() * (T.One + T.CreateChecked(3) * Cubic<T>() * v * v);
            }
            else
            {
                var cdf = Half<T>() * (T.One + Erf(v / T.Sqrt(T.CreateChecked(2))));
                local = cdf + v * T.Exp(-Half<T>() * v * v) / T.Sqrt(T.CreateChecked(2) * T.Pi);
            }
            dx[i] = dy[i] * local;
        }
        return dx;
    }

    /// <summary>silu(x) = x / (1 + exp(-x)).</summary>
    public static T[] SiluForward<T>(T[] x) where T : IFloatingPointIeee754<T> =>
        Array.ConvertAll(x, v => v / (T.One + T.Exp(-v)));

    /// <summary>dy s (1 + x (1 - s)), s = 1 / (1 + exp(-x)).</summary>
    public static T[] SiluBackward<T>(T[] dy, T[] x) where T : IFloatingPointIeee754<T>
    {
        var dx = new T[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            var s = T.One / (T.One + T.Exp(-x[i]));
            dx[i] = dy[i] * s * (T.One + x[i] * (T.One - s));
        }
        return dx;
    }

    /// <summary>relu(x) = max(x, 0).</summary>
    public static T[] ReluForward<T>(T[] x) where T : IFloatingPointIeee754<T> =>
        Array.ConvertAll(x, v => v > T.Zero ? v : T.Zero);

    /// <summary>dy where x &gt; 0, else 0 (the subgradient 0 at x = 0).</summary>
    public static T[] ReluBackward<T>(T[] dy, T[] x) where T : IFloatingPointIeee754<T>
    {
        var dx = new T[x.Length];
        for (var i = 0; i < x.Length; i++) dx[i] = x[i] > T.Zero ? dy[i] : T.Zero;
        return dx;
    }

    /// <summary>-exp(x) (NegExp).</summary>
    public static T[] NegExpForward<T>(T[] x) where T : IFloatingPointIeee754<T> => Array.ConvertAll(x, v => -T.Exp(v));

    /// <summary>dy y for the forward's y = -exp(x) (NegExp's backward takes y).</summary>
    public static T[] NegExpBackward<T>(T[] dy, T[] y) where T : IFloatingPointIeee754<T>
    {
        var dx = new T[y.Length];
        for (var i = 0; i < y.Length; i++) dx[i] = dy[i] * y[i];
        return dx;
    }

    private static T Half<T>() where T : IFloatingPointIeee754<T> => T.One / T.CreateChecked(2);

    private static T GeluScale<T>() where T : IFloatingPointIeee754<T> => T.Sqrt(T.CreateChecked(2) / T.Pi);

    private static T Cubic<T>() where T : IFloatingPointIeee754<T> => T.CreateChecked(0.044715);

    private static T Erf<T>(T z) where T : IFloatingPointIeee754<T> =>
        T.CreateChecked(MathNet.Numerics.SpecialFunctions.Erf(double.CreateChecked(z)));
}
