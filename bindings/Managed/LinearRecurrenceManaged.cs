// Linear recurrence on the Managed backend: Parallel.For across blocks of rows, each row's recurrence a scalar loop
// (the step is one fused multiply-add on a dependency chain; rows are contiguous in time, so SIMD across rows would
// need a transpose that costs as much as the step itself).
// Shapes: rows = B C, T time steps; a, x, h, dH, dA, dX [rows, T]; h0, last, dH0 [rows].
namespace RouteKit;

internal static class LinearRecurrenceManaged
{
    private const int RowsPerTask = 8;

    public static void Forward(int rows, int steps, float[] a, float[] x, float[]? h0, float[] h, float[] last)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var row = block * RowsPerTask; row < end; row++)
            {
                var state = h0?[row] ?? 0f;
                var ra = a.AsSpan(row * steps, steps);
                var rx = x.AsSpan(row * steps, steps);
                var rh = h.AsSpan(row * steps, steps);
                for (var t = 0; t < steps; t++)
                {
                    state = ra[t] * state + rx[t];
                    rh[t] = state;
                }
                last[row] = state;
            }
        });
    }

    public static void Backward(int rows, int steps, float[] a, float[]? h0, float[] h, float[] dH,
        float[] dA, float[] dX, float[]? dH0)
    {
        Parallel.For(0, (rows + RowsPerTask - 1) / RowsPerTask, block =>
        {
            var end = Math.Min(rows, (block + 1) * RowsPerTask);
            for (var row = block * RowsPerTask; row < end; row++)
            {
                var ra = a.AsSpan(row * steps, steps);
                var rh = h.AsSpan(row * steps, steps);
                var rdH = dH.AsSpan(row * steps, steps);
                var rdA = dA.AsSpan(row * steps, steps);
                var rdX = dX.AsSpan(row * steps, steps);
                var carry = 0f; // a_{t+1} dh_{t+1}
                for (var t = steps - 1; t >= 0; t--)
                {
                    var dh = rdH[t] + carry;
                    rdX[t] = dh;
                    rdA[t] = dh * (t > 0 ? rh[t - 1] : h0?[row] ?? 0f);
                    carry = ra[t] * dh;
                }
                if (dH0 is not null) dH0[row] = carry;
            }
        });
    }
}
