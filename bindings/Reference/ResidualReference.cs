// Residual add, the executable spec: y = x + r elementwise (any shape, n elements). Its backward is the identity:
// dx = dr = dy, so there is nothing more to specify. Generic for the float64 reference and the naive float32 result.
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive residual add.</summary>
public static class ResidualReference
{
    /// <summary>y[i] = x[i] + r[i].</summary>
    public static T[] Add<T>(T[] x, T[] r) where T : IFloatingPointIeee754<T>
    {
        var y = new T[x.Length];
        for (var i = 0; i < x.Length; i++) y[i] = x[i] + r[i];
        return y;
    }
}
