// BenchmarkDotNet suites for the Managed backend of each op: `routekit-perf bdn [--filter *Attention*]` or
// `dotnet run -c Release --project perf -- bdn`. Not part of the tests (BenchmarkDotNet builds and runs child processes
// for minutes). Each suite validates its op once in GlobalSetup against the float64 Reference (llm.c: never time a
// wrong kernel) and adds a rate column computed from BenchmarkDotNet's mean: GFLOP/s for attention, GB/s read for
// feature norms, million elements per second for the scan.
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using RouteKit.Perf.Attention;
using RouteKit.Perf.Common;
using RouteKit.Reference;

namespace RouteKit.Perf.Bdn;

/// <summary>Work per call of a benchmark case, for the rate column.</summary>
public interface IWorkPerCall
{
    /// <summary>Units of work (FLOPs, bytes, elements) one call of <paramref name="method"/> with these parameters does.</summary>
    double Work(string method, IReadOnlyDictionary<string, object> parameters);
}

/// <summary>A column "work / mean time" in the given unit.</summary>
/// <param name="header">Column header, e.g. GFLOP/s.</param>
/// <param name="work">Work per call.</param>
/// <param name="scale">Divisor to the unit (1e9 for giga).</param>
public sealed class RateColumn(string header, IWorkPerCall work, double scale) : IColumn
{
    /// <inheritdoc />
    public string Id => "Rate." + header;
    /// <inheritdoc />
    public string ColumnName => header;
    /// <inheritdoc />
    public bool AlwaysShow => true;
    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc />
    public int PriorityInCategory => 0;
    /// <inheritdoc />
    public bool IsNumeric => true;
    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc />
    public string Legend => $"{header} from the mean time per call";
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats) return "n/a";
        var parameters = benchmarkCase.Parameters.Items.ToDictionary(p => p.Name, p => p.Value);
        return (work.Work(benchmarkCase.Descriptor.WorkloadMethod.Name, parameters) / (stats.Mean * 1e-9) / scale).ToString("F1", Bench.Inv);
    }
}

/// <summary>Managed attention forward and backward, Dot, B 1 H 4 D 64.</summary>
[Config(typeof(Config))]
public class AttentionSuite
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new RateColumn("GFLOP/s", new Flops(), 1e9));
    }

    private sealed class Flops : IWorkPerCall
    {
        // Forward 4 H N^2 D (H 4, D 64), the backward 2.5x that, both halved when causal (FlashAttention's count).
        public double Work(string method, IReadOnlyDictionary<string, object> p) =>
            (method == nameof(Backward) ? 2.5 : 1.0) * 4.0 * 4 * (int)p["N"] * (int)p["N"] * 64 * ((bool)p["Causal"] ? 0.5 : 1);
    }

    private Device device = null!;
    private Tensor q = null!, k = null!, v = null!, dOut = null!;
    private AttentionOutput fwd = null!;
    private AttentionGradients grads = null!;
    private AttentionOptions options = null!;

    /// <summary>Sequence length N = M.</summary>
    [Params(1024, 4096)]
    public int N { get; set; }

    /// <summary>Causal mask.</summary>
    [Params(false, true)]
    public bool Causal { get; set; }

    /// <summary>Allocates and validates (throws on a mismatch, which aborts the suite).</summary>
    [GlobalSetup]
    public void Setup()
    {
        device = Device.Create(Backend.Managed);
        options = new AttentionOptions { Causal = Causal };
        float[] qa = Bench.Normal(4L * N * 64, 1), ka = Bench.Normal(4L * N * 64, 2), va = Bench.Normal(4L * N * 64, 3), da = Bench.Normal(4L * N * 64, 4);
        (q, k, v, dOut) = (device.FromArray(qa, 1, 4, N, 64), device.FromArray(ka, 1, 4, N, 64), device.FromArray(va, 1, 4, N, 64), device.FromArray(da, 1, 4, N, 64));
        fwd = RouteKit.Attention.Forward(q, k, v, options);
        grads = RouteKit.Attention.Backward(dOut, q, k, v, fwd, options);
        var (ok, message) = AttentionBenchmark.Validate(new AttentionShape(1, 4, N, N, 64, Causal, Score.Dot, false), qa, ka, va, da, fwd, grads);
        if (!ok) throw new InvalidOperationException("Managed attention failed validation: " + message);
    }

    /// <summary>The forward.</summary>
    [Benchmark]
    public void Forward() => RouteKit.Attention.Forward(q, k, v, options, fwd);

    /// <summary>The backward.</summary>
    [Benchmark]
    public void Backward() => RouteKit.Attention.Backward(dOut, q, k, v, fwd, options, grads);

    /// <summary>Frees everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var d in new IDisposable[] { grads, fwd, q, k, v, dOut, device }) d.Dispose();
    }
}

/// <summary>Managed feature norms, x [R, F].</summary>
[Config(typeof(Config))]
public class FeatureNormsSuite
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new RateColumn("GB/s", new Bytes(), 1e9));
    }

    private sealed class Bytes : IWorkPerCall
    {
        public double Work(string method, IReadOnlyDictionary<string, object> p) => 4.0 * (int)p["R"] * (int)p["F"];
    }

    private Device device = null!;
    private Tensor x = null!;
    private FeatureNormOutput norms = null!;

    /// <summary>Rows.</summary>
    [Params(16384, 65536)]
    public int R { get; set; }

    /// <summary>Features.</summary>
    [Params(512, 2048)]
    public int F { get; set; }

    /// <summary>Allocates and validates.</summary>
    [GlobalSetup]
    public void Setup()
    {
        device = Device.Create(Backend.Managed);
        var data = Bench.Normal((long)R * F, 5);
        x = device.FromArray(data, R, F);
        norms = RouteKit.FeatureNorms.Forward(x);
        var reference = FeatureNormsReference.Forward(Bench.Widen(data), R, F);
        var l2 = norms.L2.ToArray();
        for (var r = 0; r < R; r++)
            if (Math.Abs(l2[r] - reference.L2[r]) > 1e-5 * reference.L2[r])
                throw new InvalidOperationException($"Managed feature norms failed validation at row {r}: {l2[r]} vs {reference.L2[r]}");
    }

    /// <summary>The forward.</summary>
    [Benchmark]
    public void Forward() => RouteKit.FeatureNorms.Forward(x, norms);

    /// <summary>Frees everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        norms.Dispose();
        x.Dispose();
        device.Dispose();
    }
}

/// <summary>
/// A column with the same value on every row: the load check taken when `routekit-perf bdn` started ("0.72 0.36 0.14
/// quiet", or "... BUSY (--allow-busy)"), so BenchmarkDotNet's markdown, CSV and HTML exports carry it.
/// </summary>
/// <param name="load">The check taken at the start.</param>
public sealed class LoadColumn(LoadCheck load) : IColumn
{
    /// <inheritdoc />
    public string Id => "RouteKit.LoadAtStart";
    /// <inheritdoc />
    public string ColumnName => "Load at start (1 5 15 min)";
    /// <inheritdoc />
    public bool AlwaysShow => true;
    /// <inheritdoc />
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc />
    public int PriorityInCategory => 1;
    /// <inheritdoc />
    public bool IsNumeric => false;
    /// <inheritdoc />
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc />
    public string Legend => $"load averages when the run started; quiet means 1-minute <= {LoadCheck.PerCoreLimit} per logical core";
    /// <inheritdoc />
    public bool IsAvailable(Summary summary) => true;
    /// <inheritdoc />
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => Value;
    /// <inheritdoc />
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => Value;

    /// <summary>"0.72 0.36 0.14 quiet", "3.10 1.20 0.80 BUSY (--allow-busy)" or "unknown".</summary>
    public string Value => load.Load is null ? "unknown" : $"{load.Load} {(load.Busy ? "BUSY (--allow-busy)" : load.Machine)}";
}

/// <summary>Entry point of the suites.</summary>
public static class ManagedSuites
{
    /// <summary>
    /// Runs the suites BenchmarkDotNet's switcher selects with <paramref name="args"/>, after printing the load check
    /// taken at the start; every summary gets a <see cref="LoadColumn"/>.
    /// </summary>
    public static int Run(string[] args, LoadCheck load)
    {
        ArgumentNullException.ThrowIfNull(load);
        foreach (var line in load.MarkdownLines()) Console.Out.WriteLine(line);
        var config = ManualConfig.Create(DefaultConfig.Instance).AddColumn(new LoadColumn(load));
        var summaries = BenchmarkSwitcher.FromTypes([typeof(AttentionSuite), typeof(FeatureNormsSuite), typeof(ScanSuite)]).Run(args, config);
        return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
    }
}

/// <summary>Managed selective scan forward and backward, Mamba's configuration, B 1, Dc 256, Nst 16.</summary>
[Config(typeof(Config))]
public class ScanSuite
{
    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new RateColumn("Melem/s", new Elements(), 1e6));
    }

    private sealed class Elements : IWorkPerCall
    {
        public double Work(string method, IReadOnlyDictionary<string, object> p) => 256.0 * (int)p["L"];
    }

    private Device device = null!;
    private ScanBenchmark.Uploaded inputs = null!;
    private SelectiveScanOutput result = null!;
    private Tensor dOut = null!;
    private SelectiveScanGradients gradients = null!;
    private readonly SelectiveScanOptions options = new() { DeltaSoftplus = true };

    /// <summary>Time steps.</summary>
    [Params(4096, 32768)]
    public int L { get; set; }

    /// <summary>Allocates and validates (ScanBenchmark's 2x-rule check).</summary>
    [GlobalSetup]
    public void Setup()
    {
        device = Device.Create(Backend.Managed);
        if (!ScanBenchmark.Validate(device, TextWriter.Null))
            throw new InvalidOperationException("Managed selective scan failed validation against the float64 reference.");
        var data = ScanBenchmark.Problem(1, 256, L, ScanBenchmark.States, seed: L);
        inputs = ScanBenchmark.Upload(device, data, 1, 256, L);
        result = SelectiveScan.Forward(inputs.Inputs, options);
        dOut = device.FromArray(data.U, 1, 256, L);
        gradients = SelectiveScan.Backward(dOut, inputs.Inputs, result, options);
    }

    /// <summary>The forward.</summary>
    [Benchmark]
    public void Forward() => SelectiveScan.Forward(inputs.Inputs, options, result);

    /// <summary>The backward.</summary>
    [Benchmark]
    public void Backward() => SelectiveScan.Backward(dOut, inputs.Inputs, result, options, gradients);

    /// <summary>Frees everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var d in new IDisposable[] { gradients, dOut, result, inputs, device }) d.Dispose();
    }
}
