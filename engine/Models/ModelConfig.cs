// The configuration of a byte-level causal language model (issue 11): embedding, L blocks of
// [LayerNorm -> mixer -> residual, LayerNorm -> MLP (4W, GELU tanh) -> residual], final LayerNorm, head over 256 bytes.
namespace RouteKit.Engine.Models;

/// <summary>Which router mixes tokens in each block.</summary>
public enum MixerKind
{
    /// <summary>Causal softmax attention (Dot or Distance scores, optional NormalizeKeys and ALiBi brake).</summary>
    Attention,
    /// <summary>Mamba's selective SSM block (in-projection, causal conv, SiLU, x/dt projections, selective scan, gate, out-projection).</summary>
    Mamba,
    /// <summary>Griffin's RG-LRU over the linear recurrence, with output projection.</summary>
    Recurrent,
}

/// <summary>Hyper-parameters of a <see cref="ByteLanguageModel"/>; <see cref="Validate"/> says what is wrong in one line.</summary>
public sealed record ModelConfig
{
    /// <summary>Bytes: every model reads and predicts one of 256 values.</summary>
    public const int Vocabulary = 256;

    /// <summary>Griffin's RG-LRU constant c, for which Λ is initialised (a^c uniform in [0.9, 0.999]) whatever c is.</summary>
    public const float GriffinC = 8f;

    /// <summary>The token mixer of every block.</summary>
    public MixerKind Mixer { get; init; } = MixerKind.Attention;
    /// <summary>Number of blocks L.</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Model width W (the residual stream's channels).</summary>
    public int Width { get; init; } = 64;
    /// <summary>Context length T in bytes.</summary>
    public int Context { get; init; } = 64;
    /// <summary>Attention heads (Width must be a multiple).</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Attention scores: Dot (q.k) or Distance (-|q - k|^2 / 2 in the scaled frame).</summary>
    public Score Score { get; init; } = Score.Dot;
    /// <summary>Attention keys normalised to the common norm before scoring.</summary>
    public bool NormalizeKeys { get; init; }
    /// <summary>
    /// The positional brake: for attention, the factor on ALiBi's slopes (0: none); for the recurrent mixer, the RG-LRU
    /// constant c (Griffin uses 8). Mamba has none (its decay is learned per token).
    /// </summary>
    public float Brake { get; init; } = 8f;
    /// <summary>
    /// Mamba's brake: a fixed factor m on its decay rates, A = -m exp(A_log), so exp(Δ A) forgets m times faster per
    /// unit Δ (1: Mamba as published). Scaling A rather than Δ leaves the input term Δ B x alone, so only the decay, the
    /// positional part of the implicit attention, moves.
    /// </summary>
    public float DecayScale { get; init; } = 1f;
    /// <summary>
    /// Ablation (issue 12): the routing weights come from position alone. The projections that make a mixer's routing
    /// weights (attention's queries and keys, Mamba's Δ, B and C, the RG-LRU's recurrence and input gates) read a
    /// constant input of ones instead of the token representation, so every token is routed by the same learned
    /// position-only rule (attention: the brake's bias alone; Mamba and RG-LRU: a learned time-invariant decay). The
    /// values routed (attention's V, Mamba's u and gate z, the RG-LRU's x) still come from the tokens.
    /// </summary>
    public bool ContentFree { get; init; }
    /// <summary>
    /// Depth routing (issue 13): block l reads a <see cref="DepthRouter"/> mix of the embedding and every earlier block's
    /// output, <c>x_l = sum_{j &lt;= l} softmax_j(score(q_l, k_j) - m (l - j)) o_j</c>, instead of o_l alone (o_0 the
    /// embedding, o_{j+1} block j's output). Keys k_j = LN_j(o_j) (one LayerNorm per depth), query q_l = W_q,l LN_l(o_l),
    /// Heads heads of Width/Heads channels. A large brake m gives back the plain residual model, x_l = o_l.
    /// </summary>
    public bool DepthRouted { get; init; }
    /// <summary>The depth router's scores (Dot or Distance).</summary>
    public Score DepthScore { get; init; } = Score.Dot;
    /// <summary>The depth router's keys normalised to the common norm before scoring.</summary>
    public bool DepthNormalizeKeys { get; init; }
    /// <summary>The depth brake m &gt;= 0: z_lj -= m (l - j), a preference for the latest layers (every head).</summary>
    public float DepthBrake { get; init; }
    /// <summary>Mamba's expansion: inner channels E = Expand x Width.</summary>
    public int Expand { get; init; } = 2;
    /// <summary>Mamba's states per channel N.</summary>
    public int States { get; init; } = 16;
    /// <summary>Mamba's causal convolution width.</summary>
    public int ConvWidth { get; init; } = 4;
    /// <summary>Share the embedding table with the output head (tied) or not.</summary>
    public bool TiedHead { get; init; }
    /// <summary>Seed of the parameter initialisation.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Mamba's inner channels E.</summary>
    public int Inner => Expand * Width;
    /// <summary>Mamba's Δ rank R = ceil(W / 16).</summary>
    public int DeltaRank => (Width + 15) / 16;
    /// <summary>Channels per attention head.</summary>
    public int HeadDim => Width / Heads;

    /// <summary>Null when the configuration is usable, else one line saying what is wrong.</summary>
    public string? Validate()
    {
        if (!Enum.IsDefined(Mixer)) return $"mixer {Mixer} is not one of attention, mamba, recurrent.";
        if (Layers < 1 || Layers > 64) return $"--layers {Layers}: wanted 1 to 64.";
        if (Width < 2 || Width > 4096) return $"--width {Width}: wanted 2 to 4096.";
        if (Context < 1 || Context > 8192) return $"--context {Context}: wanted 1 to 8192.";
        if (!float.IsFinite(Brake) || Brake < 0) return $"--brake {Brake}: wanted a finite value >= 0.";
        if (!float.IsFinite(DecayScale) || DecayScale <= 0 || DecayScale > 1e4f) return $"--decay-scale {DecayScale}: wanted a value in (0, 1e4].";
        if (Mixer == MixerKind.Attention)
        {
            if (Heads < 1 || Width % Heads != 0) return $"--heads {Heads}: the width {Width} must be a multiple of the head count.";
            if (HeadDim > 256) return $"--width {Width} / --heads {Heads} gives {HeadDim} channels per head; attention supports at most 256.";
        }
        if (!Enum.IsDefined(DepthScore)) return $"depth score {DepthScore} is not one of dot, distance.";
        if (!float.IsFinite(DepthBrake) || DepthBrake < 0) return $"--depth-brake {DepthBrake}: wanted a finite value >= 0.";
        if (DepthRouted)
        {
            if (Heads < 1 || Width % Heads != 0) return $"--heads {Heads}: the depth router splits the width {Width} into heads; it must be a multiple of the head count.";
            if (HeadDim > 256) return $"--width {Width} / --heads {Heads} gives {HeadDim} channels per depth-router head; at most 256.";
        }
        if (Mixer == MixerKind.Recurrent && Brake <= 0) return $"--brake {Brake}: the recurrent mixer's c must be > 0.";
        if (Mixer == MixerKind.Mamba)
        {
            if (Expand < 1 || Expand > 8) return $"--expand {Expand}: wanted 1 to 8.";
            if (States < 1 || States > SelectiveScanParams.MaxStates) return $"--states {States}: wanted 1 to {SelectiveScanParams.MaxStates}.";
            if (ConvWidth < 1 || ConvWidth > 8) return $"--conv-width {ConvWidth}: wanted 1 to 8.";
        }
        return null;
    }
}
