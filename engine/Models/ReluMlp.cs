// A multi-layer perceptron with ReLU hidden layers (issue 12, `routekit ood`): the classifier whose hidden activations
// are scored for OOD detection, and, with a 784-wide output, the label-free autoencoder. llm.c's style like
// ByteLanguageModel: one flat parameter buffer (ParameterStore), every activation preallocated for one batch size, an
// explicit backward that overwrites every parameter's gradient.
//
// Shapes: B batch rows, w_0 .. w_L the widths (w_0 inputs, w_L outputs), L = layers.
//   Input            [B, w_0]
//   pre[l]           [B, w_(l+1)]   = act[l-1] W_l^T + b_l  (act[-1] = Input), W_l [w_(l+1), w_l]
//   act[l] (l < L-1) [B, w_(l+1)]   = ReLU(pre[l])          (the "hidden layers" the OOD scores read)
//   Output = pre[L-1], no activation (logits for CrossEntropy, a reconstruction for the squared error).
namespace RouteKit.Engine.Models;

/// <summary>A ReLU MLP for one batch size on one device; see the file header.</summary>
public sealed class ReluMlp : IDisposable
{
    private readonly int[] weights, biases;
    private readonly Tensor[] pre, act, dPre, dAct;
    private readonly Tensor dInput;
    private readonly LinearGradients[] grads;

    /// <summary>Builds the layers for <paramref name="widths"/> (inputs first, outputs last) and batches of <paramref name="batch"/> rows.</summary>
    /// <param name="device">Where the parameters and activations live.</param>
    /// <param name="widths">At least two widths, each at least 1: w_0 inputs, then each layer's outputs.</param>
    /// <param name="batch">Rows per forward (at least 1).</param>
    /// <param name="seed">Seed of the initial weights (He-normal, std sqrt(2 / fan-in); biases 0).</param>
    /// <exception cref="ArgumentException">Fewer than two widths, a width below 1, or a batch below 1.</exception>
    public ReluMlp(Device device, IReadOnlyList<int> widths, int batch, int seed)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count < 2 || widths.Any(w => w < 1))
            throw new ArgumentException($"widths are [{string.Join(", ", widths)}]; wanted at least two, each at least 1.", nameof(widths));
        if (batch < 1) throw new ArgumentException($"batch is {batch}; wanted at least 1.", nameof(batch));
        Device = device;
        Widths = [.. widths];
        Batch = batch;
        var layers = widths.Count - 1;
        Parameters = new ParameterStore();
        weights = new int[layers];
        biases = new int[layers];
        for (var l = 0; l < layers; l++)
        {
            weights[l] = Parameters.Declare($"fc{l}.w", [widths[l + 1], widths[l]], true, Init.Normal(Math.Sqrt(2.0 / widths[l])));
            biases[l] = Parameters.Declare($"fc{l}.b", [widths[l + 1]], false, Init.Constant(0));
        }
        Parameters.Allocate(device, seed);
        Input = device.Zeros(batch, widths[0]);
        pre = new Tensor[layers];
        dPre = new Tensor[layers];
        act = new Tensor[layers - 1];
        dAct = new Tensor[layers - 1];
        for (var l = 0; l < layers; l++)
        {
            pre[l] = device.Zeros(batch, widths[l + 1]);
            dPre[l] = device.Zeros(batch, widths[l + 1]);
            if (l == layers - 1) continue;
            act[l] = device.Zeros(batch, widths[l + 1]);
            dAct[l] = device.Zeros(batch, widths[l + 1]);
        }
        dInput = device.Zeros(batch, widths[0]);
        grads = new LinearGradients[layers];
        for (var l = 0; l < layers; l++)
            grads[l] = new LinearGradients(l == 0 ? dInput : dAct[l - 1], Parameters.Grad(weights[l]), Parameters.Grad(biases[l]));
    }

    /// <summary>The device everything lives on.</summary>
    public Device Device { get; }
    /// <summary>The widths, inputs first.</summary>
    public IReadOnlyList<int> Widths { get; }
    /// <summary>Rows per forward B.</summary>
    public int Batch { get; }
    /// <summary>Parameters, gradients and AdamW moments.</summary>
    public ParameterStore Parameters { get; }
    /// <summary>The inputs of the next forward [B, w_0]; fill with CopyFrom.</summary>
    public Tensor Input { get; }
    /// <summary>The last forward's outputs [B, w_L] (no activation).</summary>
    public Tensor Output => pre[^1];
    /// <summary>Number of hidden (ReLU) layers, L - 1.</summary>
    public int HiddenLayers => act.Length;

    /// <summary>The post-ReLU activations of hidden layer <paramref name="layer"/> (0-based) of the last forward [B, w_(layer+1)].</summary>
    public Tensor Hidden(int layer) => act[layer];

    /// <summary>Computes every layer for the rows in <see cref="Input"/>.</summary>
    public void Forward()
    {
        for (var l = 0; l < pre.Length; l++)
        {
            Linear.Forward(l == 0 ? Input : act[l - 1], Parameters[weights[l]], Parameters[biases[l]], pre[l]);
            if (l < act.Length) Relu.Forward(pre[l], act[l]);
        }
    }

    /// <summary>
    /// Writes every parameter's gradient into Parameters.Gradients (overwritten) from <paramref name="dOutput"/>
    /// = dLoss/dOutput [B, w_L] of the last forward.
    /// </summary>
    public void Backward(Tensor dOutput)
    {
        var dy = dOutput;
        for (var l = pre.Length - 1; l >= 0; l--)
        {
            Linear.Backward(dy, l == 0 ? Input : act[l - 1], Parameters[weights[l]], true, grads[l]);
            if (l == 0) break;
            Relu.Backward(dAct[l - 1], pre[l - 1], dPre[l - 1]);
            dy = dPre[l - 1];
        }
    }

    /// <summary>The parameters as a host array (for a run folder's saved model).</summary>
    public float[] SaveParameters() => Parameters.Values.ToArray();

    /// <summary>Replaces the parameters with <paramref name="values"/> (as <see cref="SaveParameters"/> returned them).</summary>
    /// <exception cref="ArgumentException">The count differs from this model's.</exception>
    public void LoadParameters(ReadOnlySpan<float> values)
    {
        if (values.Length != Parameters.Count)
            throw new ArgumentException($"{values.Length} values given; this model [{string.Join(", ", Widths)}] has {Parameters.Count} parameters.", nameof(values));
        Parameters.Values.CopyFrom(values);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in pre.Concat(dPre).Concat(act).Concat(dAct)) t.Dispose();
        Input.Dispose();
        dInput.Dispose();
        Parameters.Dispose();
    }
}
