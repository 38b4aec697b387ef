// Attention register tiles: the pieces shared by the register-tiled kernels (forward version 2, backward version 2),
// which split a block of rows by pairs of rows instead of by one T-lane segment per row.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; Dp = 8 T padded dims.
//
// Layout of a register-tiled group of Group.DimX threads (a multiple of T, the lanes of AttentionCommon.cs): thread t owns
// the row pair t / T (rows 2 (t / T) and 2 (t / T) + 1 of the group's block of R = 2 Group.DimX / T rows) and, within it,
// the dims d = lane + c T, c = 0..7 (lane = t mod T), so its output tile is two LaneVectors (2 rows x 8 dims). Scores
// are formed a 2 x 4 tile at a time (DotTile: 8 scalar accumulators, one pass over d reading 2 + 4 shared rows) and go
// through a [R, tile] shared buffer to the threads that own the rows' output dims. Shared row tiles are 8T + 1 floats
// per row (one float of padding): the rows a warp's DotTiles read at the same d then fall in different banks, where
// 8T (a multiple of 32 from T = 4) would put them all in one.
//
// Every dot product of these kernels is DotTile's: a sum over d = 0..D-1 in ascending order of a[d] b[d], so the forward
// and the backward of version 2 form bit for bit the same z_ij (q_i . k'_j and k'_j . q_i are the same products summed
// in the same order), which keeps z_ij - m_i exact near the row max (see AttentionBackward.cs, 2026-12-02).
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Attention;

/// <summary>Device helpers of the register-tiled attention kernels (versions 2).</summary>
public static class AttentionTiles
{
    /// <summary>Rows of the output register tile of one thread (two LaneVectors).</summary>
    public const int RowsPerThread = 2;

    /// <summary>Columns (keys, or queries in dK/dV) of one DotTile.</summary>
    public const int ColumnsPerTile = 4;

    /// <summary>
    /// Cooperative, zero-padded copy of <paramref name="count"/> rows from <paramref name="firstRow"/> of a [*, D] array
    /// into a [rows, stride] shared tile (stride = <paramref name="paddedDim"/>, at least D); rows count..rows-1 and
    /// dims D..stride-1 become zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FillRows(ArrayView1D<float, Stride1D.Dense> a, int firstRow, int count, int rows, int headDim,
        int paddedDim, ArrayView<float> tile)
    {
        for (var e = Group.IdxX; e < rows * paddedDim; e += Group.DimX)
        {
            var row = e / paddedDim;
            var d = e - row * paddedDim;
            tile[e] = row < count && d < headDim ? a[(firstRow + row) * headDim + d] : 0f;
        }
    }

    /// <summary>
    /// The masked score z_ij = s dot - m_h |i + (M - N) - j| (+ bias_j for Distance), or -inf when query i does not see
    /// key j (padding row i &gt;= N, outside the causal/window band, or j past <paramref name="keyLast"/>, the batch
    /// element's last real key). Same operation order as version 1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float MaskedScore<TScore>(AttentionKernelParams p, float dot, int i, int j, int keyLast, float slope,
        ArrayView1D<float, Stride1D.Dense> keyBias, int kvRow0)
        where TScore : struct, IScoreKind
    {
        AttentionBand.KeysOf(p, i, i, out var lo, out var hi);
        if (i >= p.N || j < lo || j > hi || j > keyLast) return float.NegativeInfinity;
        var distance = i + p.Offset - j;
        var z = p.Scale * dot - slope * (distance < 0 ? -distance : distance);
        if (default(TScore).HasKeyBias) z += keyBias[kvRow0 + j];
        return z;
    }

    /// <summary>The last real key of batch element <paramref name="b"/>: KeyLengths[b] - 1 with a padding mask, else M - 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int LastKey(AttentionKernelParams p, ArrayView1D<float, Stride1D.Dense> keyLengths, int b) =>
        p.KeyPadding != 0 ? IntrinsicMath.Min((int)keyLengths[b], p.M) - 1 : p.M - 1;
}

/// <summary>
/// A 2 x 4 tile of dot products as eight scalar fields (ILGPU 1.5.3 turns per-thread arrays into .local memory): rows
/// r0, r1 of one shared tile against rows c0..c3 of another, summed over d = 0..D-1 in ascending order.
/// </summary>
public struct DotTile
{
    /// <summary>Row 0 against columns 0..3.</summary>
    public float S00, S01, S02, S03;
    /// <summary>Row 1 against columns 0..3.</summary>
    public float S10, S11, S12, S13;

    /// <summary>
    /// The tile for rows starting at <paramref name="r0"/> and <paramref name="r1"/> of <paramref name="rows"/> and
    /// columns starting at c0..c3 of <paramref name="columns"/> (offsets in floats; padded dims are never read).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static DotTile Compute(ArrayView<float> rows, int r0, int r1, ArrayView<float> columns,
        int c0, int c1, int c2, int c3, int headDim)
    {
        var t = default(DotTile);
        for (var d = 0; d < headDim; d++)
        {
            var a0 = rows[r0 + d];
            var a1 = rows[r1 + d];
            var b0 = columns[c0 + d];
            var b1 = columns[c1 + d];
            var b2 = columns[c2 + d];
            var b3 = columns[c3 + d];
            t.S00 += a0 * b0; t.S01 += a0 * b1; t.S02 += a0 * b2; t.S03 += a0 * b3;
            t.S10 += a1 * b0; t.S11 += a1 * b1; t.S12 += a1 * b2; t.S13 += a1 * b3;
        }
        return t;
    }
}
