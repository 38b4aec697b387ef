namespace RouteKit;

// Placeholder until the ILGPU launcher lands (this file is replaced wholesale).
internal static class AttentionIlgpu
{
    internal static void Forward(Device device, AttentionParams p, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse,
        AttentionDiagnostics? diagnostics) => throw new NotSupportedException("pending");

    internal static void Backward(Device device, AttentionParams p, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor o,
        Tensor lse, Tensor dq, Tensor dk, Tensor dv) => throw new NotSupportedException("pending");
}
