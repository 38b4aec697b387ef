// Causal depthwise Conv1d, the executable spec (DESIGN.md section 9, the Mamba block's conv). Generic so the same code
// gives the float64 reference and the naive float32 result of the 2x rule; plain sequential loops, readable first, each
// sum in the order the kernels use (kernels/Training/Conv1dKernels.cs).
// Shapes: B batch, T time, C channels, K kernel width; x, y, dy, dx [B, T, C]; weight, dweight [C, K]; bias, dbias [C].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive causal depthwise Conv1d forward and backward.</summary>
public static class Conv1dReference
{
    /// <summary>
    /// y[b, t, c] = bias[c] + sum_j weight[c, j] x[b, t - (K-1) + j, c], x = 0 at negative times (PyTorch's
    /// F.conv1d(groups = C, padding = K - 1) cut to T outputs); <paramref name="bias"/> null: no bias.
    /// </summary>
    public static T[] Forward<T>(T[] x, T[] weight, T[]? bias, int batch, int time, int channels, int width)
        where T : IFloatingPointIeee754<T>
    {
        var y = new T[batch * time * channels];                              // [B, T, C]
        for (var b = 0; b < batch; b++)
        for (var t = 0; t < time; t++)
        for (var c = 0; c < channels; c++)
        {
            var s = bias is null ? T.Zero : bias[c];
            for (var j = 0; j < width; j++)
            {
                var source = t - (width - 1) + j;
                if (source >= 0) s += weight[c * width + j] * x[(b * time + source) * channels + c];
            }
            y[(b * time + t) * channels + c] = s;
        }
        return y;
    }

    /// <summary>
    /// dx[b, t, c] = sum_{d, t+d &lt; T} weight[c, K-1-d] dy[b, t+d, c]; dweight[c, j] = sum_{b, t} dy[b, t, c]
    /// x[b, t - (K-1) + j, c]; dbias[c] = sum_{b, t} dy[b, t, c].
    /// </summary>
    public static (T[] DX, T[] DWeight, T[] DBias) Backward<T>(T[] dy, T[] x, T[] weight, int batch, int time, int channels, int width)
        where T : IFloatingPointIeee754<T>
    {
        T[] dx = new T[batch * time * channels], dweight = new T[channels * width], dbias = new T[channels];
        for (var b = 0; b < batch; b++)
        for (var t = 0; t < time; t++)
        for (var c = 0; c < channels; c++)
        {
            var s = T.Zero;
            for (var d = 0; d < width && t + d < time; d++)
                s += weight[c * width + width - 1 - d] * dy[(b * time + t + d) * channels + c];
            dx[(b * time + t) * channels + c] = s;
        }
        for (var c = 0; c < channels; c++)
        {
            for (var j = 0; j < width; j++)
            {
                var s = T.Zero;
                for (var b = 0; b < batch; b++)
                for (var t = width - 1 - j; t < time; t++)
                    s += dy[(b * time + t) * channels + c] * x[(b * time + t - (width - 1) + j) * channels + c];
                dweight[c * width + j] = s;
            }
            var sb = T.Zero;
            for (var b = 0; b < batch; b++)
            for (var t = 0; t < time; t++)
                sb += dy[(b * time + t) * channels + c];
            dbias[c] = sb;
        }
        return (dx, dweight, dbias);
    }
}
