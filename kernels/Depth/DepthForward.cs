// DepthRouter forward: out = sum_{j <= l} softmax_j(z_j) v_j over the depth column of each (token, head), with the
// saved statistics (m, log l) and the fused diagnostics.
//
// Versions (listed by `routekit-perf list`; `routekit-perf depth --variant 1` times the Managed path, these kernels are
// validated by the tests and the GPU timing waits for a lent device):
//   1. DepthForward.ColumnKernel (2026-12-02): one T-lane segment per (token, head) column (see DepthCommon.cs), query
//      layers in turn, keys j = 0..l in turn with attention's per-key online softmax (rescale only when the max grows)
//      and q and the output accumulator in eight registers per lane. No shared memory: a column's k' and v rows are
//      read straight from global memory, coalesced across the segment's lanes, once per query layer (Lq = 1, the
//      training call, reads each once; Lq = L reads them L/2 times on average, through L1/L2). Specialised at compile
//      time on T (ILanes), Dot/Distance (IScoreKind), diagnostics (IDiagnosticsKind) and the reduction (ISegmentReduction).
//
// Shapes: Lq query layers, L key/value layers, T tokens, H heads, D head dim; C = T H columns; q, O [Lq, T, H, D],
// k', v [L, T, H, D], bias [L, T, H], stats [Lq, T, H, 2]. z_j = s q . k'_j + bias_j - m_h (l - j), l = i + (L - Lq).
//
// Why not attention's tiled kernel: with L <= 64 keys per (token, head) and T H of them independent, there is no key
// reuse across queries to tile for; the parallelism is over columns, and each column is a short sequential walk.
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Algorithms;
using RouteKit.Kernels.Attention;

namespace RouteKit.Kernels.Depth;

/// <summary>Device code of the depth-router forward.</summary>
public static class DepthForward
{
    /// <summary>The forward versions a perf harness can list and time, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("ColumnKernel", "T lanes per (token, head) column, the depth column walked with a per-key online softmax"),
    ];

    /// <summary>
    /// Version 1. Grid: ceil(C / R) groups of R = Group.DimX / T columns. Writes O, the statistics and, with
    /// <typeparamref name="TDiagnostics"/>, NormalizedEntropy, MaxProb and EmbeddingMass.
    /// </summary>
    public static void ColumnKernel<TLanes, TScore, TDiagnostics, TReduction>(
        ArrayView1D<float, Stride1D.Dense> q,          // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> scoredKeys, // [L, T, H, D] k'
        ArrayView1D<float, Stride1D.Dense> v,          // [L, T, H, D]
        ArrayView1D<float, Stride1D.Dense> keyBias,    // [L, T, H], read only for Distance
        ArrayView1D<float, Stride1D.Dense> slopes,     // [H] brakes m_h
        ArrayView1D<float, Stride1D.Dense> o,          // [Lq, T, H, D]
        ArrayView1D<float, Stride1D.Dense> stats,      // [Lq, T, H, 2] (m, log l)
        ArrayView1D<float, Stride1D.Dense> entropy,    // [Lq, T, H], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> maxProb,    // [Lq, T, H], written only with diagnostics
        ArrayView1D<float, Stride1D.Dense> embedding,  // [Lq, T, H], written only with diagnostics
        DepthKernelParams p)
        where TLanes : struct, ILanes
        where TScore : struct, IScoreKind
        where TDiagnostics : struct, IDiagnosticsKind
        where TReduction : struct, ISegmentReduction
    {
        var lanes = default(TLanes).Count;
        var hasBias = default(TScore).HasKeyBias;
        var diagnostics = default(TDiagnostics).Enabled;
        var col = DepthColumn.Locate(p, lanes);
        var slope = slopes[col.Valid ? col.Column % p.H : 0];

        for (var i = 0; i < p.Lq; i++)
        {
            var l = i + p.Offset;
            var qi = col.Load(q, p, i, lanes);
            var acc = default(LaneVector);       // sum exp(z - max) v
            var rowMax = float.NegativeInfinity; // running max of z
            var sum = 0f;                        // sum exp(z - max)
            var shiftedSum = 0f;                 // sum exp(z - max) (z - max), for the entropy
            var first = 0f;                      // exp(z_0 - max), for the embedding mass
            for (var j = 0; j <= l; j++)
            {
                var dot = default(TReduction).Sum<TLanes>(qi.Dot(col.Load(scoredKeys, p, j, lanes)));
                var z = p.Scale * dot - slope * (l - j);
                if (hasBias) z += keyBias[col.Row(p, j)];
                if (z > rowMax)
                {
                    var alpha = XMath.Exp(rowMax - z); // 0 on the first key
                    if (diagnostics)
                    {
                        shiftedSum = sum > 0f ? alpha * (shiftedSum + (rowMax - z) * sum) : 0f;
                        first *= alpha;
                    }
                    sum *= alpha;
                    acc.Scale(alpha);
                    rowMax = z;
                }
                var shifted = z - rowMax;
                var weight = XMath.Exp(shifted);
                sum += weight;
                acc.AddScaled(weight, col.Load(v, p, j, lanes));
                if (diagnostics)
                {
                    shiftedSum += weight * shifted;
                    if (j == 0) first = weight;
                }
            }

            if (!col.Valid) continue;
            var row = col.Row(p, i);
            var inv = 1f / sum;
            acc.Store(o, row * p.D, col.Lane, lanes, col.Dims, inv);
            if (col.Lane != 0) continue;
            var logSum = XMath.Log(sum);
            stats[2 * row] = rowMax;
            stats[2 * row + 1] = logSum;
            if (!diagnostics) continue;
            entropy[row] = l == 0 ? 0f : (logSum - shiftedSum * inv) / XMath.Log(l + 1f);
            maxProb[row] = inv;
            embedding[row] = first * inv;
        }
    }
}
