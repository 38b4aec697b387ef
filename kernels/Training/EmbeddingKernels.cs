// Token embedding: forward gather and deterministic backward scatter-add, without float atomics.
// Shapes: V vocabulary rows, C channels, T tokens; table [V, C], ids [T] (float-coded, checked before launch),
// out [T, C], dOut [T, C], dTable [V, C].
//
// Versions (one each so far; GPU timing waits for a GPU run):
//   Forward 1  (2026-12-02) one thread per output element: out[t, c] = table[ids[t], c] (coalesced over c).
//   Backward 1 (2026-12-02) row ownership: one thread per dTable element (v, c) scans all T ids and sums dOut[t, c]
//      for the tokens t with id v, in ascending t, then adds the sum to dTable once. No two threads write one element,
//      so no atomics and bitwise-repeatable results; the cost is V * T id reads (cached, uniform across a warp),
//      acceptable for the small vocabularies of the router experiments. A sort-by-token version (segment sums over
//      the permutation) is the next step for GPT-2-sized V.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the embedding gather and its backward.</summary>
public static class EmbeddingKernels
{
    /// <summary>One thread per element of out [T, C].</summary>
    public static void Forward(Index1D i,
        ArrayView1D<float, Stride1D.Dense> table, // [V, C]
        ArrayView1D<float, Stride1D.Dense> ids,   // [T]
        ArrayView1D<float, Stride1D.Dense> output, // [T, C]
        int channels)
    {
        var t = i.X / channels;
        var c = i.X - t * channels;
        var id = ids[t];
        // An id a deferred check (inside a training step) has yet to report is never used as an index; NaN marks the row.
        output[i] = id >= 0f && (long)id * channels < table.Length ? table[(long)(int)id * channels + c] : float.NaN;
    }

    /// <summary>One thread per element of dTable [V, C]: dTable[v, c] += sum over t with ids[t] = v of dOut[t, c].</summary>
    public static void Backward(Index1D i,
        ArrayView1D<float, Stride1D.Dense> dOut,   // [T, C]
        ArrayView1D<float, Stride1D.Dense> ids,    // [T]
        ArrayView1D<float, Stride1D.Dense> dTable, // [V, C]
        int tokens, int channels)
    {
        var v = i.X / channels;
        var c = i.X - v * channels;
        var s = 0f;
        var any = false;
        for (var t = 0; t < tokens; t++)
        {
            if ((int)ids[t] != v) continue;
            s += dOut[(long)t * channels + c];
            any = true;
        }
        if (any) dTable[i] += s;
    }
}
