// Embedding: launcher, validation and dispatcher of the token-embedding gather and its backward.
// Shapes: V vocabulary rows, C channels, T tokens; table [V, C], ids [T] (float-coded, see TokenIds), out [T, C],
// dOut [T, C], dTable [V, C].
// Implementations: Managed -> bindings/Managed/EmbeddingManaged.cs; ILGPU -> kernels/Training/EmbeddingKernels.cs;
// reference -> bindings/Reference/EmbeddingReference.cs.
using ILGPU;
using ILGPU.Runtime;
using RouteKit.Kernels.Training;

namespace RouteKit;

/// <summary>
/// Token embedding: out[t] = table[ids[t]], and its backward, which adds each token's output gradient to its table row
/// deterministically (row ownership, no float atomics: repeated runs are bitwise equal on every backend).
/// </summary>
public static class Embedding
{
    /// <summary>Gathers the rows of <paramref name="table"/> <c>[V, C]</c> named by <paramref name="ids"/> <c>[T]</c>.</summary>
    /// <param name="table">The embedding table <c>[V, C]</c>, finite.</param>
    /// <param name="ids">Token ids <c>[T]</c> as float-coded integers in [0, V).</param>
    /// <param name="output">Preallocated <c>[T, C]</c>, distinct from the inputs; allocated when null.</param>
    /// <exception cref="ArgumentException">A shape, rank or device does not match, the table holds NaN or infinity, an id
    /// is not an integer in [0, V), V exceeds 2^24, or output aliases an input; nothing is launched and a preallocated
    /// output is untouched.</exception>
    public static Tensor Forward(Tensor table, Tensor ids, Tensor? output = null)
    {
        var (vocabulary, channels, tokens) = Validate(table, nameof(table), ids);
        var device = table.Device;
        if (output is not null) TensorChecks.Output(device, output, [tokens, channels], nameof(output), table, ids);
        TensorChecks.Finite(table, nameof(table));
        TokenIds.Check(ids, vocabulary, null, nameof(ids));
        var o = output ?? device.Zeros(tokens, channels);
        if (device.Backend == Backend.Managed)
        {
            EmbeddingManaged.Forward(table.HostSpan, ids.HostSpan, tokens, channels, o.HostSpan);
            return o;
        }
        var kernel = device.GetKernel("Embedding.Forward", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int>(
            EmbeddingKernels.Forward));
        kernel(o.Length, table.View, ids.View, o.View, channels);
        return o;
    }

    /// <summary>
    /// Adds the gradient of the gather to <paramref name="dTable"/> <c>[V, C]</c>: dTable[v] += sum of dOut[t] over the
    /// tokens t with ids[t] = v, summed in ascending t. It accumulates (as llm.c's encoder backward does), so a table
    /// shared with the output head collects both gradients; zero dTable at the start of the step.
    /// </summary>
    /// <param name="dOut">Gradient of the output <c>[T, C]</c>, finite.</param>
    /// <param name="ids">The forward's token ids <c>[T]</c>.</param>
    /// <param name="dTable">The table gradient <c>[V, C]</c>, updated in place.</param>
    /// <exception cref="ArgumentException">A shape, rank or device does not match, dOut or dTable hold NaN or infinity, an
    /// id is not an integer in [0, V), or dTable aliases an input; nothing is launched and dTable is untouched.</exception>
    public static void Backward(Tensor dOut, Tensor ids, Tensor dTable)
    {
        var (vocabulary, channels, tokens) = Validate(dTable, nameof(dTable), ids);
        var device = dTable.Device;
        TensorChecks.Input(device, dOut, [tokens, channels], nameof(dOut));
        TensorChecks.NotAliased(dTable, nameof(dTable), dOut, ids);
        TensorChecks.Finite(dOut, nameof(dOut));
        TensorChecks.Finite(dTable, nameof(dTable));
        TokenIds.Check(ids, vocabulary, null, nameof(ids));
        if (device.Backend == Backend.Managed)
        {
            EmbeddingManaged.Backward(dOut.HostSpan, ids.HostSpan, tokens, channels, vocabulary, dTable.HostSpan);
            return;
        }
        var kernel = device.GetKernel("Embedding.Backward", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
            ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, ArrayView1D<float, Stride1D.Dense>, int, int>(
            EmbeddingKernels.Backward));
        kernel(dTable.Length, dOut.View, ids.View, dTable.View, tokens, channels);
    }

    private static (int Vocabulary, int Channels, int Tokens) Validate(Tensor table, string tableName, Tensor ids)
    {
        TensorChecks.NotNull(table, tableName);
        table.Device.ThrowIfDisposed();
        if (table.Rank != 2)
            throw new ArgumentException($"{tableName} must have rank 2 [V, C]; got shape {Tensor.Format(table.ShapeSpan)}.", tableName);
        TensorChecks.NotNull(ids, nameof(ids));
        TensorChecks.SameDevice(table.Device, ids, nameof(ids));
        if (ids.Rank != 1)
            throw new ArgumentException($"ids must have rank 1 [T]; got shape {Tensor.Format(ids.ShapeSpan)}.", nameof(ids));
        if (table.Shape[0] > TokenIds.MaxClasses) TokenIds.CheckLimit(table.Shape[0], $"V ({tableName}.Shape[0])"); // message built only on failure
        return (table.Shape[0], table.Shape[1], ids.Shape[0]);
    }
}
