// AdamW update (torch.optim.AdamW's equations, decoupled weight decay) over one flat parameter buffer.
// Shapes: N parameters; parameters, gradients, m, v and the decay mask are all [N].
//
// Versions (one so far; GPU timing waits for a GPU run):
//   1  (2026-12-02) one thread per parameter, memory-bound (5 reads, 3 writes). The host folds the step's constants
//      (1 - lr wd, lr / (1 - beta1^t), sqrt(1 - beta2^t)) in float64, so the kernel does the per-element work only.
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace RouteKit.Kernels.Training;

/// <summary>Device code of the AdamW step.</summary>
public static class AdamWKernels
{
    /// <summary>
    /// Unless <paramref name="failedCheck"/> reports a failed check of the training step:
    /// p *= 1 - mask lrDecay; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
    /// p -= stepSize m / (sqrt(v) / sqrtCorrection2 + eps).
    /// </summary>
    public static void Update(Index1D i,
        ArrayView1D<float, Stride1D.Dense> parameters, // [N]
        ArrayView1D<float, Stride1D.Dense> gradients,  // [N]
        ArrayView1D<float, Stride1D.Dense> m,          // [N]
        ArrayView1D<float, Stride1D.Dense> v,          // [N]
        ArrayView1D<float, Stride1D.Dense> decayMask,  // [N]: 1 where weight decay applies, else 0
        ArrayView1D<int, Stride1D.Dense> failedCheck,  // [1]: int.MaxValue unless a check of the training step failed
        float lrDecay, float beta1, float beta2, float stepSize, float sqrtCorrection2, float eps)
    {
        if (failedCheck[0] != int.MaxValue) return;     // a NaN/Inf met earlier in the step: leave p, m, v as they are
        var g = gradients[i];
        var p = parameters[i] * (1f - decayMask[i] * lrDecay);
        var mi = beta1 * m[i] + (1f - beta1) * g;
        var vi = beta2 * v[i] + (1f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        parameters[i] = p - stepSize * mi / (XMath.Sqrt(vi) / sqrtCorrection2 + eps);
    }
}
