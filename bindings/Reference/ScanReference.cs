// Selective scan (Mamba S6) and linear recurrence, the executable spec (DESIGN.md section 4): the literal recurrences
// step by step, every state kept, generic so the same code runs in float64 (the reference) and float32 (the "naive
// float32" of the 2x rule). Never used for speed.
//
// Shapes: B batch, Dc channels, L time steps, Nst states, G groups (channel d reads group d / (Dc / G)) for the
// selective scan; B batch, C channels, T time steps for the linear recurrence.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>The inputs of a reference selective scan, flat row-major arrays (optional ones null when absent).</summary>
public sealed record SelectiveScanReferenceInputs<T>(
    T[] U, T[] Delta, T[] A, T[] B, T[] C, T[]? D = null, T[]? Z = null, T[]? DeltaBias = null, T[]? InitialState = null);

/// <summary>Forward results of the reference: out <c>[B, Dc, L]</c> and the last state <c>[B, Dc, Nst]</c>.</summary>
public sealed record SelectiveScanReferenceOutput<T>(T[] Output, T[] LastState);

/// <summary>Gradients of the reference (zero-length arrays for inputs that were absent).</summary>
public sealed record SelectiveScanReferenceGradients<T>(
    T[] DU, T[] DDelta, T[] DA, T[] DB, T[] DC, T[] DD, T[] DZ, T[] DDeltaBias, T[] DInitialState);

/// <summary>Naive selective scan and linear recurrence: the spec every backend is tested against.</summary>
public static class ScanReference
{
    /// <summary>softplus(x) = log(1 + e^x), x itself above PyTorch's threshold 20.</summary>
    public static T Softplus<T>(T x) where T : IFloatingPointIeee754<T> =>
        x > T.CreateChecked(20) ? x : T.LogP1(T.Exp(x));

    /// <summary>1 / (1 + e^-x).</summary>
    public static T Sigmoid<T>(T x) where T : IFloatingPointIeee754<T> => T.One / (T.One + T.Exp(-x));

    private static T Raw<T>(SelectiveScanParams p, SelectiveScanReferenceInputs<T> x, int d, long i)
        where T : IFloatingPointIeee754<T> => x.Delta[i] + (x.DeltaBias is null ? T.Zero : x.DeltaBias[d]);

    private static T Dt<T>(SelectiveScanParams p, T raw) where T : IFloatingPointIeee754<T> =>
        p.DeltaSoftplus ? Softplus(raw) : raw;

    private static long BcIndex(SelectiveScanParams p, int b, int d, int n, int l) =>
        (((long)b * p.G + d / (p.Dc / p.G)) * p.Nst + n) * p.L + l;

    /// <summary>
    /// <c>h_l = exp(dt_l A) h_{l-1} + dt_l B_l u_l</c>, <c>y_l = C_l . h_l + D u_l</c>, <c>out = y silu(z)</c>; also
    /// returns every state <c>[B, Dc, L, Nst]</c> (for the backward) and y before the gate <c>[B, Dc, L]</c>.
    /// </summary>
    public static (SelectiveScanReferenceOutput<T> Result, T[] States, T[] PreGate) ForwardWithStates<T>(
        SelectiveScanParams p, SelectiveScanReferenceInputs<T> x) where T : IFloatingPointIeee754<T>
    {
        var output = new T[(long)p.B * p.Dc * p.L];             // [B, Dc, L]
        var preGate = new T[output.Length];                      // [B, Dc, L]
        var last = new T[(long)p.B * p.Dc * p.Nst];              // [B, Dc, Nst]
        var states = new T[(long)p.B * p.Dc * p.L * p.Nst];      // [B, Dc, L, Nst]
        for (var b = 0; b < p.B; b++)
        for (var d = 0; d < p.Dc; d++)
        {
            var row = b * p.Dc + d;
            var h = new T[p.Nst];
            if (x.InitialState is not null) Array.Copy(x.InitialState, (long)row * p.Nst, h, 0, p.Nst);
            for (var l = 0; l < p.L; l++)
            {
                var i = (long)row * p.L + l;
                var dt = Dt(p, Raw(p, x, d, i));
                var y = T.Zero;
                for (var n = 0; n < p.Nst; n++)
                {
                    var bc = BcIndex(p, b, d, n, l);
                    h[n] = T.Exp(dt * x.A[d * p.Nst + n]) * h[n] + dt * x.B[bc] * x.U[i];
                    y += x.C[bc] * h[n];
                    states[i * p.Nst + n] = h[n];
                }
                if (x.D is not null) y += x.D[d] * x.U[i];
                preGate[i] = y;
                output[i] = x.Z is null ? y : y * x.Z[i] * Sigmoid(x.Z[i]);
            }
            Array.Copy(h, 0, last, (long)row * p.Nst, p.Nst);
        }
        return (new SelectiveScanReferenceOutput<T>(output, last), states, preGate);
    }

    /// <summary>The forward pass: out and the last state.</summary>
    public static SelectiveScanReferenceOutput<T> Forward<T>(SelectiveScanParams p, SelectiveScanReferenceInputs<T> x)
        where T : IFloatingPointIeee754<T> => ForwardWithStates(p, x).Result;

    /// <summary>
    /// The backward pass for <c>dOut = dL/dout</c>, by the chain rule through the literal recurrence, last step first:
    /// <c>dh_l = g_l C_l + exp(dt_{l+1} A) dh_{l+1}</c> with <c>g = dOut silu(z)</c>.
    /// </summary>
    public static SelectiveScanReferenceGradients<T> Backward<T>(
        SelectiveScanParams p, SelectiveScanReferenceInputs<T> x, T[] dOut) where T : IFloatingPointIeee754<T>
    {
        var (_, states, preGate) = ForwardWithStates(p, x);
        var seq = (long)p.B * p.Dc * p.L;
        T[] du = new T[seq], dDelta = new T[seq], dz = new T[x.Z is null ? 0 : seq];    // [B, Dc, L]
        var dA = new T[p.Dc * p.Nst];                                                    // [Dc, Nst]
        T[] dB = new T[x.B.Length], dC = new T[x.C.Length];                              // [B, G, Nst, L]
        var dD = new T[x.D is null ? 0 : p.Dc];                                          // [Dc]
        var dBias = new T[x.DeltaBias is null ? 0 : p.Dc];                               // [Dc]
        var dH0 = new T[x.InitialState is null ? 0 : p.B * p.Dc * p.Nst];                // [B, Dc, Nst]
        for (var b = 0; b < p.B; b++)
        for (var d = 0; d < p.Dc; d++)
        {
            var row = b * p.Dc + d;
            var dh = new T[p.Nst]; // dL/dh_l, built from the end
            for (var l = p.L - 1; l >= 0; l--)
            {
                var i = (long)row * p.L + l;
                var gate = dOut[i];
                if (x.Z is not null)
                {
                    var zv = x.Z[i];
                    var s = Sigmoid(zv);
                    gate = dOut[i] * zv * s;
                    dz[i] = dOut[i] * preGate[i] * s * (T.One + zv * (T.One - s));
                }
                var raw = Raw(p, x, d, i);
                var dt = Dt(p, raw);
                if (x.D is not null)
                {
                    dD[d] += gate * x.U[i];
                    du[i] += gate * x.D[d];
                }
                var dtGrad = T.Zero;
                for (var n = 0; n < p.Nst; n++)
                {
                    var bc = BcIndex(p, b, d, n, l);
                    var an = x.A[d * p.Nst + n];
                    var decay = T.Exp(dt * an);
                    var h = states[i * p.Nst + n];
                    var hPrev = l > 0 ? states[(i - 1) * p.Nst + n]
                        : x.InitialState is null ? T.Zero : x.InitialState[(long)row * p.Nst + n];
                    dC[bc] += gate * h;
                    dh[n] += gate * x.C[bc];
                    var dDecay = dh[n] * hPrev;
                    dA[d * p.Nst + n] += dDecay * decay * dt;
                    dtGrad += dDecay * decay * an + dh[n] * x.B[bc] * x.U[i];
                    du[i] += dh[n] * dt * x.B[bc];
                    dB[bc] += dh[n] * dt * x.U[i];
                    dh[n] *= decay; // now dL/dh_{l-1} from this step
                }
                var act = p.DeltaSoftplus ? (raw > T.CreateChecked(20) ? T.One : Sigmoid(raw)) : T.One;
                dDelta[i] = dtGrad * act;
                if (x.DeltaBias is not null) dBias[d] += dDelta[i];
            }
            if (x.InitialState is not null) Array.Copy(dh, 0, dH0, (long)row * p.Nst, p.Nst);
        }
        return new SelectiveScanReferenceGradients<T>(du, dDelta, dA, dB, dC, dD, dz, dBias, dH0);
    }

    /// <summary>
    /// <c>h_t = a_t h_{t-1} + x_t</c> over a, x <c>[B, C, T]</c> with h_{-1} = h0 <c>[B, C]</c> (or 0); returns every h.
    /// </summary>
    public static T[] RecurrenceForward<T>(int batch, int channels, int steps, T[] a, T[] x, T[]? h0)
        where T : IFloatingPointIeee754<T>
    {
        var h = new T[a.Length]; // [B, C, T]
        for (var row = 0; row < batch * channels; row++)
        {
            var state = h0 is null ? T.Zero : h0[row];
            for (var t = 0; t < steps; t++)
            {
                var i = (long)row * steps + t;
                state = a[i] * state + x[i];
                h[i] = state;
            }
        }
        return h;
    }

    /// <summary>
    /// Gradients for <c>dH = dL/dh</c>: <c>dh_t = dH_t + a_{t+1} dh_{t+1}</c>, dX = dh, <c>dA_t = dh_t h_{t-1}</c>,
    /// <c>dH0 = a_0 dh_0</c> (zero-length without h0).
    /// </summary>
    public static (T[] DA, T[] DX, T[] DH0) RecurrenceBackward<T>(
        int batch, int channels, int steps, T[] a, T[] x, T[]? h0, T[] dH) where T : IFloatingPointIeee754<T>
    {
        var h = RecurrenceForward(batch, channels, steps, a, x, h0);
        T[] dA = new T[a.Length], dX = new T[a.Length]; // [B, C, T]
        var dH0 = new T[h0 is null ? 0 : batch * channels]; // [B, C]
        for (var row = 0; row < batch * channels; row++)
        {
            var carry = T.Zero;
            for (var t = steps - 1; t >= 0; t--)
            {
                var i = (long)row * steps + t;
                var dh = dH[i] + carry;
                dX[i] = dh;
                dA[i] = dh * (t > 0 ? h[i - 1] : h0 is null ? T.Zero : h0[row]);
                carry = a[i] * dh;
            }
            if (h0 is not null) dH0[row] = carry;
        }
        return (dA, dX, dH0);
    }
}
