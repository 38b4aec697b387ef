// SwapMiddle: x [A, P, Q, R] -> y [A, Q, P, R], y[a, q, p, r] = x[a, p, q, r]. Shapes: A outer batch, P and Q the two
// swapped dimensions, R the contiguous inner run (head dim D for [B, T, H, D] -> [B, H, T, D]; 1 for the scans'
// [B, T, C] -> [B, C, T]). n = A P Q R elements.
//
// Versions:
//   1  (2026-12-03) Gather: one thread per output element (coalesced writes; reads coalesced within each run of R).
//   2  (2026-12-03) Transpose32 (R == 1): 32 x 32 tiles through shared memory (padded to 33 columns so the column read
//      is free of bank conflicts), 256 threads per group each moving 4 elements: reads and writes both coalesced.
//      Not yet timed on a GPU (routekit-perf has no permute command yet).
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of Permute.SwapMiddle.</summary>
public static class PermuteKernels
{
    /// <summary>Edge of a square tile of <see cref="Transpose32"/>.</summary>
    public const int Tile = 32;
    /// <summary>Rows of a tile each pass of the group covers (the group is Tile x TileRows threads).</summary>
    public const int TileRows = 8;
    /// <summary>Threads per group of <see cref="Transpose32"/>.</summary>
    public const int GroupSize = Tile * TileRows;

    /// <summary>Version 1: y[o] for output index o of [A, Q, P, R], read from x [A, P, Q, R].</summary>
    public static void Gather(
        Index1D o,
        ArrayView1D<float, Stride1D.Dense> x, // [A, P, Q, R]
        ArrayView1D<float, Stride1D.Dense> y, // [A, Q, P, R]
        int p, int q, int r)
    {
        long index = o;
        var rr = index % r;
        var rest = index / r;
        var pp = rest % p;
        rest /= p;
        var qq = rest % q;
        var aa = rest / q;
        y[index] = x[((aa * p + pp) * q + qq) * r + rr];
    }

    /// <summary>
    /// Version 2 (R = 1): group g transposes tile (tp, tq) of matrix a, g = (a tilesP + tp) tilesQ + tq; x's rows are
    /// read 32 floats at a time along q into shared memory and written 32 floats at a time along p.
    /// </summary>
    public static void Transpose32(
        ArrayView1D<float, Stride1D.Dense> x, // [A, P, Q]
        ArrayView1D<float, Stride1D.Dense> y, // [A, Q, P]
        int p, int q, int tilesP, int tilesQ)
    {
        var tile = SharedMemory.Allocate<float>(Tile * (Tile + 1)); // [32 rows][33]
        var g = Grid.IdxX;
        var tq = g % tilesQ;
        var tp = g / tilesQ % tilesP;
        long matrix = (long)(g / tilesQ / tilesP) * p * q;
        var lane = Group.IdxX % Tile;
        var row = Group.IdxX / Tile;
        for (var k = row; k < Tile; k += TileRows)
        {
            var pp = tp * Tile + k;
            var qq = tq * Tile + lane;
            if (pp < p && qq < q) tile[k * (Tile + 1) + lane] = x[matrix + (long)pp * q + qq];
        }
        Group.Barrier();
        for (var k = row; k < Tile; k += TileRows)
        {
            var qq = tq * Tile + k;
            var pp = tp * Tile + lane;
            if (pp < p && qq < q) y[matrix + (long)qq * p + pp] = tile[lane * (Tile + 1) + k];
        }
    }
}
