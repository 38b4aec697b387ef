using RouteKit.Reference;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>
/// One selective-scan test problem: B batch, Dc channels, L time steps, Nst states, G groups (0 = ungrouped B/C
/// <c>[B, Nst, L]</c>), which optional inputs are present, and the decay range A dt spans.
/// </summary>
public sealed record ScanCase(
    int B, int Dc, int L, int Nst, int G = 0,
    bool D = false, bool Z = false, bool DeltaBias = false, bool Softplus = false, bool InitialState = false,
    double MinDecay = 0, double MaxDecay = 0)
{
    /// <summary>True when A dt is pinned to the range [-MaxDecay, -MinDecay] (dt = 1, no softplus).</summary>
    public bool ExtremeDecays => MaxDecay > 0;

    /// <summary>The options this case runs with.</summary>
    public SelectiveScanOptions Options(bool deterministic = true) =>
        new() { DeltaSoftplus = Softplus, Deterministic = deterministic };

    /// <summary>B and C's shape.</summary>
    public int[] ProjectionShape => G == 0 ? [B, Nst, L] : [B, G, Nst, L];

    /// <summary>The resolved parameters.</summary>
    public SelectiveScanParams Params => SelectiveScanParams.Resolve([B, Dc, L], [B, Dc, L], [Dc, Nst], ProjectionShape,
        ProjectionShape, D ? [Dc] : null, Z ? [B, Dc, L] : null, DeltaBias ? [Dc] : null, InitialState ? [B, Dc, Nst] : null,
        Options());

    /// <summary>
    /// Seeded inputs and dOut. A = -exp(N(0, 0.5)) as Mamba initialises it (or log-spaced over the extreme range);
    /// delta keeps dt positive: 0.05 + 0.5 |N| without softplus, N - 1 with it. C is scaled by 1/sqrt(Nst) so y stays
    /// O(1) for every Nst: the 2x rule's 1e-6 floor then sits well above one float32 ulp of the outputs.
    /// </summary>
    public (SelectiveScanReferenceInputs<float> Inputs, float[] DOut) Data(int seed = 1)
    {
        var seq = B * Dc * L;
        var proj = B * Math.Max(G, 1) * Nst * L;
        var u = TestData.Normal(seq, seed);
        var delta = TestData.Normal(seq, seed + 1);
        var a = TestData.Normal(Dc * Nst, seed + 2, 0.5f);
        if (ExtremeDecays)
        {
            Array.Fill(delta, 1f);
            var logMin = Math.Log(MinDecay);
            var logMax = Math.Log(MaxDecay);
            for (var i = 0; i < a.Length; i++)
                a[i] = (float)-Math.Exp(logMin + (logMax - logMin) * i / Math.Max(1, a.Length - 1));
        }
        else
        {
            for (var i = 0; i < seq; i++) delta[i] = Softplus ? delta[i] - 1f : 0.05f + 0.5f * Math.Abs(delta[i]);
            for (var i = 0; i < a.Length; i++) a[i] = -MathF.Exp(a[i]);
        }
        var inputs = new SelectiveScanReferenceInputs<float>(
            u, delta, a, TestData.Normal(proj, seed + 3), TestData.Normal(proj, seed + 4, 1f / MathF.Sqrt(Nst)),
            D ? TestData.Normal(Dc, seed + 5) : null,
            Z ? TestData.Normal(seq, seed + 6) : null,
            DeltaBias ? Array.ConvertAll(TestData.Normal(Dc, seed + 7, 0.05f), Math.Abs) : null,
            InitialState ? TestData.Normal(B * Dc * Nst, seed + 8) : null);
        return (inputs, TestData.Normal(seq, seed + 9));
    }

    /// <summary>The same inputs widened to float64.</summary>
    public static SelectiveScanReferenceInputs<double> Widen(SelectiveScanReferenceInputs<float> x) => new(
        TestData.ToDouble(x.U), TestData.ToDouble(x.Delta), TestData.ToDouble(x.A), TestData.ToDouble(x.B), TestData.ToDouble(x.C),
        Opt(x.D), Opt(x.Z), Opt(x.DeltaBias), Opt(x.InitialState));

    private static double[]? Opt(float[]? x) => x is null ? null : TestData.ToDouble(x);

    /// <inheritdoc />
    public override string ToString() =>
        $"B{B} Dc{Dc} L{L} Nst{Nst}{(G > 0 ? $" G{G}" : "")}{(D ? " D" : "")}{(Z ? " z" : "")}{(DeltaBias ? " bias" : "")}" +
        $"{(Softplus ? " softplus" : "")}{(InitialState ? " h0" : "")}{(ExtremeDecays ? $" decay {MinDecay:G2}..{MaxDecay:G2}" : "")}";
}
