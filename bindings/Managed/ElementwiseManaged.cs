// The loop shared by the elementwise Managed ops (Gelu, Silu, Relu): an op is a struct functor giving its value and
// derivative on one Vector<float> (any width), specialised by the JIT; the tail shorter than a vector goes through the
// same code on a zero-padded stack vector, so each op has one formulation. ManagedParallel.For over chunks once n is large.
// Shapes: n elements; y, dy, dx like x.
using System.Numerics;
using System.Runtime.InteropServices;

namespace RouteKit;

/// <summary>An elementwise op on one vector of floats.</summary>
internal interface IElementwiseOp
{
    /// <summary>f(x) lane by lane.</summary>
    static abstract Vector<float> Value(Vector<float> x);

    /// <summary>f'(x) lane by lane.</summary>
    static abstract Vector<float> Derivative(Vector<float> x);
}

internal static unsafe class ElementwiseManaged
{
    /// <summary>Elements per task; a multiple of every vector width.</summary>
    private const int ChunkSize = 1 << 15;

    /// <summary>y = f(x).</summary>
    public static void Forward<TOp>(ReadOnlySpan<float> x, Span<float> y) where TOp : struct, IElementwiseOp
    {
        if (x.Length <= ChunkSize)
        {
            ForwardChunk<TOp>(x, y);
            return;
        }
        fixed (float* px = x, py = y)
        {
            var body = new ForwardChunks<TOp> { X = px, Y = py, N = x.Length };
            ManagedParallel.For(Chunks(x.Length), ref body);
        }
    }

    /// <summary>dx = dy f'(x).</summary>
    public static void Backward<TOp>(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx) where TOp : struct, IElementwiseOp
    {
        if (x.Length <= ChunkSize)
        {
            BackwardChunk<TOp>(dy, x, dx);
            return;
        }
        fixed (float* pg = dy, px = x, pd = dx)
        {
            var body = new BackwardChunks<TOp> { Dy = pg, X = px, Dx = pd, N = x.Length };
            ManagedParallel.For(Chunks(x.Length), ref body);
        }
    }

    private static int Chunks(int n) => (n + ChunkSize - 1) / ChunkSize;

    private struct ForwardChunks<TOp> : IParallelBody where TOp : struct, IElementwiseOp
    {
        public float* X, Y;
        public int N;

        public readonly void Run(int k)
        {
            var start = k * ChunkSize;
            var count = Math.Min(ChunkSize, N - start);
            ForwardChunk<TOp>(new ReadOnlySpan<float>(X + start, count), new Span<float>(Y + start, count));
        }
    }

    private struct BackwardChunks<TOp> : IParallelBody where TOp : struct, IElementwiseOp
    {
        public float* Dy, X, Dx;
        public int N;

        public readonly void Run(int k)
        {
            var start = k * ChunkSize;
            var count = Math.Min(ChunkSize, N - start);
            BackwardChunk<TOp>(new ReadOnlySpan<float>(Dy + start, count), new ReadOnlySpan<float>(X + start, count),
                new Span<float>(Dx + start, count));
        }
    }

    private static void ForwardChunk<TOp>(ReadOnlySpan<float> x, Span<float> y) where TOp : struct, IElementwiseOp
    {
        var width = Vector<float>.Count;
        ref var px = ref MemoryMarshal.GetReference(x);
        ref var py = ref MemoryMarshal.GetReference(y);
        var i = 0;
        for (; i <= x.Length - width; i += width) TOp.Value(Vector.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        if (i == x.Length) return;
        Span<float> pad = stackalloc float[width];
        x[i..].CopyTo(pad);
        TOp.Value(new Vector<float>(pad)).CopyTo(pad);
        pad[..(x.Length - i)].CopyTo(y[i..]);
    }

    private static void BackwardChunk<TOp>(ReadOnlySpan<float> dy, ReadOnlySpan<float> x, Span<float> dx) where TOp : struct, IElementwiseOp
    {
        var width = Vector<float>.Count;
        ref var pg = ref MemoryMarshal.GetReference(dy);
        ref var px = ref MemoryMarshal.GetReference(x);
        ref var pd = ref MemoryMarshal.GetReference(dx);
        var i = 0;
        for (; i <= x.Length - width; i += width)
            (Vector.LoadUnsafe(ref pg, (nuint)i) * TOp.Derivative(Vector.LoadUnsafe(ref px, (nuint)i))).StoreUnsafe(ref pd, (nuint)i);
        if (i == x.Length) return;
        Span<float> padX = stackalloc float[width], padG = stackalloc float[width];
        x[i..].CopyTo(padX);
        dy[i..].CopyTo(padG);
        (new Vector<float>(padG) * TOp.Derivative(new Vector<float>(padX))).CopyTo(padX);
        padX[..(x.Length - i)].CopyTo(dx[i..]);
    }
}
