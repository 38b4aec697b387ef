// All parameters of a model in one flat buffer, and their gradients and AdamW moments in three more of the same
// layout (llm.c's layout): one optimizer launch, one clipping launch, one checkpoint write per buffer, and no
// allocation per step. Each named parameter is a view (Tensor.Slice) of the flat buffer.
namespace RouteKit.Engine.Models;

/// <summary>How a parameter starts.</summary>
/// <param name="Kind">The distribution.</param>
/// <param name="A">Normal: standard deviation; Uniform: half-width; Constant: the value.</param>
public readonly record struct Init(InitKind Kind, double A)
{
    /// <summary>N(0, std^2).</summary>
    public static Init Normal(double std) => new(InitKind.Normal, std);
    /// <summary>U(-half, half).</summary>
    public static Init Uniform(double half) => new(InitKind.Uniform, half);
    /// <summary>Every element equals value.</summary>
    public static Init Constant(double value) => new(InitKind.Constant, value);
    /// <summary>Filled by the caller's function of (row-major index, generator).</summary>
    public static Init Custom => new(InitKind.Custom, 0);
}

/// <summary>Distributions of <see cref="Init"/>.</summary>
public enum InitKind
{
    /// <summary>Normal with mean 0.</summary>
    Normal,
    /// <summary>Uniform and symmetric about 0.</summary>
    Uniform,
    /// <summary>One value everywhere.</summary>
    Constant,
    /// <summary>A function of the element's index.</summary>
    Custom,
}

/// <summary>One named parameter: its shape, where it lives in the flat buffer, and whether weight decay applies.</summary>
public sealed record ParameterInfo(string Name, int[] Shape, int Offset, int Length, bool Decay, Init Init,
    Func<int, SplitMix64, double>? Custom);

/// <summary>The flat parameter, gradient and moment buffers of one model, and the named views into them.</summary>
public sealed class ParameterStore : IDisposable
{
    private readonly List<ParameterInfo> infos = [];
    private readonly Dictionary<string, int> byName = [];
    private Tensor[] values = [];
    private Tensor[] grads = [];

    /// <summary>Declares a parameter (before <see cref="Allocate"/>); returns its index.</summary>
    public int Declare(string name, int[] shape, bool decay, Init init, Func<int, SplitMix64, double>? custom = null)
    {
        if (Values is not null) throw new InvalidOperationException("Parameters are declared before Allocate.");
        var length = shape.Aggregate(1, (a, b) => checked(a * b));
        var offset = infos.Count == 0 ? 0 : infos[^1].Offset + infos[^1].Length;
        infos.Add(new ParameterInfo(name, shape, offset, length, decay, init, custom));
        byName.Add(name, infos.Count - 1);
        return infos.Count - 1;
    }

    /// <summary>Every parameter, in layout order.</summary>
    public IReadOnlyList<ParameterInfo> Infos => infos;

    /// <summary>Total number of parameters.</summary>
    public int Count => infos.Count == 0 ? 0 : infos[^1].Offset + infos[^1].Length;

    /// <summary>The flat parameters [Count].</summary>
    public Tensor Values { get; private set; } = null!;
    /// <summary>The flat gradients [Count] (same layout).</summary>
    public Tensor Gradients { get; private set; } = null!;
    /// <summary>AdamW's first moments [Count].</summary>
    public Tensor M { get; private set; } = null!;
    /// <summary>AdamW's second moments [Count].</summary>
    public Tensor V { get; private set; } = null!;
    /// <summary>Where weight decay applies (matrices and embeddings, not biases or norm gains).</summary>
    public DecayMask Decay { get; private set; } = null!;

    /// <summary>The view of parameter <paramref name="index"/>.</summary>
    public Tensor this[int index] => values[index];

    /// <summary>The gradient view of parameter <paramref name="index"/>.</summary>
    public Tensor Grad(int index) => grads[index];

    /// <summary>The index of the parameter named <paramref name="name"/>.</summary>
    public int IndexOf(string name) => byName[name];

    /// <summary>Allocates the four buffers on <paramref name="device"/> and initialises the parameters from <paramref name="seed"/>.</summary>
    public void Allocate(Device device, int seed)
    {
        var n = Count;
        var host = new float[n];
        var rng = new SplitMix64((ulong)seed * 0x9E3779B97F4A7C15UL + 0x1234567UL);
        foreach (var p in infos)
        {
            var span = host.AsSpan(p.Offset, p.Length);
            for (var i = 0; i < span.Length; i++)
                span[i] = (float)(p.Init.Kind switch
                {
                    InitKind.Normal => p.Init.A * rng.NextNormal(),
                    InitKind.Uniform => p.Init.A * (2 * rng.NextDouble() - 1),
                    InitKind.Constant => p.Init.A,
                    _ => p.Custom!(i, rng),
                });
        }
        Values = device.FromArray(host, n);
        Gradients = device.Zeros(n);
        M = device.Zeros(n);
        V = device.Zeros(n);
        Decay = DecayMask.Create(device, n, infos.Select(p => new ParameterSegment(p.Offset, p.Length, p.Decay)));
        values = infos.Select(p => Values.Slice(p.Offset, p.Shape)).ToArray();
        grads = infos.Select(p => Gradients.Slice(p.Offset, p.Shape)).ToArray();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Values?.Dispose();
        Gradients?.Dispose();
        M?.Dispose();
        V?.Dispose();
        Decay?.Dispose();
    }
}

/// <summary>
/// SplitMix64 (Steele, Lea and Flood 2014): a 64-bit generator whose whole state is one ulong, so a checkpoint stores it
/// exactly and a resumed run draws the same numbers. A class, so callers share one stream.
/// </summary>
public sealed class SplitMix64(ulong state)
{
    /// <summary>The whole state.</summary>
    public ulong State { get; set; } = state;

    /// <summary>The next 64 random bits.</summary>
    public ulong Next()
    {
        var z = State += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n) (n &gt;= 1), by rejection, so unbiased.</summary>
    public long NextInt(long n)
    {
        var limit = ulong.MaxValue - ulong.MaxValue % (ulong)n;
        ulong x;
        do x = Next(); while (x >= limit);
        return (long)(x % (ulong)n);
    }

    /// <summary>Standard normal (Box-Muller, one of the pair).</summary>
    public double NextNormal()
    {
        var u1 = 1.0 - NextDouble();
        var u2 = NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
