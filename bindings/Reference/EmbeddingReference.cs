// Token embedding, the executable spec. Generic over the float type (float64 reference, naive float32).
// Shapes: V vocabulary rows, C channels, T tokens; table [V, C], ids [T], out [T, C], dTable [V, C].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive embedding gather and scatter-add.</summary>
public static class EmbeddingReference
{
    /// <summary>out[t, c] = table[ids[t], c].</summary>
    public static T[] Forward<T>(T[] table, int[] ids, int channels) where T : IFloatingPointIeee754<T>
    {
        var output = new T[ids.Length * channels];
        for (var t = 0; t < ids.Length; t++)
            for (var c = 0; c < channels; c++) output[t * channels + c] = table[ids[t] * channels + c];
        return output;
    }

    /// <summary>dTable = initial + sum over t of onehot(ids[t]) dOut[t], added in ascending t.</summary>
    public static T[] Backward<T>(T[] dOut, int[] ids, int channels, T[] initial) where T : IFloatingPointIeee754<T>
    {
        var dTable = (T[])initial.Clone();
        for (var t = 0; t < ids.Length; t++)
            for (var c = 0; c < channels; c++) dTable[ids[t] * channels + c] += dOut[t * channels + c];
        return dTable;
    }
}
