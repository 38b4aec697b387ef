// SelectiveScan: validation and the one dispatcher from backend to implementation.
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups of B and C; Chunks = ceil(L / 32).
// Implementations: Managed -> bindings/Managed/SelectiveScanManaged.cs; Cuda, OpenCL, IlgpuCpu ->
// bindings/Ops/SelectiveScanIlgpu.cs over kernels/Scan/. Reference: bindings/Reference/ScanReference.cs.
// Time them with `routekit-perf scan --variant N`.
//
// Positive A is rejected, not warned about: exp(dt A) > 1 makes the state grow geometrically, float32 overflows
// within a few hundred steps at ordinary dt, and Mamba itself only ever produces A = -exp(A_log) < 0. A = 0 (a pure
// accumulator) is allowed.
using RouteKit.Kernels.Scan;

namespace RouteKit;

/// <summary>
/// The selective scan of Mamba's S6 layer (<c>selective_scan_ref</c> semantics, DESIGN.md section 4), forward and
/// backward, with grouped B/C, optional D, z, deltaBias, softplus and initial state. Extra memory is
/// O(B Dc (L + Chunks Nst)): the output, y before the gate (with z) and the state entering each chunk.
/// </summary>
public static class SelectiveScan
{
    /// <summary>Time steps per saved chunk state.</summary>
    public const int ChunkLength = WarpScan.ChunkLength;

    /// <summary>Computes out <c>[B, Dc, L]</c> and the last state, and saves the chunk states for the backward.</summary>
    /// <param name="inputs">u, delta, A, B, C and the optional tensors.</param>
    /// <param name="options">Softplus and determinism; null for defaults.</param>
    /// <param name="outputs">Preallocated outputs to overwrite (PreGate needed exactly when z is given); null to allocate.</param>
    /// <exception cref="ArgumentException">Bad shapes, devices, Nst &gt; 256, positive A or non-finite inputs, before any kernel runs.</exception>
    public static SelectiveScanOutput Forward(SelectiveScanInputs inputs, SelectiveScanOptions? options = null,
        SelectiveScanOutput? outputs = null)
    {
        var p = Validate(inputs, options);
        var device = inputs.U.Device;
        var all = inputs.Present().Select(static x => x.Tensor).ToArray();
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Output, p.SequenceShape, "outputs.Output", all);
            TensorChecks.Output(device, outputs.LastState, p.StateShape, "outputs.LastState", all);
            TensorChecks.Output(device, outputs.ChunkStates, p.ChunkStateShape, "outputs.ChunkStates", all);
            if (p.HasZ)
                TensorChecks.Output(device, outputs.PreGate ?? throw new ArgumentException(
                    "inputs.Z is given but outputs.PreGate is null; preallocate it [B, Dc, L].", nameof(outputs)),
                    p.SequenceShape, "outputs.PreGate", all);
        }
        CheckValues(inputs);

        var result = outputs ?? new SelectiveScanOutput(device.Zeros(p.SequenceShape), device.Zeros(p.StateShape),
            device.Zeros(p.ChunkStateShape), p.HasZ ? device.Zeros(p.SequenceShape) : null);
        if (device.Backend == Backend.Managed)
            ManagedForward(p, inputs, result);
        else
            SelectiveScanIlgpu.Forward(device, p, inputs, result);
        return result;
    }

    /// <summary>
    /// Gradients of a scalar loss with respect to every input, given <c>dOut = dL/dout</c> and the forward's result.
    /// The last state is not differentiated (as in Mamba).
    /// </summary>
    /// <param name="dOut">dL/dout <c>[B, Dc, L]</c>.</param>
    /// <param name="inputs">The forward's inputs.</param>
    /// <param name="forward">The forward's result (ChunkStates, and PreGate with z, are read, and checked finite).</param>
    /// <param name="options">The forward's options.</param>
    /// <param name="gradients">Preallocated gradients (one for each input given, null for the others); null to allocate.</param>
    public static SelectiveScanGradients Backward(Tensor dOut, SelectiveScanInputs inputs, SelectiveScanOutput forward,
        SelectiveScanOptions? options = null, SelectiveScanGradients? gradients = null)
    {
        var p = Validate(inputs, options);
        var device = inputs.U.Device;
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, dOut, p.SequenceShape, nameof(dOut));
        TensorChecks.Input(device, forward.ChunkStates, p.ChunkStateShape, "forward.ChunkStates");
        if (p.HasZ)
            TensorChecks.Input(device, forward.PreGate ?? throw new ArgumentException(
                "inputs.Z is given but forward.PreGate is null: pass the result of Forward with the same inputs.", nameof(forward)),
                p.SequenceShape, "forward.PreGate");
        Tensor[] read = [dOut, forward.ChunkStates, .. inputs.Present().Select(static x => x.Tensor),
            .. forward.PreGate is null ? Array.Empty<Tensor>() : [forward.PreGate]];
        if (gradients is not null)
        {
            TensorChecks.Output(device, gradients.DU, p.SequenceShape, "gradients.DU", read);
            TensorChecks.Output(device, gradients.DDelta, p.SequenceShape, "gradients.DDelta", read);
            TensorChecks.Output(device, gradients.DA, p.AShape, "gradients.DA", read);
            TensorChecks.Output(device, gradients.DB, p.ProjectionShape, "gradients.DB", read);
            TensorChecks.Output(device, gradients.DC, p.ProjectionShape, "gradients.DC", read);
            CheckOptionalOutput(device, gradients.DD, p.HasD, p.ChannelShape, "gradients.DD", read);
            CheckOptionalOutput(device, gradients.DZ, p.HasZ, p.SequenceShape, "gradients.DZ", read);
            CheckOptionalOutput(device, gradients.DDeltaBias, p.HasDeltaBias, p.ChannelShape, "gradients.DDeltaBias", read);
            CheckOptionalOutput(device, gradients.DInitialState, p.HasInitialState, p.StateShape, "gradients.DInitialState", read);
        }
        TensorChecks.Finite(dOut, nameof(dOut));
        CheckValues(inputs);
        // The saved states and pre-gate output are inputs of the backward like any other: a NaN there would reach
        // every gradient of its channel.
        TensorChecks.Finite(forward.ChunkStates, "forward.ChunkStates");
        if (p.HasZ) TensorChecks.Finite(forward.PreGate!, "forward.PreGate");

        var result = gradients ?? new SelectiveScanGradients(
            device.Zeros(p.SequenceShape), device.Zeros(p.SequenceShape), device.Zeros(p.AShape),
            device.Zeros(p.ProjectionShape), device.Zeros(p.ProjectionShape),
            p.HasD ? device.Zeros(p.ChannelShape) : null, p.HasZ ? device.Zeros(p.SequenceShape) : null,
            p.HasDeltaBias ? device.Zeros(p.ChannelShape) : null, p.HasInitialState ? device.Zeros(p.StateShape) : null);
        if (device.Backend == Backend.Managed)
            ManagedBackward(p, inputs, dOut, forward, result);
        else
            SelectiveScanIlgpu.Backward(device, p, inputs, dOut, forward, result);
        return result;
    }

    private static SelectiveScanParams Validate(SelectiveScanInputs inputs, SelectiveScanOptions? options)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        foreach (var (t, name) in inputs.Present()) TensorChecks.NotNull(t, name);
        var device = inputs.U.Device;
        device.ThrowIfDisposed();
        foreach (var (t, name) in inputs.Present()) TensorChecks.SameDevice(device, t, name);
        return SelectiveScanParams.Resolve(inputs.U.Shape.ToArray(), inputs.Delta.Shape.ToArray(), inputs.A.Shape.ToArray(),
            inputs.B.Shape.ToArray(), inputs.C.Shape.ToArray(), inputs.D?.Shape.ToArray(), inputs.Z?.Shape.ToArray(),
            inputs.DeltaBias?.Shape.ToArray(), inputs.InitialState?.Shape.ToArray(), options);
    }

    // Finite everywhere, and A <= 0 (see the file header for why positive A is rejected).
    private static void CheckValues(SelectiveScanInputs inputs)
    {
        foreach (var (t, name) in inputs.Present()) TensorChecks.Finite(t, name);
        ReadOnlySpan<float> a = inputs.A.Device.IsIlgpu ? inputs.A.ToArray() : inputs.A.HostSpan;
        var states = inputs.A.Shape[1];
        for (var i = 0; i < a.Length; i++)
            if (a[i] > 0f)
                throw new ArgumentException(
                    $"inputs.A {Tensor.Format(inputs.A.Shape.ToArray())} holds {a[i]} > 0 at [{i / states}, {i % states}]; " +
                    "A must be <= 0 (a decay): exp(dt A) > 1 grows the state without bound. Parametrise A = -exp(A_log) as Mamba does.",
                    "inputs.A");
    }

    // The Managed kernels read pointers into the tensors' spans (views included), pinned for the call.
    private static unsafe void ManagedForward(SelectiveScanParams p, SelectiveScanInputs x, SelectiveScanOutput r)
    {
        fixed (float* u = x.U.HostSpan, delta = x.Delta.HostSpan, a = x.A.HostSpan, b = x.B.HostSpan, c = x.C.HostSpan,
               d = HostSpan(x.D), z = HostSpan(x.Z), bias = HostSpan(x.DeltaBias), h0 = HostSpan(x.InitialState),
               o = r.Output.HostSpan, pre = HostSpan(r.PreGate), last = r.LastState.HostSpan, chunks = r.ChunkStates.HostSpan)
            SelectiveScanManaged.Forward(p, new SelectiveScanHostInputs(u, delta, a, b, c, d, z, bias, h0), o, pre, last, chunks);
    }

    private static unsafe void ManagedBackward(SelectiveScanParams p, SelectiveScanInputs x, Tensor dOut, SelectiveScanOutput f,
        SelectiveScanGradients g)
    {
        fixed (float* u = x.U.HostSpan, delta = x.Delta.HostSpan, a = x.A.HostSpan, b = x.B.HostSpan, c = x.C.HostSpan,
               d = HostSpan(x.D), z = HostSpan(x.Z), bias = HostSpan(x.DeltaBias), h0 = HostSpan(x.InitialState),
               dO = dOut.HostSpan, chunks = f.ChunkStates.HostSpan, pre = HostSpan(f.PreGate),
               du = g.DU.HostSpan, dDelta = g.DDelta.HostSpan, dA = g.DA.HostSpan, dB = g.DB.HostSpan, dC = g.DC.HostSpan,
               dD = HostSpan(g.DD), dz = HostSpan(g.DZ), dBias = HostSpan(g.DDeltaBias), dH0 = HostSpan(g.DInitialState))
            SelectiveScanManaged.Backward(p, new SelectiveScanHostInputs(u, delta, a, b, c, d, z, bias, h0), dO, chunks, pre,
                du, dDelta, dA, dB, dC, dD, dz, dBias, dH0);
    }

    private static Span<float> HostSpan(Tensor? t) => t is null ? default : t.HostSpan;

    private static void CheckOptionalOutput(Device device, Tensor? t, bool wanted, int[] shape, string name, Tensor[] inputs)
    {
        if (wanted)
            TensorChecks.Output(device, t ?? throw new ArgumentException($"{name} is null but its input is given; preallocate it {Tensor.Format(shape)}.", name),
                shape, name, inputs);
        else if (t is not null)
            throw new ArgumentException($"{name} is given but its input is absent; pass null.", name);
    }
}

/// <summary>Pointers to a selective scan's inputs on the Managed backend (pinned by the caller; null for an absent one).</summary>
internal readonly unsafe struct SelectiveScanHostInputs(
    float* u, float* delta, float* a, float* b, float* c, float* d, float* z, float* deltaBias, float* initialState)
{
    public float* U { get; } = u;
    public float* Delta { get; } = delta;
    public float* A { get; } = a;
    public float* B { get; } = b;
    public float* C { get; } = c;
    public float* D { get; } = d;
    public float* Z { get; } = z;
    public float* DeltaBias { get; } = deltaBias;
    public float* InitialState { get; } = initialState;
}
