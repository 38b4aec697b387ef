// The SIMD widths of the Managed backend as static-member strategies: a kernel is written once, generic over
// ISimdWidth<TVector>, and specialised at start-up to the widest width the hardware accelerates (Vector512 on
// AVX-512, Vector256 on AVX2, Vector128 on SSE and Arm NEON), so no machine runs an emulated width (Vector512 code on
// a 128-bit machine runs about 300x slower). Used by every Managed kernel with explicit vectors (Sgemm, ManagedKernels and AttentionManaged,
// SelectiveScanManaged, Conv1dManaged, FeatureNormsManaged).
//
// Multiply-add is MultiplyAddEstimate: fused where the hardware has FMA, a multiply then an add where it does not,
// never the software-emulated fused operation (.NET groups FMA with AVX2, so DOTNET_EnableAVX2=0 may turn it off).
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace RouteKit;

/// <summary>One SIMD width's operations on float vectors, as static members a generic kernel is specialised over.</summary>
/// <typeparam name="TVector">Vector128&lt;float&gt;, Vector256&lt;float&gt; or Vector512&lt;float&gt;.</typeparam>
internal unsafe interface ISimdWidth<TVector> where TVector : struct
{
    /// <summary>Floats per vector.</summary>
    static abstract int Lanes { get; }

    /// <summary>All zeros.</summary>
    static abstract TVector Zero { get; }

    /// <summary>Loads <see cref="Lanes"/> floats (unaligned).</summary>
    static abstract TVector Load(float* p);

    /// <summary>Loads <see cref="Lanes"/> floats at <paramref name="offset"/> from a reference (unaligned).</summary>
    static abstract TVector Load(ref float p, nuint offset);

    /// <summary>Stores <see cref="Lanes"/> floats (unaligned).</summary>
    static abstract void Store(TVector v, float* p);

    /// <summary>Every lane <paramref name="value"/>.</summary>
    static abstract TVector Broadcast(float value);

    /// <summary>a b + c, fused where the hardware has FMA.</summary>
    static abstract TVector MultiplyAdd(TVector a, TVector b, TVector c);

    /// <summary>a + b.</summary>
    static abstract TVector Add(TVector a, TVector b);

    /// <summary>|v| per lane.</summary>
    static abstract TVector Abs(TVector v);

    /// <summary>Per-lane max with Vector.Max's semantics (NaN wins, +0 &gt; -0).</summary>
    static abstract TVector Max(TVector a, TVector b);

    /// <summary>count + (v &gt; 0 ? 1 : 0) per lane.</summary>
    static abstract TVector CountPositive(TVector count, TVector v);

    /// <summary>The sum of the lanes, in float64.</summary>
    static abstract double SumWidened(TVector v);

    /// <summary>The largest lane.</summary>
    static abstract float MaxAcross(TVector v);

    /// <summary>Stores <see cref="Lanes"/> floats at <paramref name="offset"/> from a reference (unaligned).</summary>
    static abstract void Store(TVector v, ref float p, nuint offset);

    /// <summary>a - b.</summary>
    static abstract TVector Subtract(TVector a, TVector b);

    /// <summary>a b.</summary>
    static abstract TVector Multiply(TVector a, TVector b);

    /// <summary>Per-lane min with Vector.Min's semantics.</summary>
    static abstract TVector Min(TVector a, TVector b);

    /// <summary>All-ones lanes where a &lt; b.</summary>
    static abstract TVector LessThan(TVector a, TVector b);

    /// <summary>All-ones lanes where a &gt; b.</summary>
    static abstract TVector GreaterThan(TVector a, TVector b);

    /// <summary>Bitwise a | b (masks).</summary>
    static abstract TVector Or(TVector a, TVector b);

    /// <summary>Per lane: <paramref name="whenTrue"/> where <paramref name="mask"/> is all ones, else <paramref name="whenFalse"/>.</summary>
    static abstract TVector Select(TVector mask, TVector whenTrue, TVector whenFalse);

    /// <summary>0, 1, 2, ... per lane.</summary>
    static abstract TVector Indices { get; }

    /// <summary>The sum of the lanes, in float32 (the order of Vector.Sum at this width).</summary>
    static abstract float Sum(TVector v);

    /// <summary>
    /// 2^n per lane from t = n + 1.5 2^23 (n an integer in [-126, 127] held in t's low mantissa bits): the exponent field
    /// built from t's integer bits, as exp's polynomial needs it.
    /// </summary>
    static abstract TVector Pow2FromShifted(TVector t);
}

/// <summary>The widest width this machine accelerates, and the width the Managed ops run at on this thread.</summary>
internal static class SimdWidth
{
    /// <summary>512, 256 or 128 bits: the widest of Vector512, Vector256 and Vector128 the hardware accelerates, else 0.</summary>
    public static readonly int WidestBits =
        Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : Vector128.IsHardwareAccelerated ? 128 : 0;

    /// <summary>Whether the hardware accelerates <paramref name="bits"/>-wide vectors (128, 256 or 512); otherwise .NET emulates them.</summary>
    public static bool IsAccelerated(int bits) => bits switch
    {
        128 => Vector128.IsHardwareAccelerated,
        256 => Vector256.IsHardwareAccelerated,
        512 => Vector512.IsHardwareAccelerated,
        _ => throw new ArgumentOutOfRangeException(nameof(bits), bits, "Managed SIMD widths are 128, 256 or 512 bits."),
    };

    [ThreadStatic] private static int forcedBits;

    /// <summary>
    /// The width the width-generic Managed ops (attention, selective scan, GEMM, Conv1d, feature norms) run at when called
    /// from this thread: <see cref="WidestBits"/> (128 at least), unless <see cref="Force"/> set another. Each op reads it
    /// once per call on the calling thread and runs that specialisation on every worker.
    /// </summary>
    public static int ActiveBits => forcedBits != 0 ? forcedBits : Math.Max(WidestBits, 128);

    /// <summary>
    /// Runs this thread's Managed ops at <paramref name="bits"/> (128, 256 or 512) until the returned scope is disposed:
    /// how the tests and `routekit-perf widths` time and check the paths of narrower (or wider, emulated) machines on one
    /// machine. A width the hardware does not accelerate is correct but emulated and slow.
    /// </summary>
    public static Scope Force(int bits)
    {
        if (bits is not (128 or 256 or 512))
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "Managed SIMD widths are 128, 256 or 512 bits.");
        var previous = forcedBits;
        forcedBits = bits;
        return new Scope(previous);
    }

    /// <summary>Restores the width that was in force before <see cref="Force"/>.</summary>
    public readonly struct Scope(int previous) : IDisposable
    {
        /// <summary>Restores the previous width.</summary>
        public void Dispose() => forcedBits = previous;
    }
}

/// <summary>128-bit lanes (SSE, Arm NEON).</summary>
internal readonly unsafe partial struct Simd128 : ISimdWidth<Vector128<float>>
{
    public static int Lanes => Vector128<float>.Count;
    public static Vector128<float> Zero => Vector128<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Load(ref float p, nuint offset) => Vector128.LoadUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Broadcast(float value) => Vector128.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Abs(Vector128<float> v) => Vector128.Abs(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> CountPositive(Vector128<float> count, Vector128<float> v) =>
        count + (Vector128.GreaterThan(v, Vector128<float>.Zero) & Vector128<float>.One);
    public static double SumWidened(Vector128<float> v)
    {
        var (lo, hi) = Vector128.Widen(v);
        return Vector128.Sum(lo + hi);
    }
    public static float MaxAcross(Vector128<float> v) =>
        Math.Max(Math.Max(v.GetElement(0), v.GetElement(1)), Math.Max(v.GetElement(2), v.GetElement(3)));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector128<float> v, ref float p, nuint offset) => v.StoreUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Min(Vector128<float> a, Vector128<float> b) => Vector128.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> LessThan(Vector128<float> a, Vector128<float> b) => Vector128.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> GreaterThan(Vector128<float> a, Vector128<float> b) => Vector128.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector128<float> Or(Vector128<float> a, Vector128<float> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Select(Vector128<float> mask, Vector128<float> whenTrue, Vector128<float> whenFalse) => Vector128.ConditionalSelect(mask, whenTrue, whenFalse);
    public static Vector128<float> Indices => Vector128<float>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector128<float> v) => Vector128.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Pow2FromShifted(Vector128<float> t) => Vector128.ShiftLeft(t.AsInt32() + Vector128.Create(127), 23).AsSingle();
}

/// <summary>256-bit lanes (AVX2).</summary>
internal readonly unsafe partial struct Simd256 : ISimdWidth<Vector256<float>>
{
    public static int Lanes => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Load(ref float p, nuint offset) => Vector256.LoadUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Abs(Vector256<float> v) => Vector256.Abs(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> CountPositive(Vector256<float> count, Vector256<float> v) =>
        count + (Vector256.GreaterThan(v, Vector256<float>.Zero) & Vector256<float>.One);
    public static double SumWidened(Vector256<float> v)
    {
        var (lo, hi) = Vector256.Widen(v);
        return Vector256.Sum(lo + hi);
    }
    public static float MaxAcross(Vector256<float> v) => Math.Max(Simd128.MaxAcross(v.GetLower()), Simd128.MaxAcross(v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector256<float> v, ref float p, nuint offset) => v.StoreUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Min(Vector256<float> a, Vector256<float> b) => Vector256.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> LessThan(Vector256<float> a, Vector256<float> b) => Vector256.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> GreaterThan(Vector256<float> a, Vector256<float> b) => Vector256.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector256<float> Or(Vector256<float> a, Vector256<float> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Select(Vector256<float> mask, Vector256<float> whenTrue, Vector256<float> whenFalse) => Vector256.ConditionalSelect(mask, whenTrue, whenFalse);
    public static Vector256<float> Indices => Vector256<float>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Pow2FromShifted(Vector256<float> t) => Vector256.ShiftLeft(t.AsInt32() + Vector256.Create(127), 23).AsSingle();
}

/// <summary>512-bit lanes (AVX-512).</summary>
internal readonly unsafe partial struct Simd512 : ISimdWidth<Vector512<float>>
{
    public static int Lanes => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Load(ref float p, nuint offset) => Vector512.LoadUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> v, float* p) => v.Store(p);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Abs(Vector512<float> v) => Vector512.Abs(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> CountPositive(Vector512<float> count, Vector512<float> v) =>
        count + (Vector512.GreaterThan(v, Vector512<float>.Zero) & Vector512<float>.One);
    public static double SumWidened(Vector512<float> v)
    {
        var (lo, hi) = Vector512.Widen(v);
        return Vector512.Sum(lo + hi);
    }
    public static float MaxAcross(Vector512<float> v) => Math.Max(Simd256.MaxAcross(v.GetLower()), Simd256.MaxAcross(v.GetUpper()));
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static void Store(Vector512<float> v, ref float p, nuint offset) => v.StoreUnsafe(ref p, offset);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Min(Vector512<float> a, Vector512<float> b) => Vector512.Min(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> LessThan(Vector512<float> a, Vector512<float> b) => Vector512.LessThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> GreaterThan(Vector512<float> a, Vector512<float> b) => Vector512.GreaterThan(a, b);
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Vector512<float> Or(Vector512<float> a, Vector512<float> b) => a | b;
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Select(Vector512<float> mask, Vector512<float> whenTrue, Vector512<float> whenFalse) => Vector512.ConditionalSelect(mask, whenTrue, whenFalse);
    public static Vector512<float> Indices => Vector512<float>.Indices;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Pow2FromShifted(Vector512<float> t) => Vector512.ShiftLeft(t.AsInt32() + Vector512.Create(127), 23).AsSingle();
}
