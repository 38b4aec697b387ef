// Attention, shared device pieces: the compile-time variant functors, the plain params struct every attention kernel
// takes (FlashAttention's flash.h), and the lane-segment reduction.
//
// Shapes: B batch, H query heads, Hkv key/value heads, N queries, M keys, D head dim; g = H / Hkv.
//
// Layout shared by every attention kernel: one row (a query row, or a key row in the dK/dV kernel) is served by
// T = Lanes.Count consecutive threads of a warp, T a power of two. Lane l of a row owns the eight dimensions
// d = l + c T, c = 0..7, so a row covers Dp = 8 T padded dimensions; dimensions at or beyond D are held as zeros.
// The strided ownership makes the T lanes of a row read consecutive addresses, in global memory (coalesced) and in
// shared memory (no bank conflicts); the zero padding makes the hot loops guard-free for every D (D = 59 runs the
// same loop as D = 64): only the global-memory side (row loads, tile fills, stores) checks d < D. That is why there is
// no separate "D is an exact multiple of 8T" specialisation: the padded path costs the exact one nothing in the
// per-key loop, only idle lanes (D = 72 runs with T = 16, 128 padded dims) and a d < D test per global access.
using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Attention;

/// <summary>Lanes per row, a compile-time power of two (1..32); each lane owns 8 of the row's dimensions.</summary>
public interface ILanes
{
    /// <summary>Threads that serve one row.</summary>
    int Count { get; }
}

/// <summary>One lane per row: D &lt;= 8.</summary>
public struct Lanes1 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 1;
}

/// <summary>Two lanes per row: D &lt;= 16.</summary>
public struct Lanes2 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 2;
}

/// <summary>Four lanes per row: D &lt;= 32.</summary>
public struct Lanes4 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 4;
}

/// <summary>Eight lanes per row: D &lt;= 64.</summary>
public struct Lanes8 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 8;
}

/// <summary>Sixteen lanes per row: D &lt;= 128.</summary>
public struct Lanes16 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 16;
}

/// <summary>A full warp per row: D &lt;= 256.</summary>
public struct Lanes32 : ILanes
{
    /// <inheritdoc />
    public readonly int Count => 32;
}

/// <summary>The score variant: whether the per-key bias <c>-(s/2)|k'_j|^2</c> enters the score.</summary>
public interface IScoreKind
{
    /// <summary>True for Distance (adds the key bias, and its gradient in the backward).</summary>
    bool HasKeyBias { get; }
}

/// <summary><c>z = s q . k'</c>.</summary>
public struct DotScore : IScoreKind
{
    /// <inheritdoc />
    public readonly bool HasKeyBias => false;
}

/// <summary><c>z = s q . k' - (s/2)|k'|^2</c>.</summary>
public struct DistanceScore : IScoreKind
{
    /// <inheritdoc />
    public readonly bool HasKeyBias => true;
}

/// <summary>Whether the forward also accumulates Entropy, SinkMass and MaxProb.</summary>
public interface IDiagnosticsKind
{
    /// <summary>True when the diagnostics are computed.</summary>
    bool Enabled { get; }
}

/// <summary>Forward without diagnostics.</summary>
public struct NoDiagnostics : IDiagnosticsKind
{
    /// <inheritdoc />
    public readonly bool Enabled => false;
}

/// <summary>Forward with the fused diagnostics.</summary>
public struct WithDiagnostics : IDiagnosticsKind
{
    /// <inheritdoc />
    public readonly bool Enabled => true;
}

/// <summary>
/// How the T lanes of a row sum their partial dot products. Every lane of the group must call
/// <see cref="Sum{TLanes}"/> the same number of times (it may synchronise the warp or the whole group).
/// </summary>
public interface ISegmentReduction
{
    /// <summary>The sum of <paramref name="x"/> over this thread's T-lane row segment, the same on every lane of it.</summary>
    float Sum<TLanes>(float x) where TLanes : struct, ILanes;
}

/// <summary>Warp shuffles (Cuda, the CPU simulator): log2(T) butterfly steps, no shared memory, no barrier.</summary>
public struct WarpShuffleReduction : ISegmentReduction
{
    /// <inheritdoc />
    public readonly float Sum<TLanes>(float x) where TLanes : struct, ILanes => AttentionLanes.SegmentSum<TLanes>(x);
}

/// <summary>
/// Through shared memory between two group barriers, for OpenCL: ILGPU 1.5.3 emits sub-group shuffles only for Intel,
/// and cannot pin the sub-group size the device compiler picks to the warp size it reports, so a shuffle there could
/// cross a row segment. Slower (two barriers per sum) but correct for any sub-group size. Groups of at most
/// <see cref="MaxGroupThreads"/> threads.
/// </summary>
public struct GroupSharedReduction : ISegmentReduction
{
    /// <summary>Largest group this reduction supports (its shared scratch has one float per thread).</summary>
    public const int MaxGroupThreads = 256;

    /// <inheritdoc />
    public readonly float Sum<TLanes>(float x) where TLanes : struct, ILanes
    {
        var lanes = default(TLanes).Count;
        if (lanes == 1) return x;
        var scratch = SharedMemory.Allocate<float>(MaxGroupThreads);
        var tid = Group.IdxX;
        scratch[tid] = x;
        Group.Barrier();
        // Every lane sums its segment in the same order, so all T lanes agree bit for bit.
        var first = tid & ~(lanes - 1);
        var sum = 0f;
        for (var c = 0; c < lanes; c++) sum += scratch[first + c];
        Group.Barrier(); // the scratch may be overwritten by the next sum
        return sum;
    }
}

/// <summary>
/// The scalars of one attention launch (FlashAttention's flash.h params): sizes, scales, masks and tiling. Built once
/// by the launcher from the validated problem; kernels read nothing else.
/// </summary>
public struct AttentionKernelParams
{
    /// <summary>Batch.</summary>
    public int B;
    /// <summary>Query heads.</summary>
    public int H;
    /// <summary>Key/value heads.</summary>
    public int Hkv;
    /// <summary>Queries per head.</summary>
    public int N;
    /// <summary>Keys per head.</summary>
    public int M;
    /// <summary>Head dimension.</summary>
    public int D;
    /// <summary>Query heads per key/value head, H / Hkv.</summary>
    public int Group;
    /// <summary>M - N: query i sits at key position i + Offset.</summary>
    public int Offset;
    /// <summary>1 when the causal mask is on.</summary>
    public int Causal;
    /// <summary>Window W, or -1 for none.</summary>
    public int Window;
    /// <summary>Keys j &lt; SinkTokens count towards SinkMass.</summary>
    public int SinkTokens;
    /// <summary>1 when keys are normalised to <see cref="KeyRadius"/>.</summary>
    public int NormalizeKeys;
    /// <summary>1 when a key padding mask is set: batch element b has keyLengths[b] real keys (the rest masked).</summary>
    public int KeyPadding;
    /// <summary>Rows per group tile in the row-parallel kernels: ceil(rows / RowsPerGroup) groups per (batch, head).</summary>
    public int RowTiles;
    /// <summary>Rows streamed through shared memory per step (keys in the forward and dQ, queries in dK/dV).</summary>
    public int StreamTile;
    /// <summary>Score scale s.</summary>
    public float Scale;
    /// <summary>rho.</summary>
    public float KeyRadius;
    /// <summary>eps of max(|k|, eps).</summary>
    public float KeyEpsilon;
}

/// <summary>Device helpers shared by the attention kernels.</summary>
public static class AttentionLanes
{
    /// <summary>
    /// Sums <paramref name="x"/> over the T lanes of this thread's row segment (a butterfly of warp shuffles); every
    /// lane of the segment gets the total. Every lane of the warp must call it (shuffles are warp-wide).
    /// </summary>
    public static float SegmentSum<TLanes>(float x) where TLanes : struct, ILanes
    {
        var lanes = default(TLanes).Count;
        // Hand-unrolled: the branches fold away once Count is a constant, leaving log2(T) shuffles.
        if (lanes > 16) x += Warp.ShuffleXor(x, 16);
        if (lanes > 8) x += Warp.ShuffleXor(x, 8);
        if (lanes > 4) x += Warp.ShuffleXor(x, 4);
        if (lanes > 2) x += Warp.ShuffleXor(x, 2);
        if (lanes > 1) x += Warp.ShuffleXor(x, 1);
        return x;
    }

    /// <summary><paramref name="data"/>[offset + d] when d &lt; D, else 0 (the padding of a row).</summary>
    public static float LoadPadded(ArrayView1D<float, Stride1D.Dense> data, int offset, int d, int headDim) =>
        d < headDim ? data[offset + d] : 0f;

    /// <summary>Writes <paramref name="value"/> to <paramref name="data"/>[offset + d] when d &lt; D.</summary>
    public static void StorePadded(ArrayView1D<float, Stride1D.Dense> data, int offset, int d, int headDim, float value)
    {
        if (d < headDim) data[offset + d] = value;
    }
}

/// <summary>
/// The eight dimensions d = lane + c T (c = 0..7) of one row that one lane holds, as eight scalar fields: ILGPU 1.5.3
/// does not unroll loops and turns per-thread arrays into .local memory, while a struct of scalars is split into
/// registers once its methods are inlined. Zero in the padding (d &gt;= D).
/// </summary>
public struct LaneVector
{
    /// <summary>Dimension lane + c T for c = 0..7.</summary>
    public float X0, X1, X2, X3, X4, X5, X6, X7;

    /// <summary>Row <paramref name="offset"/> of a [*, D] array, zero past <paramref name="dims"/> (0 for a padding row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LaneVector Load(ArrayView1D<float, Stride1D.Dense> data, int offset, int lane, int lanes, int dims) => new()
    {
        X0 = AttentionLanes.LoadPadded(data, offset, lane, dims),
        X1 = AttentionLanes.LoadPadded(data, offset, lane + lanes, dims),
        X2 = AttentionLanes.LoadPadded(data, offset, lane + 2 * lanes, dims),
        X3 = AttentionLanes.LoadPadded(data, offset, lane + 3 * lanes, dims),
        X4 = AttentionLanes.LoadPadded(data, offset, lane + 4 * lanes, dims),
        X5 = AttentionLanes.LoadPadded(data, offset, lane + 5 * lanes, dims),
        X6 = AttentionLanes.LoadPadded(data, offset, lane + 6 * lanes, dims),
        X7 = AttentionLanes.LoadPadded(data, offset, lane + 7 * lanes, dims),
    };

    /// <summary>This lane's part of the row that starts at <paramref name="t"/> - lane in a [rows, 8T] shared tile.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static LaneVector FromTile(ArrayView<float> tile, int t, int lanes) => new()
    {
        X0 = tile[t],
        X1 = tile[t + lanes],
        X2 = tile[t + 2 * lanes],
        X3 = tile[t + 3 * lanes],
        X4 = tile[t + 4 * lanes],
        X5 = tile[t + 5 * lanes],
        X6 = tile[t + 6 * lanes],
        X7 = tile[t + 7 * lanes],
    };

    /// <summary>The lane-partial dot product; sum it over the row's lanes with an <see cref="ISegmentReduction"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly float Dot(LaneVector o) =>
        X0 * o.X0 + X1 * o.X1 + X2 * o.X2 + X3 * o.X3 + X4 * o.X4 + X5 * o.X5 + X6 * o.X6 + X7 * o.X7;

    /// <summary>this *= a.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Scale(float a)
    {
        X0 *= a; X1 *= a; X2 *= a; X3 *= a; X4 *= a; X5 *= a; X6 *= a; X7 *= a;
    }

    /// <summary>this /= d, divided rather than multiplied by 1/d (exact where the maths needs it: u = k / |k|).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void DivideBy(float d)
    {
        X0 /= d; X1 /= d; X2 /= d; X3 /= d; X4 /= d; X5 /= d; X6 /= d; X7 /= d;
    }

    /// <summary>this += w x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void AddScaled(float w, LaneVector x)
    {
        X0 += w * x.X0; X1 += w * x.X1; X2 += w * x.X2; X3 += w * x.X3;
        X4 += w * x.X4; X5 += w * x.X5; X6 += w * x.X6; X7 += w * x.X7;
    }

    /// <summary>Writes <paramref name="scale"/> times this to row <paramref name="offset"/> of a [*, D] array (d &lt; D only).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public readonly void Store(ArrayView1D<float, Stride1D.Dense> data, int offset, int lane, int lanes, int dims, float scale)
    {
        AttentionLanes.StorePadded(data, offset, lane, dims, scale * X0);
        AttentionLanes.StorePadded(data, offset, lane + lanes, dims, scale * X1);
        AttentionLanes.StorePadded(data, offset, lane + 2 * lanes, dims, scale * X2);
        AttentionLanes.StorePadded(data, offset, lane + 3 * lanes, dims, scale * X3);
        AttentionLanes.StorePadded(data, offset, lane + 4 * lanes, dims, scale * X4);
        AttentionLanes.StorePadded(data, offset, lane + 5 * lanes, dims, scale * X5);
        AttentionLanes.StorePadded(data, offset, lane + 6 * lanes, dims, scale * X6);
        AttentionLanes.StorePadded(data, offset, lane + 7 * lanes, dims, scale * X7);
    }
}

/// <summary>
/// Where one thread sits in a query-row kernel (the forward, the dQ kernel): grid index = (b H + h) RowTiles + tile,
/// R = Group.DimX / T query rows per group, T lanes per row. Also the row's and the group's key bands, so tiles
/// outside the group's band are skipped and keys outside the row's band are masked.
/// </summary>
public struct QueryRowTile
{
    /// <summary>This thread's lane within its row's T-lane segment.</summary>
    public int Lane;
    /// <summary>b H + h.</summary>
    public int BatchHead;
    /// <summary>Query head h.</summary>
    public int Head;
    /// <summary>First key row of this (b, kv head) in [B, Hkv, M, D].</summary>
    public int KeyRow0;
    /// <summary>This thread's query row i.</summary>
    public int Row;
    /// <summary>False for the padding rows of the last tile (they still join shuffles and barriers).</summary>
    public bool Valid;
    /// <summary>i' = i + (M - N), the row's position among the keys.</summary>
    public int Position;
    /// <summary>The row's visible keys [KeyLo, KeyHi] (empty for padding and fully masked rows).</summary>
    public int KeyLo, KeyHi;
    /// <summary>The union of the group's rows' visible keys.</summary>
    public int GroupKeyLo, GroupKeyHi;

    /// <summary>Locates the calling thread.</summary>
    /// <param name="p">The launch's scalars.</param>
    /// <param name="lanes">Lanes per row T.</param>
    /// <param name="keyLengths">[B] real keys per batch element as exact float integers, read when p.KeyPadding is set.</param>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static QueryRowTile Locate(AttentionKernelParams p, int lanes, ArrayView1D<float, Stride1D.Dense> keyLengths)
    {
        var rowsPerGroup = Group.DimX / lanes;
        var t = new QueryRowTile { Lane = Group.IdxX & (lanes - 1), BatchHead = Grid.IdxX / p.RowTiles };
        var i0 = (Grid.IdxX - t.BatchHead * p.RowTiles) * rowsPerGroup;
        t.Head = t.BatchHead % p.H;
        t.KeyRow0 = (t.BatchHead / p.H * p.Hkv + t.Head / p.Group) * p.M;
        t.Row = i0 + Group.IdxX / lanes;
        t.Valid = t.Row < p.N;
        t.Position = t.Row + p.Offset;
        AttentionBand.KeysOf(p, t.Row, t.Row, out t.KeyLo, out t.KeyHi);
        if (!t.Valid) t.KeyHi = -1;
        AttentionBand.KeysOf(p, i0, IntrinsicMath.Min(i0 + rowsPerGroup, p.N) - 1, out t.GroupKeyLo, out t.GroupKeyHi);
        if (p.KeyPadding != 0)
        {
            var last = (int)keyLengths[t.BatchHead / p.H] - 1;
            t.KeyHi = IntrinsicMath.Min(t.KeyHi, last);
            t.GroupKeyHi = IntrinsicMath.Min(t.GroupKeyHi, last);
        }
        return t;
    }
}

/// <summary>The causal/window band: which keys a range of query rows sees, and which queries a range of keys is seen by.</summary>
public static class AttentionBand
{
    /// <summary>
    /// The keys [lo, hi] visible from some query in [iFirst, iLast] (i' = i + Offset: causal keeps j &lt;= i', the
    /// window |i' - j| &lt;= W); empty when lo &gt; hi. With iFirst = iLast it is exactly one row's visible keys.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void KeysOf(AttentionKernelParams p, int iFirst, int iLast, out int lo, out int hi)
    {
        lo = 0;
        hi = p.M - 1;
        if (p.Causal != 0) hi = IntrinsicMath.Min(hi, iLast + p.Offset);
        if (p.Window < 0) return;
        lo = IntrinsicMath.Max(lo, iFirst + p.Offset - p.Window);
        hi = IntrinsicMath.Min(hi, iLast + p.Offset + p.Window);
    }

    /// <summary>The queries [lo, hi] that see some key in [jFirst, jLast]; exactly one key's queries when jFirst = jLast.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void QueriesOf(AttentionKernelParams p, int jFirst, int jLast, out int lo, out int hi)
    {
        lo = 0;
        hi = p.N - 1;
        if (p.Causal != 0) lo = IntrinsicMath.Max(lo, jFirst - p.Offset);
        if (p.Window < 0) return;
        lo = IntrinsicMath.Max(lo, jFirst - p.Offset - p.Window);
        hi = IntrinsicMath.Min(hi, jLast - p.Offset + p.Window);
    }

    /// <summary>
    /// Cooperative, zero-padded copy of <paramref name="count"/> rows starting at <paramref name="firstRow"/> of two
    /// [*, D] arrays into two [count, 8T] shared tiles, by every thread of the group (callers barrier around it).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void FillTiles(ArrayView1D<float, Stride1D.Dense> a, ArrayView1D<float, Stride1D.Dense> b, int firstRow,
        int count, int headDim, int paddedDim, ArrayView<float> tileA, ArrayView<float> tileB)
    {
        for (var e = Group.IdxX; e < count * paddedDim; e += Group.DimX)
        {
            var row = e / paddedDim;
            var d = e - row * paddedDim;
            var va = 0f;
            var vb = 0f;
            if (d < headDim)
            {
                var src = (firstRow + row) * headDim + d;
                va = a[src];
                vb = b[src];
            }
            tileA[e] = va;
            tileB[e] = vb;
        }
    }
}

/// <summary>
/// One lane's online-softmax state over a stream of scores (the attention and graph-attention forwards): the running
/// max m, l = sum e^(z - m), s1 = sum e^(z - m)(z - m) for the entropy, and one caller-defined partial mass
/// (<see cref="Mass"/>: attention's sink keys, graph attention's self-loop), all rescaled when m grows.
/// </summary>
public struct OnlineSoftmax
{
    /// <summary>Running max of z (-inf before the first score).</summary>
    public float Max;
    /// <summary>l.</summary>
    public float Sum;
    /// <summary>s1, kept only with diagnostics.</summary>
    public float ShiftedSum;
    /// <summary>The caller's partial mass in the current frame, kept only with diagnostics.</summary>
    public float Mass;

    /// <summary>The empty state.</summary>
    public static OnlineSoftmax Empty => new() { Max = float.NegativeInfinity };

    /// <summary>
    /// Adds score <paramref name="z"/> with value row <paramref name="value"/> into <paramref name="acc"/> (sum
    /// e^(z - m) v), rescaling only when the max grows; returns the score's weight e^(z - m) in the new frame.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Add(float z, ref LaneVector acc, LaneVector value, bool diagnostics)
    {
        if (z > Max)
        {
            // exp(-inf) = 0 clears the empty state on the first score.
            var alpha = ILGPU.Algorithms.XMath.Exp(Max - z);
            if (diagnostics)
            {
                // Re-centre s1 on the new max: sum e^(z-m')(z-m') = alpha (s1 + (m - m') l).
                ShiftedSum = Sum > 0f ? alpha * (ShiftedSum + (Max - z) * Sum) : 0f;
                Mass *= alpha;
            }
            Sum *= alpha;
            acc.Scale(alpha);
            Max = z;
        }
        var shifted = z - Max;
        var weight = ILGPU.Algorithms.XMath.Exp(shifted);
        Sum += weight;
        acc.AddScaled(weight, value);
        if (diagnostics) ShiftedSum += weight * shifted;
        return weight;
    }
}
