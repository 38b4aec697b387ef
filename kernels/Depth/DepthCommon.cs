// DepthRouter, shared device pieces: the plain params struct every depth kernel takes and where a thread sits.
//
// Shapes: Lq query layers, L key/value layers (<= 64), T tokens, H heads, D head dim; C = T H (token, head) columns.
// Tensors are [layer, T, H, D], so row (layer j, column c) starts at (j C + c) D.
//
// Layout: one (token, head) column per T-lane segment (attention's lane layout, kernels/Attention/AttentionCommon.cs:
// lane l owns dimensions l + 8c, zero-padded), Group.DimX / T columns per group. The segment walks its whole depth
// column; every loop bound depends only on the layer indices, never on the column, so all lanes of a warp run the same
// iterations and the segment reductions (warp shuffles or shared memory) are always reached together.
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Attention;

namespace RouteKit.Kernels.Depth;

/// <summary>The scalars of one depth-router launch, built once by the launcher from the validated problem.</summary>
public struct DepthKernelParams
{
    /// <summary>Query layers.</summary>
    public int Lq;
    /// <summary>Key/value layers.</summary>
    public int L;
    /// <summary>L - Lq: query layer i sits at depth i + Offset.</summary>
    public int Offset;
    /// <summary>(token, head) columns, T H.</summary>
    public int Columns;
    /// <summary>Heads (column c has head c % H).</summary>
    public int H;
    /// <summary>Head dimension.</summary>
    public int D;
    /// <summary>1 when keys are normalised.</summary>
    public int NormalizeKeys;
    /// <summary>Score scale s.</summary>
    public float Scale;
    /// <summary>rho.</summary>
    public float KeyRadius;
    /// <summary>eps of max(|k|, eps).</summary>
    public float KeyEpsilon;
}

/// <summary>Where one thread sits: its lane and its (token, head) column.</summary>
public struct DepthColumn
{
    /// <summary>This thread's lane within its column's T-lane segment.</summary>
    public int Lane;
    /// <summary>The column c = t H + h.</summary>
    public int Column;
    /// <summary>False for the padding columns of the last group (they still join the reductions).</summary>
    public bool Valid;
    /// <summary>D for a valid column, 0 for padding (its loads give zeros).</summary>
    public int Dims;

    /// <summary>Locates the calling thread.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static DepthColumn Locate(DepthKernelParams p, int lanes)
    {
        var c = Grid.IdxX * (Group.DimX / lanes) + Group.IdxX / lanes;
        var valid = c < p.Columns;
        return new DepthColumn { Lane = Group.IdxX & (lanes - 1), Column = c, Valid = valid, Dims = valid ? p.D : 0 };
    }

    /// <summary>Row index (layer, this column) of a [layer, T, H] array; row 0 for padding columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly int Row(DepthKernelParams p, int layer) => Valid ? layer * p.Columns + Column : 0;

    /// <summary>This lane's part of row (layer, this column) of a [layer, T, H, D] array (zeros for padding).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly LaneVector Load(ArrayView1D<float, Stride1D.Dense> data, DepthKernelParams p, int layer, int lanes) =>
        LaneVector.Load(data, Row(p, layer) * p.D, Lane, lanes, Dims);
}
