// Tile transposes shared by the Managed scans (selective scan and linear recurrence): a tile is `Steps` time steps
// of up to 8 rows of a row-major [rows, T] array (pinned, so views of a larger buffer work too), held as time-major Vector256<float> (one lane per row), so a scan
// runs 8 independent recurrences per instruction. Each row is read and written contiguously, so a transpose costs
// one pass over the tile. Shapes: rows of length `stride`; a tile is [Steps, 8].
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

internal static unsafe class ScanTiles
{
    /// <summary>Rows per tile: the lanes of a Vector256&lt;float&gt;.</summary>
    public const int Lanes = 8;

    /// <summary>Time steps per tile: the chunk length, so tile starts are the saved chunk states.</summary>
    public const int Steps = SelectiveScan.ChunkLength;

    /// <summary>
    /// Steps start..start+len-1 of rows start/stride .. +width-1 into <paramref name="into"/>[0..len) (zeros in the
    /// lanes past <paramref name="width"/>). <paramref name="stage"/> holds at least Steps x 8 floats.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Load(float* source, long start, int stride, int width, int len, float[] stage, Vector256<float>[] into)
    {
        if (width < Lanes) Array.Clear(stage);
        for (var j = 0; j < width; j++)
        {
            var row = new ReadOnlySpan<float>(source + start + (long)j * stride, len);
            for (var t = 0; t < len; t++) stage[t * Lanes + j] = row[t];
        }
        for (var t = 0; t < len; t++) into[t] = Vector256.Create<float>(stage.AsSpan(t * Lanes, Lanes));
    }

    /// <summary>The inverse of <see cref="Load"/>: time-major vectors back into the rows (lanes past width dropped).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Store(Vector256<float>[] from, float* target, long start, int stride, int width, int len, float[] stage)
    {
        for (var t = 0; t < len; t++) from[t].CopyTo(stage.AsSpan(t * Lanes, Lanes));
        for (var j = 0; j < width; j++)
        {
            var row = new Span<float>(target + start + (long)j * stride, len);
            for (var t = 0; t < len; t++) row[t] = stage[t * Lanes + j];
        }
    }

    /// <summary>One value per row, <paramref name="source"/>[start + j stride] for j &lt; width, zeros past it (all zeros for null).</summary>
    public static Vector256<float> Gather(float* source, int width, long start, long stride)
    {
        if (source == null) return Vector256<float>.Zero;
        Span<float> lanes = stackalloc float[Lanes];
        lanes.Clear();
        for (var j = 0; j < width; j++) lanes[j] = source[start + j * stride];
        return Vector256.Create<float>(lanes);
    }

    /// <summary>Writes lane j of <paramref name="value"/> to <paramref name="target"/>[start + j stride] for j &lt; width.</summary>
    public static void Scatter(Vector256<float> value, float* target, int width, long start, long stride)
    {
        for (var j = 0; j < width; j++) target[start + j * stride] = value[j];
    }
}
