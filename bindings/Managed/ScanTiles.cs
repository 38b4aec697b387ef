// Tile transposes shared by the Managed scans (selective scan and linear recurrence): a tile is `Steps` time steps
// of up to L rows of a row-major [rows, T] array (pinned, so views of a larger buffer work too), held as time-major
// vectors of L lanes (one lane per row: L = 8 on Vector256, 4 on Vector128, see ScanLanes.cs), so a scan runs L
// independent recurrences per instruction. Each row is read and written contiguously, so a transpose costs one pass
// over the tile. Shapes: rows of length `stride`; a tile is [Steps, L].
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace RouteKit;

internal static unsafe class ScanTiles
{
    /// <summary>Rows per tile at the widest scan width (Vector256): the size of the transpose buffers.</summary>
    public const int MaxLanes = 8;

    /// <summary>Time steps per tile: the chunk length, so tile starts are the saved chunk states.</summary>
    public const int Steps = SelectiveScan.ChunkLength;

    /// <summary>
    /// Steps start..start+len-1 of rows start/stride .. +width-1 into <paramref name="into"/>[0..len) (zeros in the
    /// lanes past <paramref name="width"/>). <paramref name="stage"/> holds at least Steps x <see cref="MaxLanes"/> floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Load<TS, TV>(float* source, long start, int stride, int width, int len, float[] stage, TV[] into)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var lanes = TS.Lanes;
        if (width < lanes) Array.Clear(stage);
        for (var j = 0; j < width; j++)
        {
            var row = new ReadOnlySpan<float>(source + start + (long)j * stride, len);
            for (var t = 0; t < len; t++) stage[t * lanes + j] = row[t];
        }
        ref var s0 = ref MemoryMarshal.GetArrayDataReference(stage);
        for (var t = 0; t < len; t++) into[t] = TS.Load(ref s0, (nuint)(t * lanes));
    }

    /// <summary>The inverse of <see cref="Load{TS, TV}"/>: time-major vectors back into the rows (lanes past width dropped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Store<TS, TV>(TV[] from, float* target, long start, int stride, int width, int len, float[] stage)
        where TS : struct, IScanLanes<TV> where TV : struct
    {
        var lanes = TS.Lanes;
        ref var s0 = ref MemoryMarshal.GetArrayDataReference(stage);
        for (var t = 0; t < len; t++) TS.Store(from[t], ref s0, (nuint)(t * lanes));
        for (var j = 0; j < width; j++)
        {
            var row = new Span<float>(target + start + (long)j * stride, len);
            for (var t = 0; t < len; t++) row[t] = stage[t * lanes + j];
        }
    }

    /// <summary>One value per row, <paramref name="source"/>[start + j stride] for j &lt; width, zeros past it (all zeros for null).</summary>
    public static TV Gather<TS, TV>(float* source, int width, long start, long stride) where TS : struct, IScanLanes<TV> where TV : struct
    {
        if (source == null) return TS.Zero;
        var lanes = stackalloc float[MaxLanes];
        for (var j = 0; j < MaxLanes; j++) lanes[j] = j < width ? source[start + j * stride] : 0f;
        return TS.Load(lanes);
    }

    /// <summary>Writes lane j of <paramref name="value"/> to <paramref name="target"/>[start + j stride] for j &lt; width.</summary>
    public static void Scatter<TS, TV>(TV value, float* target, int width, long start, long stride) where TS : struct, IScanLanes<TV> where TV : struct
    {
        for (var j = 0; j < width; j++) target[start + j * stride] = TS.GetElement(value, j);
    }
}
