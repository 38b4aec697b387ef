// Linear layer, the executable spec (DESIGN.md section 9): y = x W^T + b in PyTorch's layout. Generic so the same code
// gives the float64 reference and the naive float32 results of the 2x rule; plain sequential loops, readable first.
// Shapes: T rows (tokens), I input features, O output features; x [T, I], W [O, I], b [O], y and dy [T, O].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Gradients of a linear layer: dx [T, I], dW [O, I], db [O].</summary>
public sealed record LinearReferenceGradients<T>(T[] DX, T[] DW, T[] DB);

/// <summary>Naive linear layer forward and backward.</summary>
public static class LinearReference
{
    /// <summary>y[t, o] = sum_i x[t, i] W[o, i] + b[o] (b may be null: no bias).</summary>
    public static T[] Forward<T>(T[] x, T[] w, T[]? b, int tokens, int inputs, int outputs) where T : IFloatingPointIeee754<T>
    {
        var y = new T[tokens * outputs];                                     // [T, O]
        for (var t = 0; t < tokens; t++)
        for (var o = 0; o < outputs; o++)
        {
            var s = T.Zero;
            for (var i = 0; i < inputs; i++) s += x[t * inputs + i] * w[o * inputs + i];
            y[t * outputs + o] = b is null ? s : s + b[o];
        }
        return y;
    }

    /// <summary>dx = dy W, dW = dy^T x, db = sum over t of dy.</summary>
    public static LinearReferenceGradients<T> Backward<T>(T[] dy, T[] x, T[] w, int tokens, int inputs, int outputs)
        where T : IFloatingPointIeee754<T>
    {
        var dx = new T[tokens * inputs];                                     // [T, I]
        var dw = new T[outputs * inputs];                                    // [O, I]
        var db = new T[outputs];                                             // [O]
        for (var t = 0; t < tokens; t++)
        for (var i = 0; i < inputs; i++)
        {
            var s = T.Zero;
            for (var o = 0; o < outputs; o++) s += dy[t * outputs + o] * w[o * inputs + i];
            dx[t * inputs + i] = s;
        }
        for (var o = 0; o < outputs; o++)
        for (var i = 0; i < inputs; i++)
        {
            var s = T.Zero;
            for (var t = 0; t < tokens; t++) s += dy[t * outputs + o] * x[t * inputs + i];
            dw[o * inputs + i] = s;
        }
        for (var o = 0; o < outputs; o++)
        {
            var s = T.Zero;
            for (var t = 0; t < tokens; t++) s += dy[t * outputs + o];
            db[o] = s;
        }
        return new LinearReferenceGradients<T>(dx, dw, db);
    }
}
