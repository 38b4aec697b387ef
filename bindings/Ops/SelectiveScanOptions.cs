namespace RouteKit;

/// <summary>Options of <see cref="SelectiveScan"/>. Defaults give Mamba's <c>selective_scan_fn</c> without softplus.</summary>
public sealed record SelectiveScanOptions
{
    /// <summary>dt = softplus(delta + deltaBias) instead of delta + deltaBias (Mamba's <c>delta_softplus</c>).</summary>
    public bool DeltaSoftplus { get; init; }

    /// <summary>
    /// Backward gives bitwise-identical results on every run. On ILGPU backends this sums dB and dC over a group's
    /// channels from per-channel partials (a workspace of 2 B Dc Nst L floats) instead of with float atomics.
    /// The Managed backend is always deterministic.
    /// </summary>
    public bool Deterministic { get; init; } = true;
}

/// <summary>
/// The tensors of one selective scan. Shapes: u, delta, z <c>[B, Dc, L]</c>; A <c>[Dc, Nst]</c>; B, C <c>[B, Nst, L]</c> or
/// grouped <c>[B, G, Nst, L]</c>; D, DeltaBias <c>[Dc]</c>; InitialState <c>[B, Dc, Nst]</c>. The op never disposes them.
/// </summary>
public sealed record SelectiveScanInputs
{
    /// <summary>The input sequence u <c>[B, Dc, L]</c>.</summary>
    public required Tensor U { get; init; }
    /// <summary>The step sizes before bias and activation <c>[B, Dc, L]</c>.</summary>
    public required Tensor Delta { get; init; }
    /// <summary>The state matrix (diagonal per channel) <c>[Dc, Nst]</c>; every entry must be &lt;= 0.</summary>
    public required Tensor A { get; init; }
    /// <summary>Input projection per step <c>[B, Nst, L]</c> or <c>[B, G, Nst, L]</c>.</summary>
    public required Tensor B { get; init; }
    /// <summary>Output projection per step, the same shape as B.</summary>
    public required Tensor C { get; init; }
    /// <summary>Skip connection <c>[Dc]</c>, or null.</summary>
    public Tensor? D { get; init; }
    /// <summary>Gate <c>[B, Dc, L]</c> (out = y silu(z)), or null.</summary>
    public Tensor? Z { get; init; }
    /// <summary>Added to delta before the activation <c>[Dc]</c>, or null.</summary>
    public Tensor? DeltaBias { get; init; }
    /// <summary>h_{-1} <c>[B, Dc, Nst]</c>, or null for zeros.</summary>
    public Tensor? InitialState { get; init; }

    internal IEnumerable<(Tensor Tensor, string Name)> Present()
    {
        yield return (U, "inputs.U");
        yield return (Delta, "inputs.Delta");
        yield return (A, "inputs.A");
        yield return (B, "inputs.B");
        yield return (C, "inputs.C");
        if (D is not null) yield return (D, "inputs.D");
        if (Z is not null) yield return (Z, "inputs.Z");
        if (DeltaBias is not null) yield return (DeltaBias, "inputs.DeltaBias");
        if (InitialState is not null) yield return (InitialState, "inputs.InitialState");
    }
}

/// <summary>The forward's results and what the backward needs.</summary>
public sealed class SelectiveScanOutput : IDisposable
{
    /// <summary>Wraps the forward's tensors.</summary>
    public SelectiveScanOutput(Tensor output, Tensor lastState, Tensor chunkStates, Tensor? preGate)
    {
        (Output, LastState, ChunkStates, PreGate) = (output, lastState, chunkStates, preGate);
    }

    /// <summary>out <c>[B, Dc, L]</c>.</summary>
    public Tensor Output { get; }
    /// <summary>h_{L-1} <c>[B, Dc, Nst]</c> (not differentiated, as in Mamba).</summary>
    public Tensor LastState { get; }
    /// <summary>The state entering every chunk of <see cref="SelectiveScan.ChunkLength"/> steps <c>[B, Dc, Chunks, Nst]</c>, saved for the backward.</summary>
    public Tensor ChunkStates { get; }
    /// <summary>y + D u before the gate <c>[B, Dc, L]</c> when z is given (the backward's dz needs it), else null.</summary>
    public Tensor? PreGate { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Output.Dispose();
        LastState.Dispose();
        ChunkStates.Dispose();
        PreGate?.Dispose();
    }
}

/// <summary>Gradients of a scalar loss with respect to each input (null for inputs that were absent).</summary>
public sealed class SelectiveScanGradients : IDisposable
{
    /// <summary>Wraps the gradient tensors.</summary>
    public SelectiveScanGradients(Tensor du, Tensor dDelta, Tensor dA, Tensor dB, Tensor dC,
        Tensor? dD, Tensor? dz, Tensor? dDeltaBias, Tensor? dInitialState)
    {
        (DU, DDelta, DA, DB, DC, DD, DZ, DDeltaBias, DInitialState) = (du, dDelta, dA, dB, dC, dD, dz, dDeltaBias, dInitialState);
    }

    /// <summary>dL/du <c>[B, Dc, L]</c>.</summary>
    public Tensor DU { get; }
    /// <summary>dL/ddelta <c>[B, Dc, L]</c>.</summary>
    public Tensor DDelta { get; }
    /// <summary>dL/dA <c>[Dc, Nst]</c>.</summary>
    public Tensor DA { get; }
    /// <summary>dL/dB, the shape of B.</summary>
    public Tensor DB { get; }
    /// <summary>dL/dC, the shape of C.</summary>
    public Tensor DC { get; }
    /// <summary>dL/dD <c>[Dc]</c>.</summary>
    public Tensor? DD { get; }
    /// <summary>dL/dz <c>[B, Dc, L]</c>.</summary>
    public Tensor? DZ { get; }
    /// <summary>dL/ddeltaBias <c>[Dc]</c>.</summary>
    public Tensor? DDeltaBias { get; }
    /// <summary>dL/dh_{-1} <c>[B, Dc, Nst]</c>.</summary>
    public Tensor? DInitialState { get; }

    internal IEnumerable<(Tensor? Tensor, string Name)> All =>
    [
        (DU, "gradients.DU"), (DDelta, "gradients.DDelta"), (DA, "gradients.DA"), (DB, "gradients.DB"), (DC, "gradients.DC"),
        (DD, "gradients.DD"), (DZ, "gradients.DZ"), (DDeltaBias, "gradients.DDeltaBias"), (DInitialState, "gradients.DInitialState"),
    ];

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (t, _) in All) t?.Dispose();
    }
}
