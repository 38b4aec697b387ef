// LayerNorm, the executable spec (DESIGN.md section 9, llm.c's layernorm_forward/backward). Generic so the same code
// gives the float64 reference and the naive float32 result of the 2x rule; plain sequential loops, readable first.
// Shapes: T rows, C channels; x, y, dy, dx [T, C]; weight, bias, dweight, dbias [C]; mean, rstd [T].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive LayerNorm forward and backward.</summary>
public static class LayerNormReference
{
    /// <summary>y = (x - mean) rstd weight + bias, rstd = 1 / sqrt(var + eps), var = mean((x - mean)^2); returns y, mean, rstd.</summary>
    public static (T[] Y, T[] Mean, T[] Rstd) Forward<T>(T[] x, T[] weight, T[] bias, int rows, int channels, T eps)
        where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(channels);
        T[] y = new T[rows * channels], mean = new T[rows], rstd = new T[rows];
        for (var r = 0; r < rows; r++)
        {
            var m = T.Zero;
            for (var c = 0; c < channels; c++) m += x[r * channels + c];
            m /= n;
            var v = T.Zero;
            for (var c = 0; c < channels; c++)
            {
                var d = x[r * channels + c] - m;
                v += d * d;
            }
            v /= n;
            var s = T.One / T.Sqrt(v + eps);
            for (var c = 0; c < channels; c++)
                y[r * channels + c] = (x[r * channels + c] - m) * s * weight[c] + bias[c];
            (mean[r], rstd[r]) = (m, s);
        }
        return (y, mean, rstd);
    }

    /// <summary>
    /// dx = rstd (dnorm - mean(dnorm) - norm mean(dnorm norm)), dnorm = weight dy, norm = (x - mean) rstd;
    /// dweight = sum_t dy norm; dbias = sum_t dy.
    /// </summary>
    public static (T[] DX, T[] DWeight, T[] DBias) Backward<T>(T[] dy, T[] x, T[] weight, T[] mean, T[] rstd, int rows, int channels)
        where T : IFloatingPointIeee754<T>
    {
        var n = T.CreateChecked(channels);
        T[] dx = new T[rows * channels], dweight = new T[channels], dbias = new T[channels];
        for (var r = 0; r < rows; r++)
        {
            T dnormMean = T.Zero, dnormNormMean = T.Zero;
            for (var c = 0; c < channels; c++)
            {
                var i = r * channels + c;
                var norm = (x[i] - mean[r]) * rstd[r];
                var dnorm = weight[c] * dy[i];
                dnormMean += dnorm;
                dnormNormMean += dnorm * norm;
            }
            dnormMean /= n;
            dnormNormMean /= n;
            for (var c = 0; c < channels; c++)
            {
                var i = r * channels + c;
                var norm = (x[i] - mean[r]) * rstd[r];
                var dnorm = weight[c] * dy[i];
                dbias[c] += dy[i];
                dweight[c] += norm * dy[i];
                dx[i] = (dnorm - dnormMean - norm * dnormNormMean) * rstd[r];
            }
        }
        return (dx, dweight, dbias);
    }
}
