// GELU, elementwise over any shape (n elements): y = x Phi(x), Phi the standard normal CDF, in two forms.
//   Tanh (GPT-2): Phi(x) ~ (1 + tanh(u)) / 2 = sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
//   Erf (BERT):   Phi(x) = erfc(-x / sqrt 2) / 2.
// Backward: dx = dy dy/dx; tanh form: sigmoid(2u) + x 2 sigmoid(2u) (1 - sigmoid(2u)) u'(x), u' = sqrt(2/pi)(1 + 3 0.044715 x^2);
// erf form: Phi(x) + x phi(x), phi the normal density.
//
// Versions:
//   1  (2026-12-02) one thread per element, the form a struct functor (IGeluForm) specialised at compile time. Both
//      forms avoid cancellation and overflow for every finite x: sigmoid(2u) is built from e = exp(-2|u|) in [0, 1]
//      (1 / (1 + e) or e / (1 + e), never 1 + tanh near -1), and the derivative's second term is dropped where e or
//      the density is 0 (there |x| > 6, and x^2 or x^3 may be infinite: 0 inf would be NaN). erfc is Numerical
//      Recipes' erfcc (Chebyshev fit, relative error < 1.2e-7 everywhere, so Phi keeps its digits in the far tail).
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;

namespace RouteKit.Kernels.Training;

/// <summary>One GELU form: the value and the derivative at x, both finite for every finite x.</summary>
public interface IGeluForm
{
    /// <summary>gelu(x).</summary>
    float Value(float x);

    /// <summary>d gelu / dx at x.</summary>
    float Derivative(float x);
}

/// <summary>GPT-2's tanh approximation.</summary>
public readonly struct GeluTanh : IGeluForm
{
    /// <summary>sqrt(2 / pi).</summary>
    public const float Scale = 0.7978845608028654f;

    /// <summary>The cubic coefficient.</summary>
    public const float Cubic = 0.044715f;

    /// <inheritdoc />
    public float Value(float x)
    {
        var u = Scale * x * (1f + Cubic * x * x);
        var e = XMath.Exp(-2f * IntrinsicMath.Abs(u));
        return x * ((u >= 0f ? 1f : e) / (1f + e));
    }

    /// <inheritdoc />
    public float Derivative(float x)
    {
        var u = Scale * x * (1f + Cubic * x * x);
        var e = XMath.Exp(-2f * IntrinsicMath.Abs(u));
        var r = 1f / (1f + e);
        var sigmoid = u >= 0f ? r : e * r;
        return e > 0f ? sigmoid + x * (2f * e * r * r) * (Scale * (1f + 3f * Cubic * x * x)) : sigmoid;
    }
}

/// <summary>The exact form with the normal CDF (BERT).</summary>
public readonly struct GeluErf : IGeluForm
{
    /// <summary>1 / sqrt(2).</summary>
    public const float InverseSqrt2 = 0.7071067811865476f;

    /// <summary>1 / sqrt(2 pi).</summary>
    public const float InverseSqrt2Pi = 0.3989422804014327f;

    /// <summary>erfc(z), Numerical Recipes' erfcc: relative error below 1.2e-7 for every z.</summary>
    public static float Erfc(float z)
    {
        var a = IntrinsicMath.Abs(z);
        var t = 1f / (1f + 0.5f * a);
        var p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f
            + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
        var ans = t * XMath.Exp(-a * a + p);
        return z >= 0f ? ans : 2f - ans;
    }

    /// <inheritdoc />
    public float Value(float x) => x * (0.5f * Erfc(-x * InverseSqrt2));

    /// <inheritdoc />
    public float Derivative(float x)
    {
        var density = XMath.Exp(-0.5f * x * x) * InverseSqrt2Pi;
        var cdf = 0.5f * Erfc(-x * InverseSqrt2);
        return density > 0f ? cdf + x * density : cdf;
    }
}

/// <summary>Device code of GELU.</summary>
public static class GeluKernels
{
    /// <summary>Forward: one thread per element, <c>y = gelu(x)</c>.</summary>
    public static void Forward<TForm>(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x, // [n]
        ArrayView1D<float, Stride1D.Dense> y) // [n]
        where TForm : struct, IGeluForm =>
        y[i] = default(TForm).Value(x[i]);

    /// <summary>Backward: one thread per element, <c>dx = dy gelu'(x)</c>.</summary>
    public static void Backward<TForm>(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy, // [n]
        ArrayView1D<float, Stride1D.Dense> x,  // [n]
        ArrayView1D<float, Stride1D.Dense> dx) // [n]
        where TForm : struct, IGeluForm =>
        dx[i] = dy[i] * default(TForm).Derivative(x[i]);
}
