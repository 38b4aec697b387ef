// SelectiveScan: validation and the one dispatcher from backend to implementation.
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups of B and C; Chunks = ceil(L / 32).
// Implementations: Managed -> bindings/Managed/SelectiveScanManaged.cs; Cuda, OpenCL, IlgpuCpu ->
// bindings/Ops/SelectiveScanIlgpu.cs over kernels/Scan/. Reference: bindings/Reference/ScanReference.cs.
// Time them with `routekit-perf scan --variant N`.
//
// Positive A is rejected, not warned about: exp(dt A) > 1 makes the state grow geometrically, float32 overflows
// within a few hundred steps at ordinary dt, and Mamba itself only ever produces A = -exp(A_log) < 0. A = 0 (a pure
// accumulator) is allowed.
using ILGPU;
using ILGPU.Runtime;
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
        var resolved = Validate(inputs, options);
        var p = resolved.P;
        var device = inputs.U.Device;
        var x = inputs;
        if (outputs is not null)
        {
            TensorChecks.Output(device, outputs.Output, resolved.Sequence, "outputs.Output",
                x.U, x.Delta, x.A, x.B, x.C, x.D, x.Z, x.DeltaBias, x.InitialState);
            TensorChecks.Output(device, outputs.LastState, resolved.State, "outputs.LastState",
                x.U, x.Delta, x.A, x.B, x.C, x.D, x.Z, x.DeltaBias, x.InitialState);
            TensorChecks.Output(device, outputs.ChunkStates, resolved.ChunkState, "outputs.ChunkStates",
                x.U, x.Delta, x.A, x.B, x.C, x.D, x.Z, x.DeltaBias, x.InitialState);
            if (p.HasZ)
                TensorChecks.Output(device, outputs.PreGate ?? throw new ArgumentException(
                    "inputs.Z is given but outputs.PreGate is null; preallocate it [B, Dc, L].", nameof(outputs)),
                    resolved.Sequence, "outputs.PreGate", x.U, x.Delta, x.A, x.B, x.C, x.D, x.Z, x.DeltaBias, x.InitialState);
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
        var resolved = Validate(inputs, options);
        var p = resolved.P;
        var device = inputs.U.Device;
        ArgumentNullException.ThrowIfNull(forward);
        TensorChecks.Input(device, dOut, resolved.Sequence, nameof(dOut));
        TensorChecks.Input(device, forward.ChunkStates, resolved.ChunkState, "forward.ChunkStates");
        if (p.HasZ)
            TensorChecks.Input(device, forward.PreGate ?? throw new ArgumentException(
                "inputs.Z is given but forward.PreGate is null: pass the result of Forward with the same inputs.", nameof(forward)),
                resolved.Sequence, "forward.PreGate");
        if (gradients is not null)
        {
            ReadNotAliased(device, gradients.DU, true, resolved.Sequence, "gradients.DU", dOut, inputs, forward, optional: false);
            ReadNotAliased(device, gradients.DDelta, true, resolved.Sequence, "gradients.DDelta", dOut, inputs, forward, optional: false);
            ReadNotAliased(device, gradients.DA, true, resolved.A, "gradients.DA", dOut, inputs, forward, optional: false);
            ReadNotAliased(device, gradients.DB, true, resolved.Projection, "gradients.DB", dOut, inputs, forward, optional: false);
            ReadNotAliased(device, gradients.DC, true, resolved.Projection, "gradients.DC", dOut, inputs, forward, optional: false);
            ReadNotAliased(device, gradients.DD, p.HasD, resolved.Channel, "gradients.DD", dOut, inputs, forward);
            ReadNotAliased(device, gradients.DZ, p.HasZ, resolved.Sequence, "gradients.DZ", dOut, inputs, forward);
            ReadNotAliased(device, gradients.DDeltaBias, p.HasDeltaBias, resolved.Channel, "gradients.DDeltaBias", dOut, inputs, forward);
            ReadNotAliased(device, gradients.DInitialState, p.HasInitialState, resolved.State, "gradients.DInitialState", dOut, inputs, forward);
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

    // The names of SelectiveScanInputs' tensors, in the order of Tensors(inputs).
    private static readonly string[] InputNames =
        ["inputs.U", "inputs.Delta", "inputs.A", "inputs.B", "inputs.C", "inputs.D", "inputs.Z", "inputs.DeltaBias", "inputs.InitialState"];

    private static Resolved Validate(SelectiveScanInputs inputs, SelectiveScanOptions? options)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ReadOnlySpan<Tensor?> tensors = [inputs.U, inputs.Delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.Z, inputs.DeltaBias, inputs.InitialState];
        for (var i = 0; i < tensors.Length; i++)
            if (i < 5 || tensors[i] is not null) TensorChecks.NotNull(tensors[i], InputNames[i]);
        var device = inputs.U.Device;
        device.ThrowIfDisposed();
        for (var i = 0; i < tensors.Length; i++)
            if (tensors[i] is { } t) TensorChecks.SameDevice(device, t, InputNames[i]);
        return Resolved.Get(inputs, options);
    }

    // The last problems this thread resolved (one per layer of a model, up to Slots), with their shapes, reused while the
    // inputs record and the options object are the same (both immutable, and so are tensors' shapes), so a training
    // step's calls do not allocate them again.
    private sealed class Resolved
    {
        private const int Slots = 16;
        [ThreadStatic] private static Resolved?[]? recent;
        [ThreadStatic] private static int next;

        private SelectiveScanInputs? inputs;
        private SelectiveScanOptions? options;

        private Resolved(SelectiveScanParams p) => P = p;

        public SelectiveScanParams P { get; }
        public int[] Sequence { get; private init; } = [];
        public int[] A { get; private init; } = [];
        public int[] Projection { get; private init; } = [];
        public int[] Channel { get; private init; } = [];
        public int[] State { get; private init; } = [];
        public int[] ChunkState { get; private init; } = [];

        public static Resolved Get(SelectiveScanInputs x, SelectiveScanOptions? options)
        {
            var slots = recent ??= new Resolved?[Slots];
            foreach (var hit in slots)
                if (hit is not null && ReferenceEquals(hit.inputs, x) && ReferenceEquals(hit.options, options)) return hit;
            var p = SelectiveScanParams.Resolve(x.U.Shape.ToArray(), x.Delta.Shape.ToArray(), x.A.Shape.ToArray(),
                x.B.Shape.ToArray(), x.C.Shape.ToArray(), x.D?.Shape.ToArray(), x.Z?.Shape.ToArray(),
                x.DeltaBias?.Shape.ToArray(), x.InitialState?.Shape.ToArray(), options);
            var resolved = new Resolved(p)
            {
                inputs = x, options = options, Sequence = p.SequenceShape, A = p.AShape, Projection = p.ProjectionShape,
                Channel = p.ChannelShape, State = p.StateShape, ChunkState = p.ChunkStateShape,
            };
            slots[next] = resolved;
            next = (next + 1) % Slots;
            return resolved;
        }
    }

    // A gradient output, present exactly when wanted, not overlapping anything the backward reads.
    private static void ReadNotAliased(Device device, Tensor? t, bool wanted, ReadOnlySpan<int> shape, string name, Tensor dOut,
        SelectiveScanInputs x, SelectiveScanOutput forward, bool optional = true)
    {
        if (!wanted)
        {
            if (t is not null) throw new ArgumentException($"{name} is given but its input is absent; pass null.", name);
            return;
        }
        if (t is null && optional) throw new ArgumentException($"{name} is null but its input is given; preallocate it {Tensor.Format(shape)}.", name);
        TensorChecks.Output(device, t, shape, name, dOut, forward.ChunkStates, forward.PreGate,
            x.U, x.Delta, x.A, x.B, x.C, x.D, x.Z, x.DeltaBias, x.InitialState);
    }

    // Finite everywhere, and A <= 0 (see the file header for why positive A is rejected).
    private static void CheckValues(SelectiveScanInputs inputs)
    {
        ReadOnlySpan<Tensor?> tensors = [inputs.U, inputs.Delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.Z, inputs.DeltaBias, inputs.InitialState];
        for (var i = 0; i < tensors.Length; i++)
            if (tensors[i] is { } t) TensorChecks.Finite(t, InputNames[i]);
        var device = inputs.A.Device;
        if (device.ActiveStep is { } step)
        {
            // Inside a training step: deferred like every other check (one kernel into the step's flags, no read-back).
            if (step.Checks == StepChecks.Off) return;
            var slot = step.Claim(new TrainingStep.Slot(TrainingStep.SlotKind.Positive, "inputs.A", "SelectiveScan", inputs.A, 0, 0f));
            if (device.IsIlgpu)
            {
                var kernel = device.GetKernel("FiniteCheck.FirstPositive", static acc => acc.LoadAutoGroupedStreamKernel<Index1D,
                    ArrayView1D<float, Stride1D.Dense>, ArrayView1D<int, Stride1D.Dense>>(Kernels.Common.FiniteCheck.FirstPositiveKernel));
                kernel(inputs.A.Length, inputs.A.View, step.SlotView(slot));
            }
            else
            {
                var host = inputs.A.HostSpan;
                var first = int.MaxValue;
                for (var i = 0; i < host.Length && first == int.MaxValue; i++) if (host[i] > 0f) first = i;
                step.SetHostSlot(slot, first);
            }
            return;
        }
        ReadOnlySpan<float> a = device.IsIlgpu ? inputs.A.ToArray() : inputs.A.HostSpan;
        var states = inputs.A.Shape[1];
        for (var i = 0; i < a.Length; i++)
            if (a[i] > 0f)
                throw new ArgumentException(
                    $"inputs.A {Tensor.Format(inputs.A.ShapeSpan)} holds {a[i]} > 0 at [{i / states}, {i % states}]; " +
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
