// Linear layer on ILGPU backends (DESIGN.md section 9): one tiled SGEMM serves y = x W^T + b, dx = dy W and
// dW = dy^T x through (row, column) strides; db = sum over t of dy is a column sum.
// Shapes: M rows of C, N columns of C, K the contracted dimension; T tokens, O outputs for the column sum.
//
// Versions (listed by `routekit-perf list`; `routekit-perf gemm --variant 1` times the Managed GEMM, these kernels are
// validated by the tests until a GPU run times them):
//   1  (2026-12-02) Sgemm: a group of 16 x 16 threads computes a 64 x 64 tile of C; each thread holds a 4 x 4 register
//      block (rows ty + 16 i, columns tx + 16 j: neighbouring threads store neighbouring columns, so stores coalesce),
//      sixteen named accumulators because ILGPU 1.5.3 does not unroll loops or promote local arrays. K is walked in
//      steps of 16: the group stages A[64, 16] (stored k-major so a k step reads 4 rows from one shared row) and
//      B[16, 64] in shared memory of compile-time size (8 KiB), zero-padded at the edges so the inner loop has no
//      bounds checks. Per k step a thread does 8 shared loads for 16 FMAs. Each element is one thread's sequential
//      chain over k, so results are deterministic. cuBLAS is not wired yet (DESIGN.md allows this kernel as the
//      fallback); this is the kernel on every ILGPU backend.
//   ColumnSums: one thread per output column sums dy's column in t order (deterministic, no atomics); coalesced
//      because neighbouring threads read neighbouring columns of the same row.
using ILGPU;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Linear;

/// <summary>Sizes and strides of one SGEMM launch: C[M, N] = A[M, K] . B[K, N] (+ bias[N] per row).</summary>
public struct GemmShape
{
    /// <summary>Rows of C and A.</summary>
    public int M;
    /// <summary>Columns of C and B.</summary>
    public int N;
    /// <summary>The contracted dimension.</summary>
    public int K;
    /// <summary>Stride of A between rows (its element (i, k) is at i ARow + k ACol).</summary>
    public int ARow;
    /// <summary>Stride of A between columns.</summary>
    public int ACol;
    /// <summary>Stride of B between rows (its element (k, j) is at k BRow + j BCol).</summary>
    public int BRow;
    /// <summary>Stride of B between columns.</summary>
    public int BCol;
    /// <summary>1 to add bias[j] to every row of C, 0 for none.</summary>
    public int HasBias;
}

/// <summary>Device code of the linear layer.</summary>
public static class LinearKernels
{
    /// <summary>The SGEMM versions a perf harness can list, numbered from 1.</summary>
    public static IReadOnlyList<(string Name, string Idea)> Variants { get; } =
    [
        ("Sgemm", "64 x 64 tile per 16 x 16 group, 4 x 4 register block per thread, K steps of 16 staged in shared memory"),
    ];

    /// <summary>Rows of C per group.</summary>
    public const int TileM = 64;
    /// <summary>Columns of C per group.</summary>
    public const int TileN = 64;
    /// <summary>K step staged in shared memory.</summary>
    public const int TileK = 16;
    /// <summary>Threads along each side of the group (each computes 4 x 4 elements).</summary>
    public const int Side = 16;
    /// <summary>Threads per group.</summary>
    public const int GroupSize = Side * Side;

    /// <summary>
    /// C = A . B (+ bias per row), C row-major [M, N]; grid (ceil(N / 64), ceil(M / 64)) groups of <see cref="GroupSize"/>
    /// threads. <paramref name="bias"/> is read only when <see cref="GemmShape.HasBias"/> is 1.
    /// </summary>
    public static void Sgemm(
        ArrayView1D<float, Stride1D.Dense> a,    // [M, K] through ARow, ACol
        ArrayView1D<float, Stride1D.Dense> b,    // [K, N] through BRow, BCol
        ArrayView1D<float, Stride1D.Dense> bias, // [N] (or any length when HasBias = 0)
        ArrayView1D<float, Stride1D.Dense> c,    // [M, N]
        GemmShape s)
    {
        var aTile = SharedMemory.Allocate<float>(TileK * TileM);  // [16 k][64 rows]
        var bTile = SharedMemory.Allocate<float>(TileK * TileN);  // [16 k][64 columns]
        var tid = Group.IdxX;
        var tx = tid % Side;
        var ty = tid / Side;
        var rowBase = Grid.IdxY * TileM;
        var colBase = Grid.IdxX * TileN;
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (var k0 = 0; k0 < s.K; k0 += TileK)
        {
            for (var e = tid; e < TileK * TileM; e += GroupSize)
            {
                // A: consecutive threads take consecutive k of one row (coalesced when ACol = 1).
                var r = e / TileK;
                var kk = e % TileK;
                var row = rowBase + r;
                var ka = k0 + kk;
                aTile[kk * TileM + r] = row < s.M && ka < s.K ? a[(long)row * s.ARow + (long)ka * s.ACol] : 0f;
                // B: consecutive threads take consecutive columns of one k (coalesced when BCol = 1).
                var kb = k0 + e / TileN;
                var col = colBase + e % TileN;
                bTile[e] = col < s.N && kb < s.K ? b[(long)kb * s.BRow + (long)col * s.BCol] : 0f;
            }
            Group.Barrier();
            for (var kk = 0; kk < TileK; kk++)
            {
                var ak = kk * TileM + ty;
                var bk = kk * TileN + tx;
                float a0 = aTile[ak], a1 = aTile[ak + Side], a2 = aTile[ak + 2 * Side], a3 = aTile[ak + 3 * Side];
                float b0 = bTile[bk], b1 = bTile[bk + Side], b2 = bTile[bk + 2 * Side], b3 = bTile[bk + 3 * Side];
                c00 += a0 * b0; c01 += a0 * b1; c02 += a0 * b2; c03 += a0 * b3;
                c10 += a1 * b0; c11 += a1 * b1; c12 += a1 * b2; c13 += a1 * b3;
                c20 += a2 * b0; c21 += a2 * b1; c22 += a2 * b2; c23 += a2 * b3;
                c30 += a3 * b0; c31 += a3 * b1; c32 += a3 * b2; c33 += a3 * b3;
            }
            Group.Barrier();
        }
        StoreRow(c, bias, s, rowBase + ty, colBase + tx, c00, c01, c02, c03);
        StoreRow(c, bias, s, rowBase + ty + Side, colBase + tx, c10, c11, c12, c13);
        StoreRow(c, bias, s, rowBase + ty + 2 * Side, colBase + tx, c20, c21, c22, c23);
        StoreRow(c, bias, s, rowBase + ty + 3 * Side, colBase + tx, c30, c31, c32, c33);
    }

    private static void StoreRow(ArrayView1D<float, Stride1D.Dense> c, ArrayView1D<float, Stride1D.Dense> bias, GemmShape s,
        int row, int col, float v0, float v1, float v2, float v3)
    {
        if (row >= s.M) return;
        StoreOne(c, bias, s, row, col, v0);
        StoreOne(c, bias, s, row, col + Side, v1);
        StoreOne(c, bias, s, row, col + 2 * Side, v2);
        StoreOne(c, bias, s, row, col + 3 * Side, v3);
    }

    private static void StoreOne(ArrayView1D<float, Stride1D.Dense> c, ArrayView1D<float, Stride1D.Dense> bias, GemmShape s,
        int row, int col, float v)
    {
        if (col >= s.N) return;
        c[(long)row * s.N + col] = s.HasBias != 0 ? v + bias[col] : v;
    }

    /// <summary>db[o] = sum over t of dy[t, o], in t order; one thread per column o.</summary>
    public static void ColumnSums(
        Index1D o,
        ArrayView1D<float, Stride1D.Dense> dy, // [T, O]
        ArrayView1D<float, Stride1D.Dense> db, // [O]
        int tokens, int outputs)
    {
        var sum = 0f;
        for (var t = 0; t < tokens; t++) sum += dy[(long)t * outputs + o];
        db[o] = sum;
    }
}
