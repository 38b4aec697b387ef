// AdamW, the executable spec: torch.optim.AdamW's update equations (amsgrad off, maximize off), decoupled weight
// decay per element. Generic over the float type (float64 reference, naive float32). Shapes: N parameters, all [N].
using System.Numerics;

namespace RouteKit.Reference;

/// <summary>Naive AdamW step, following torch.optim.AdamW's single-tensor code line by line.</summary>
public static class AdamWReference
{
    /// <summary>
    /// One step t (1-based), in place: p *= 1 - lr wd (where decay); m = beta1 m + (1 - beta1) g;
    /// v = beta2 v + (1 - beta2) g^2; p -= (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    /// </summary>
    public static void Step<T>(T[] parameters, T[] gradients, T[] m, T[] v, bool[] decay, T lr, T beta1, T beta2, T eps,
        T weightDecay, int step) where T : IFloatingPointIeee754<T>
    {
        var correction1 = T.One - T.Pow(beta1, T.CreateChecked(step));
        var correction2 = T.One - T.Pow(beta2, T.CreateChecked(step));
        var stepSize = lr / correction1;
        var sqrtCorrection2 = T.Sqrt(correction2);
        for (var i = 0; i < parameters.Length; i++)
        {
            if (decay[i]) parameters[i] *= T.One - lr * weightDecay;
            m[i] = beta1 * m[i] + (T.One - beta1) * gradients[i];
            v[i] = beta2 * v[i] + (T.One - beta2) * gradients[i] * gradients[i];
            parameters[i] -= stepSize * m[i] / (T.Sqrt(v[i]) / sqrtCorrection2 + eps);
        }
    }
}
