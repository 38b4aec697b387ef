using System.Globalization;
using NUnit.Framework;
using RouteKit.Kernels.Collapse;
using RouteKit.Kernels.Depth;
using RouteKit.Kernels.FeatureNorms;
using RouteKit.Kernels.Graph;
using RouteKit.Kernels.Linear;
using RouteKit.Kernels.Scan;
using RouteKit.Kernels.Training;
using RouteKit.Perf.Common;

namespace RouteKit.Tests;

/// <summary>
/// `--variant N` of every non-attention perf command (issue 15): a version outside the op's list is a usage error (exit 2,
/// the valid range, a pointer to `list`) before the load gate or any kernel; version 1 passes the check; `list` names
/// every version the kernels declare; and the new commands (collapse, scan --op linear) validate and report.
/// </summary>
[TestFixture]
[NonParallelizable] // redirects Console.Out, where routekit-perf writes its reports
public sealed class PerfVariantTests
{
    // Every command with --variant, on the backends it times (IlgpuCpu stands for the ILGPU backends: same lists).
    private static readonly (string[] Args, OpVariants Op, Backend Backend)[] Commands =
    [
        (["scan"], KernelVariants.Scan, Backend.Managed),
        (["scan", "--backend", "ilgpu-cpu"], KernelVariants.Scan, Backend.IlgpuCpu),
        (["scan-device", "ilgpu-cpu"], KernelVariants.Scan, Backend.IlgpuCpu),
        (["scan", "--op", "linear"], KernelVariants.LinearRecurrence, Backend.Managed),
        (["scan", "--op", "linear", "--backend", "ilgpu-cpu"], KernelVariants.LinearRecurrence, Backend.IlgpuCpu),
        (["featurenorms"], KernelVariants.FeatureNorms, Backend.Managed),
        (["featurenorms", "--backend", "ilgpu-cpu"], KernelVariants.FeatureNorms, Backend.IlgpuCpu),
        (["collapse"], KernelVariants.Collapse, Backend.Managed),
        (["collapse", "--backend", "ilgpu-cpu"], KernelVariants.Collapse, Backend.IlgpuCpu),
        (["graph"], KernelVariants.Graph, Backend.Managed),
        (["depth"], KernelVariants.Depth, Backend.Managed),
        (["conv1d"], KernelVariants.Conv1d, Backend.Managed),
        (["gemm"], KernelVariants.Gemm, Backend.Managed),
        (["training-ops"], KernelVariants.TrainingOps, Backend.Managed),
        (["training-ops", "--backend", "ilgpu-cpu"], KernelVariants.TrainingOps, Backend.IlgpuCpu),
    ];

    private static readonly LoadAverages Busy = new(10.0 * Environment.ProcessorCount, 1, 1);

    [Test]
    public void AVariantOutsideTheListIsAUsageErrorBeforeTheGate()
    {
        foreach (var (args, op, backend) in Commands)
        foreach (var wrong in new[] { 0, op.For(backend).Count + 1, -3 })
        {
            using var error = new StringWriter();
            // A busy machine: the usage error must come first (2, not the gate's 3), so nothing was measured or launched.
            var code = Run([.. args, "--variant", wrong.ToString(CultureInfo.InvariantCulture), "--quick"], error, out var output);
            var line = $"{string.Join(' ', args)} --variant {wrong}";
            Assert.That(code, Is.EqualTo(2), $"{line}: {error}");
            Assert.That(error.ToString(), Does.Contain($"--variant {wrong} is not a version of the {op.Op}")
                .And.Contain($"valid is 1..{op.For(backend).Count}").And.Contain("`routekit-perf list`"), line);
            Assert.That(output, Is.Empty, $"{line} printed a report");
        }
    }

    [Test]
    public void EveryListedVariantPassesTheCheckAndStopsAtTheGate()
    {
        foreach (var (args, op, backend) in Commands)
            for (var v = 1; v <= op.For(backend).Count; v++)
            {
                using var error = new StringWriter();
                var code = Run([.. args, "--variant", v.ToString(CultureInfo.InvariantCulture), "--quick"], error, out _);
                Assert.That(code, Is.EqualTo(LoadGate.RefusedExitCode), $"{string.Join(' ', args)} --variant {v}: {error}");
            }
    }

    [Test]
    public void ListNamesEveryVariantTheKernelsDeclare()
    {
        using var error = new StringWriter();
        Assert.That(Run(["list"], error, out var text), Is.Zero, error.ToString());
        var declared = new (string Type, IReadOnlyList<(string Name, string Idea)> Versions)[]
        {
            (nameof(SelectiveScanForward), SelectiveScanForward.Variants), (nameof(SelectiveScanBackward), SelectiveScanBackward.Variants),
            (nameof(LinearRecurrenceKernels), LinearRecurrenceKernels.Variants), (nameof(FeatureNormsKernels), FeatureNormsKernels.Variants),
            (nameof(CollapseKernels), CollapseKernels.Variants), (nameof(GraphAttentionForward), GraphAttentionForward.Variants),
            (nameof(GraphAttentionBackward), GraphAttentionBackward.Variants), (nameof(DepthForward), DepthForward.Variants),
            (nameof(DepthBackward), DepthBackward.Variants), (nameof(Conv1dKernels), Conv1dKernels.Variants), (nameof(LinearKernels), LinearKernels.Variants),
        };
        foreach (var (type, versions) in declared)
        {
            Assert.That(versions, Is.Not.Empty, type);
            for (var i = 0; i < versions.Count; i++)
                Assert.That(text, Does.Contain($"{type}.{versions[i].Name}").And.Contain(versions[i].Idea), $"{type} version {i + 1}");
        }
        foreach (var op in KernelVariants.All)
        {
            Assert.That(text, Does.Contain($"{op.Op} (routekit-perf {op.Command}):"));
            for (var i = 0; i < op.Managed.Count; i++) Assert.That(text, Does.Contain($"  managed  {i + 1}. {op.Managed[i].Name}: "), op.Op);
            for (var i = 0; i < op.Ilgpu.Count; i++) Assert.That(text, Does.Contain($"  ilgpu    {i + 1}. {op.Ilgpu[i].Name}: "), op.Op);
        }
    }

    [Test]
    public void CollapseValidatesThenReportsGBPerSecondAgainstTheReadBandwidth()
    {
        var dir = Directory.CreateTempSubdirectory("routekit-collapse-").FullName;
        try
        {
            using var error = new StringWriter();
            var code = Run(["collapse", "--variant", "1", "--quick", "--allow-busy", "--out", dir], error, out var text);
            Assert.That(code, Is.Zero, text + error);
            Assert.That(text, Does.Contain($"Version 1 of 1 (managed): {KernelVariants.Collapse.Managed[0].Name}"));
            Assert.That(text, Does.Contain("validated [97, 17] against the float64 reference: reductions (2x rule) passed: Gram ")
                .And.Contain("validated [40, 300]").And.Contain("measures passed: effective rank").And.Not.Contain("FAIL"));
            Assert.That(text, Does.Contain("Read bandwidth (read only").And.Contain("| reduction | R | C |"));
            var csv = File.ReadAllLines(Directory.GetFiles(dir, "collapse-managed-*.csv").Single());
            Assert.That(csv[0], Is.EqualTo(RouteKit.Perf.Collapse.CollapseBenchmark.CsvHeader));
            var header = csv[0].Split(',');
            var rows = csv.Skip(1).Select(l => l.Split(',')).ToArray();
            Assert.That(rows.Select(f => f[2]), Is.EqualTo(new[] { "Gram", "ColumnSums", "UnitColumnSums", "RowDeviation" }));
            foreach (var f in rows)
            {
                Assert.That(f, Has.Length.EqualTo(header.Length));
                double Field(string name) => double.Parse(f[Array.IndexOf(header, name)], CultureInfo.InvariantCulture);
                // GB/s is the bytes of X over the median, and the fraction is that over the read bandwidth of the same run.
                var expected = Field("rows") * Field("columns") * 4 / (Field("median_ms") * 1e6);
                Assert.That(Field("read_gbps"), Is.EqualTo(expected).Within(2e-3 * expected + 1e-3), f[2]);
                Assert.That(Field("read_fraction"), Is.EqualTo(Field("read_gbps") / Field("read_bandwidth_gbps")).Within(1e-3), f[2]);
            }
            Assert.That(File.ReadAllText(Directory.GetFiles(dir, "collapse-managed-*.md").Single()), Does.Contain("machine: busy (--allow-busy)").Or.Contain("machine: quiet"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void CollapseValidationRejectsAGramWithOneWrongEntry()
    {
        const int rows = 40, columns = 300;
        var x = RouteKit.Perf.Collapse.CollapseBenchmark.Problem(rows, columns);
        using var device = Device.Create(Backend.Managed);
        using var t = device.FromArray(x, rows, columns);
        using var gram = RouteKit.Collapse.Gram(t);
        using var sums = device.Zeros(columns);
        RouteKit.Collapse.ColumnSums(t, null, sums, rows, columns);
        var columnSums = sums.ToArray();
        using var norms = RouteKit.FeatureNorms.Forward(t);
        RouteKit.Collapse.ColumnSums(t, norms.L2, sums, rows, columns);
        var unitSums = sums.ToArray();
        using var mean = device.FromArray(RouteKit.Reference.FeatureNormsReference.ColumnSums(x, rows, columns).Select(v => v / rows).ToArray(), columns);
        using var deviation = device.Zeros(rows);
        RouteKit.Collapse.RowDeviation(t, mean, deviation, rows, columns);
        var right = new RouteKit.Perf.Collapse.CollapseBenchmark.Reductions(gram.ToArray(), columnSums, unitSums, deviation.ToArray());
        var (ok, message) = RouteKit.Perf.Collapse.CollapseBenchmark.Check(rows, columns, right);
        Assert.That(ok, Is.True, message);
        // One mirrored half off by 1e-3 of the diagonal's scale (a missed Kahan term would look like this).
        var wrongGram = (float[])right.Gram.Clone();
        wrongGram[1 * columns + 7] += 1e-3f * Math.Abs(wrongGram[0 + 1 * columns + 1]);
        (ok, message) = RouteKit.Perf.Collapse.CollapseBenchmark.Check(rows, columns, right with { Gram = wrongGram });
        Assert.That(ok, Is.False, message);
        Assert.That(message, Does.StartWith("FAILED: Gram ").And.Contain(" FAIL"));
    }

    [Test]
    public void LinearRecurrenceValidatesEveryGradientThenTimes()
    {
        using var error = new StringWriter();
        var code = Run(["scan", "--op", "linear", "--variant", "1", "--quick", "--allow-busy"], error, out var text);
        Assert.That(code, Is.Zero, text + error);
        Assert.That(text, Does.Contain($"Version 1 of 1 (managed): {KernelVariants.LinearRecurrence.Managed[0].Name}"));
        Assert.That(text, Does.Contain("with h0 against the float64 reference (2x rule): passed: h ")
            .And.Contain(", dA ").And.Contain(", dX ").And.Contain(", dH0 ").And.Not.Contain("FAIL"));
        Assert.That(text, Does.Contain("| 1 | 64 | 2048 |"));
    }

    [Test]
    public void LinearRecurrenceValidationRejectsAForwardThatDroppedH0()
    {
        (int B, int C, int T) shape = (1, 3, 100);
        var (a, x, h0, dH) = RouteKit.Perf.LinearRecurrenceBenchmark.Problem(shape);
        using var device = Device.Create(Backend.Managed);
        using var ta = device.FromArray(a, 1, 3, 100);
        using var tx = device.FromArray(x, 1, 3, 100);
        using var th0 = device.FromArray(h0, 1, 3);
        using var tdH = device.FromArray(dH, 1, 3, 100);
        using var right = LinearRecurrence.Forward(ta, tx, th0);
        using var gradients = LinearRecurrence.Backward(tdH, ta, tx, th0, right);
        Assert.That(RouteKit.Perf.LinearRecurrenceBenchmark.Check(shape, right, gradients).Ok, Is.True);
        // h0 decays as 0.9^t at worst: the first steps of h are off by O(1), far outside the 2x rule.
        using var wrong = LinearRecurrence.Forward(ta, tx);
        var (ok, message) = RouteKit.Perf.LinearRecurrenceBenchmark.Check(shape, wrong, gradients);
        Assert.That(ok, Is.False, message);
        Assert.That(message, Does.Contain("FAILED: h ").And.Contain(" FAIL"));
    }

    [Test]
    public void Conv1dTimesTheVersionItAnnounces()
    {
        using var error = new StringWriter();
        var code = Run(["conv1d", "--variant", "1", "--quick", "--allow-busy"], error, out var text);
        Assert.That(code, Is.Zero, text + error);
        Assert.That(text, Does.StartWith($"# conv1d: version 1 of 1 (managed): {KernelVariants.Conv1d.Managed[0].Name}: "));
        Assert.That(text, Does.Contain("validated").And.Not.Contain("FAILED"));
    }

    private static int Run(string[] args, StringWriter error, out string output)
    {
        using var writer = new StringWriter();
        var console = Console.Out;
        try
        {
            Console.SetOut(writer);
            return RouteKit.Perf.Program.Run(args, () => Busy, error);
        }
        finally
        {
            Console.SetOut(console);
            output = writer.ToString();
        }
    }
}
