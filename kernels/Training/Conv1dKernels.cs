// Causal depthwise Conv1d over time (DESIGN.md section 9, the Mamba block's conv, width K = 4 there).
// Shapes: B batch, T time, C channels, K kernel width; x, y, dy, dx [B, T, C] (channels contiguous, tokens-major);
// weight, dweight [C, K]; bias, dbias [C].
//   y[b, t, c]  = bias[c] + sum_{j=0}^{K-1} weight[c, j] x[b, t - (K-1) + j, c], x at negative times = 0
//                 (PyTorch's F.conv1d(groups = C, padding = K - 1) truncated to the first T outputs);
//   dx[b, t, c] = sum_{d=0}^{K-1, t+d < T} weight[c, K-1-d] dy[b, t + d, c];
//   dweight[c, j] = sum_{b, t >= K-1-j} dy[b, t, c] x[b, t - (K-1) + j, c];  dbias[c] = sum_{b, t} dy[b, t, c].
// Every sum runs in the order written above (j ascending from bias; d ascending; b then t ascending), the reference's order.
//
// Versions (listed by `routekit-perf list`; `routekit-perf conv1d --variant 1` times the Managed path, these kernels are
// validated by the tests until a GPU run times them):
//   1  (2026-12-02) forward and dx: one thread per output element, adjacent threads on adjacent channels (coalesced
//      loads of each time row), the K taps in a loop (K is a runtime value; ILGPU 1.5.3 does not unroll). dweight and
//      dbias: one thread per output element (c, j) plus one per c for dbias, each summing over b and t in order, no
//      atomics, deterministic, coalesced across channels; only (K + 1) C threads, so a split over time with a second
//      fixed-order reduction is the next version when B T >> C matters on a GPU.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the causal depthwise Conv1d, forward and backward.</summary>
public static class Conv1dKernels
{
    /// <summary>The versions a perf harness can list, numbered from 1 (forward, dx and the parameter gradients together).</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("Forward+BackwardInput+BackwardParameters", "one thread per output element, adjacent threads on adjacent channels, sums in the reference's order"),
    ];

    /// <summary>Forward: one thread per element of y; <paramref name="hasBias"/> 0 leaves the bias view unread.</summary>
    public static void Forward(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> x,      // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C, K]
        ArrayView1D<float, Stride1D.Dense> bias,   // [C] (any view when hasBias is 0)
        ArrayView1D<float, Stride1D.Dense> y,      // [B, T, C]
        int time, int channels, int width, int hasBias)
    {
        int n = i;
        var c = n % channels;
        var t = n / channels % time;
        var s = hasBias != 0 ? bias[c] : 0f;
        var first = width - 1 - t;                  // the first tap whose time is >= 0
        if (first < 0) first = 0;
        for (var j = first; j < width; j++)
            s += weight[(long)c * width + j] * x[(long)n + (long)(j - (width - 1)) * channels];
        y[n] = s;
    }

    /// <summary>Backward of the input: one thread per element of dx.</summary>
    public static void BackwardInput(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy,     // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> weight, // [C, K]
        ArrayView1D<float, Stride1D.Dense> dx,     // [B, T, C]
        int time, int channels, int width)
    {
        int n = i;
        var c = n % channels;
        var t = n / channels % time;
        var taps = time - t;                         // outputs t .. T-1 exist
        if (taps > width) taps = width;
        var s = 0f;
        for (var d = 0; d < taps; d++)
            s += weight[(long)c * width + (width - 1 - d)] * dy[(long)n + (long)d * channels];
        dx[n] = s;
    }

    /// <summary>
    /// Backward of the parameters: thread index = row C + c over rows 0..K-1 (dweight[c, row]) and, when launched with
    /// (K + 1) C threads, row K (dbias[c]); each sums over b and t in order, no atomics.
    /// </summary>
    public static void BackwardParameters(
        Index1D i,
        ArrayView1D<float, Stride1D.Dense> dy,      // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> x,       // [B, T, C]
        ArrayView1D<float, Stride1D.Dense> dweight, // [C, K]
        ArrayView1D<float, Stride1D.Dense> dbias,   // [C] (never written when launched with K C threads)
        int batch, int time, int channels, int width)
    {
        int n = i;
        var c = n % channels;
        var j = n / channels;
        var s = 0f;
        if (j == width)
        {
            for (var b = 0; b < batch; b++)
            for (var t = 0; t < time; t++)
                s += dy[((long)b * time + t) * channels + c];
            dbias[c] = s;
            return;
        }
        var shift = width - 1 - j;                   // x's time lags dy's by this much
        for (var b = 0; b < batch; b++)
        for (var t = shift; t < time; t++)
        {
            var row = (long)b * time + t;
            s += dy[row * channels + c] * x[(row - shift) * channels + c];
        }
        dweight[(long)c * width + j] = s;
    }
}
