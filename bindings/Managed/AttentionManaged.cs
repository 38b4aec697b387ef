namespace RouteKit;

// Placeholder until the fused SIMD implementation lands (this file is replaced wholesale).
internal static class AttentionManaged
{
    internal static void Forward(AttentionParams p, float[] q, float[] k, float[] v, float[] o, float[] lse,
        float[]? entropy, float[]? sinkMass, float[]? maxProb) => throw new NotSupportedException("pending");

    internal static void Backward(AttentionParams p, float[] dOut, float[] q, float[] k, float[] v, float[] o, float[] lse,
        float[] dq, float[] dk, float[] dv) => throw new NotSupportedException("pending");
}
