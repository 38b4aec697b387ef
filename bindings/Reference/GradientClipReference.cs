// Global-norm gradient clipping, the executable spec (torch.nn.utils.clip_grad_norm_ with norm_type 2).
// Generic over the float type; plain sum of squares, so the naive float32 run overflows where g^2 does.
// Shapes: N gradients [N].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive global-norm clip.</summary>
public static class GradientClipReference
{
    /// <summary>Returns ||g||_2 and g * min(1, maxNorm / (||g||_2 + 1e-6)).</summary>
    public static (T Norm, T[] Clipped) Clip<T>(T[] gradients, T maxNorm) where T : IFloatingPointIeee754<T>
    {
        var s = T.Zero;
        foreach (var g in gradients) s += g * g;
        var norm = T.Sqrt(s);
        var coefficient = T.Min(T.One, maxNorm / (norm + T.CreateChecked(1e-6)));
        return (norm, Array.ConvertAll(gradients, g => g * coefficient));
    }
}
