using RouteKit.Kernels.Scan;

namespace RouteKit;

/// <summary>
/// One selective-scan problem, resolved and validated once at the API edge: B batch, Dc channels, L time steps,
/// Nst states, G groups of B and C. Kernels, the Managed path and the reference read only this.
/// </summary>
public sealed record SelectiveScanParams
{
    /// <summary>Largest supported number of states per channel.</summary>
    public const int MaxStates = SelectiveScanForward.MaxStates;

    /// <summary>Batch size.</summary>
    public required int B { get; init; }
    /// <summary>Channels.</summary>
    public required int Dc { get; init; }
    /// <summary>Time steps.</summary>
    public required int L { get; init; }
    /// <summary>States per channel, 1..256.</summary>
    public required int Nst { get; init; }
    /// <summary>Groups of B and C (1 when they are <c>[B, Nst, L]</c>); channel d reads group d / (Dc / G).</summary>
    public required int G { get; init; }
    /// <summary>True when B and C were given as <c>[B, G, Nst, L]</c>.</summary>
    public required bool Grouped { get; init; }
    /// <summary>D is given.</summary>
    public required bool HasD { get; init; }
    /// <summary>z is given.</summary>
    public required bool HasZ { get; init; }
    /// <summary>deltaBias is given.</summary>
    public required bool HasDeltaBias { get; init; }
    /// <summary>An initial state is given.</summary>
    public required bool HasInitialState { get; init; }
    /// <summary>dt = softplus(delta + bias).</summary>
    public required bool DeltaSoftplus { get; init; }
    /// <summary>Bitwise-repeatable backward.</summary>
    public required bool Deterministic { get; init; }

    /// <summary>Channels per group.</summary>
    public int ChannelsPerGroup => Dc / G;
    /// <summary>Chunks of <see cref="SelectiveScan.ChunkLength"/> steps: ceil(L / 32).</summary>
    public int Chunks => (L + WarpScan.ChunkLength - 1) / WarpScan.ChunkLength;

    /// <summary>Shape of u, delta, z, out and their gradients.</summary>
    public int[] SequenceShape => [B, Dc, L];
    /// <summary>Shape of A and dA.</summary>
    public int[] AShape => [Dc, Nst];
    /// <summary>Shape of B, C and their gradients as given.</summary>
    public int[] ProjectionShape => Grouped ? [B, G, Nst, L] : [B, Nst, L];
    /// <summary>Shape of D and deltaBias.</summary>
    public int[] ChannelShape => [Dc];
    /// <summary>Shape of the initial and last states.</summary>
    public int[] StateShape => [B, Dc, Nst];
    /// <summary>Shape of the saved chunk states.</summary>
    public int[] ChunkStateShape => [B, Dc, Chunks, Nst];

    /// <summary>
    /// Resolves shapes and options and validates both; every error is an <see cref="ArgumentException"/> naming the
    /// argument, the shape seen and the shape wanted. Optional shapes are null when the input is absent.
    /// </summary>
    public static SelectiveScanParams Resolve(
        int[] u, int[] delta, int[] a, int[] bShape, int[] cShape,
        int[]? d, int[]? z, int[]? deltaBias, int[]? initialState, SelectiveScanOptions? options)
    {
        options ??= new SelectiveScanOptions();
        if (u.Length != 3)
            throw new ArgumentException($"inputs.U must have rank 3 [B, Dc, L]; got shape {Tensor.Format(u)}.", "inputs.U");
        int batch = u[0], channels = u[1], steps = u[2];
        Expect(delta, u, "inputs.Delta", "[B, Dc, L]");
        if (a.Length != 2 || a[0] != channels)
            throw new ArgumentException(
                $"inputs.A has shape {Tensor.Format(a)}; wanted [Dc={channels}, Nst].", "inputs.A");
        var states = a[1];
        if (states > MaxStates)
            throw new ArgumentException(
                $"inputs.A has shape {Tensor.Format(a)}: Nst = {states} states per channel; at most {MaxStates} are supported.", "inputs.A");
        bool grouped;
        int groups;
        if (bShape.Length == 3)
        {
            grouped = false;
            groups = 1;
            Expect(bShape, [batch, states, steps], "inputs.B", "[B, Nst, L]");
        }
        else if (bShape.Length == 4)
        {
            grouped = true;
            groups = bShape[1];
            Expect(bShape, [batch, groups, states, steps], "inputs.B", "[B, G, Nst, L]");
            if (channels % groups != 0)
                throw new ArgumentException(
                    $"inputs.B has shape {Tensor.Format(bShape)}: G = {groups} groups must divide Dc = {channels} channels.", "inputs.B");
        }
        else
        {
            throw new ArgumentException(
                $"inputs.B must have rank 3 [B, Nst, L] or 4 [B, G, Nst, L]; got shape {Tensor.Format(bShape)}.", "inputs.B");
        }
        Expect(cShape, bShape, "inputs.C", "the shape of B");
        if (d is not null) Expect(d, [channels], "inputs.D", "[Dc]");
        if (z is not null) Expect(z, u, "inputs.Z", "[B, Dc, L]");
        if (deltaBias is not null) Expect(deltaBias, [channels], "inputs.DeltaBias", "[Dc]");
        if (initialState is not null) Expect(initialState, [batch, channels, states], "inputs.InitialState", "[B, Dc, Nst]");
        return new SelectiveScanParams
        {
            B = batch, Dc = channels, L = steps, Nst = states, G = groups, Grouped = grouped,
            HasD = d is not null, HasZ = z is not null, HasDeltaBias = deltaBias is not null,
            HasInitialState = initialState is not null,
            DeltaSoftplus = options.DeltaSoftplus, Deterministic = options.Deterministic,
        };
    }

    private static void Expect(int[] seen, int[] wanted, string name, string layout)
    {
        if (!seen.AsSpan().SequenceEqual(wanted))
            throw new ArgumentException(
                $"{name} has shape {Tensor.Format(seen)}; wanted {Tensor.Format(wanted)} ({layout}).", name);
    }

    /// <summary>The kernels' params struct.</summary>
    internal ScanKernelParams KernelParams => new()
    {
        B = B, Dc = Dc, L = L, Nst = Nst, G = G, ChannelsPerGroup = ChannelsPerGroup, Chunks = Chunks, Rows = B * Dc,
        HasD = HasD ? 1 : 0, HasZ = HasZ ? 1 : 0, HasDeltaBias = HasDeltaBias ? 1 : 0,
        HasInitialState = HasInitialState ? 1 : 0,
    };
}
