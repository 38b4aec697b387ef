// RMSNorm, the executable spec (DESIGN.md section 9). Generic so the same code gives the float64 reference and the naive
// float32 result of the 2x rule. Shapes: T rows, C channels; x, y, dy, dx [T, C]; weight, dweight [C]; rstd [T].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive RMSNorm forward and backward.</summary>
public static class RmsNormReference
{
    /// <summary>y = x rstd weight, rstd = 1 / sqrt(mean(x^2) + eps); returns y and rstd.</summary>
    public static (T[] Y, T[] Rstd) Forward<T>(T[] x, T[] weight, int rows, int channels, T eps) where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(channels);
        T[] y = new T[rows * channels], rstd = new T[rows];
        for (var r = 0; r < rows; r++)
        {
            var squares = T.Zero;
            for (var c = 0; c < channels; c++) squares += x[r * channels + c] * x[r * channels + c];
            var s = T.One / T.Sqrt(squares / n + eps);
            for (var c = 0; c < channels; c++) y[r * channels + c] = x[r * channels + c] * s * weight[c];
            rstd[r] = s;
        }
        return (y, rstd);
    }

    /// <summary>dx = rstd (dnorm - norm mean(dnorm norm)), dnorm = weight dy, norm = x rstd; dweight = sum_t dy norm.</summary>
    public static (T[] DX, T[] DWeight) Backward<T>(T[] dy, T[] x, T[] weight, T[] rstd, int rows, int channels)
        where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(channels);
        T[] dx = new T[rows * channels], dweight = new T[channels];
        for (var r = 0; r < rows; r++)
        {
            var dnormNormMean = T.Zero;
            for (var c = 0; c < channels; c++)
            {
                var i = r * channels + c;
                dnormNormMean += weight[c] * dy[i] * (x[i] * rstd[r]);
            }
            dnormNormMean /= n;
            for (var c = 0; c < channels; c++)
            {
                var i = r * channels + c;
                var norm = x[i] * rstd[r];
                dweight[c] += norm * dy[i];
                dx[i] = (weight[c] * dy[i] - norm * dnormNormMean) * rstd[r];
            }
        }
        return (dx, dweight);
    }
}
