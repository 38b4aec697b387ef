using NUnit.Framework;
using RouteKit.Perf.Common;
using RouteKit.Perf.Peak;

namespace RouteKit.Tests;

/// <summary>
/// The load gate every timing command of routekit-perf passes (perf/Common/MachineLoad.cs): parsing /proc/loadavg, the
/// 0.5-per-core decision on the 1-minute average, the refusal (exit code 3, nothing runs) and the marking of a run
/// allowed with --allow-busy. Loads are injected, so the machine's own load never decides a result.
/// </summary>
[TestFixture]
public sealed class PerfLoadGateTests
{
    [Test]
    public void ParsesTheThreeAveragesOfProcLoadavg()
    {
        var load = LoadAverages.Parse("0.72 0.36 0.14 3/92 3406\n");
        Assert.That(load, Is.EqualTo(new LoadAverages(0.72, 0.36, 0.14)));
        Assert.That(LoadAverages.Parse("  12.50   8.00 100.25 1/1 1").Fifteen, Is.EqualTo(100.25));
        Assert.That(load.ToString(), Is.EqualTo("0.72 0.36 0.14"));
    }

    [TestCase("")]
    [TestCase("0.72 0.36")]
    [TestCase("0,72 0,36 0,14 3/92 3406")]
    [TestCase("-1 0.36 0.14 3/92 3406")]
    [TestCase("NaN 0.36 0.14 3/92 3406")]
    public void RejectsTextThatIsNotThreeLoadAverages(string text) =>
        Assert.That(() => LoadAverages.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contain("/proc/loadavg"));

    [Test]
    public void ReadsAFileInTheProcFormatAndNullWhereThereIsNone()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "1.50 2.00 3.00 2/100 42\n");
            Assert.That(LoadAverages.Read(path), Is.EqualTo(new LoadAverages(1.5, 2, 3)));
        }
        finally
        {
            File.Delete(path);
        }
        Assert.That(LoadAverages.Read(path), Is.Null);
    }

    [TestCase(2, 1.00, false)]
    [TestCase(2, 1.01, true)]
    [TestCase(2, 0.00, false)]
    [TestCase(16, 7.99, false)]
    [TestCase(16, 8.01, true)]
    [TestCase(1, 0.51, true)]
    public void BusyMeansTheOneMinuteAverageIsAboveHalfACorePerCore(int cores, double one, bool busy)
    {
        var check = LoadGate.Check(new LoadAverages(one, 0, 0), cores, allowBusy: false);
        Assert.That(check.Limit, Is.EqualTo(0.5 * cores));
        Assert.That(check.Busy, Is.EqualTo(busy));
        Assert.That(check.Refused, Is.EqualTo(busy));
        Assert.That(check.Machine, Is.EqualTo(busy ? "busy" : "quiet"));
    }

    [Test]
    public void OnlyTheOneMinuteAverageDecides()
    {
        // A machine that has just gone quiet after heavy work: the 5- and 15-minute averages lag behind.
        var check = LoadGate.Check(new LoadAverages(0.4, 30, 48), cores: 2, allowBusy: false);
        Assert.That(check.Busy, Is.False);
        Assert.That(check.CsvFields, Is.EqualTo("0.40,30.00,48.00,quiet"));
    }

    [Test]
    public void ABusyMachineIsRefusedWithExitCodeThreeAndTheBenchmarkNeverRuns()
    {
        var check = LoadGate.Check(new LoadAverages(3.11, 27.59, 46.98), cores: 2, allowBusy: false);
        using var error = new StringWriter();
        var ran = false;
        var code = LoadGate.Run(check, error, _ =>
        {
            ran = true;
            return 0;
        });
        Assert.That(code, Is.EqualTo(LoadGate.RefusedExitCode).And.EqualTo(3));
        Assert.That(ran, Is.False);
        Assert.That(error.ToString(), Does.Contain("busy machine").And.Contain("3.11").And.Contain("1.00").And.Contain("--allow-busy"));
    }

    [Test]
    public void AllowBusyRunsAndMarksTheResultsProminently()
    {
        var check = LoadGate.Check(new LoadAverages(3.11, 27.59, 46.98), cores: 2, allowBusy: true);
        using var error = new StringWriter();
        LoadCheck? seen = null;
        var code = LoadGate.Run(check, error, c =>
        {
            seen = c;
            return 7;
        });
        Assert.That(code, Is.EqualTo(7), "the benchmark's own exit code");
        Assert.That(seen, Is.SameAs(check));
        Assert.That(error.ToString(), Is.Empty);
        var lines = check.MarkdownLines();
        Assert.That(lines[0], Does.StartWith("**BUSY MACHINE").And.Contain("3.11").And.Contain("--allow-busy").And.EndWith("**"));
        Assert.That(lines[1], Does.Contain("3.11 27.59 46.98").And.Contain("machine: busy (--allow-busy)"));
        Assert.That(LoadCheck.CsvHeader, Is.EqualTo("load1,load5,load15,machine"));
        Assert.That(check.CsvFields, Is.EqualTo("3.11,27.59,46.98,busy"));
    }

    [Test]
    public void AQuietRunHasNoWarningAndAnUnknownLoadIsNeitherRefusedNorCalledQuiet()
    {
        var quiet = LoadGate.Check(new LoadAverages(0.2, 0.1, 0.05), cores: 2, allowBusy: false).MarkdownLines();
        Assert.That(quiet, Has.Count.EqualTo(1));
        Assert.That(quiet[0], Does.StartWith("- load average at start (1, 5, 15 min): 0.20 0.10 0.05").And.EndWith("machine: quiet"));
        var unknown = LoadGate.Check(null, cores: 2, allowBusy: false);
        Assert.That(unknown.Refused, Is.False);
        Assert.That(unknown.Machine, Is.EqualTo("unknown"));
        Assert.That(unknown.CsvFields, Is.EqualTo(",,,unknown"));
        Assert.That(unknown.MarkdownLines().Single(), Does.Contain("quiet not verified"));
    }

    [Test]
    public void EveryTimingCommandIsRefusedOnABusyMachine()
    {
        // Ten times the limit on any machine; each command must stop at the gate, before its device or its benchmark.
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 1, 1);
        string[][] commands =
        [
            ["attention", "--shape", "1,1,8,8,8"], ["all", "--smoke"], ["onnx", "--quick"], ["attention-managed", "--quick"],
            ["featurenorms", "--quick"], ["conv1d", "--quick"], ["train", "--quick"], ["gemm", "--quick"], ["graph", "--quick"], ["training-ops", "--quick"], ["training-ops", "--backend", "ilgpu-cpu", "--quick"],
            ["scan", "--quick"], ["scan-device", "ilgpu-cpu", "--quick"], ["bdn", "--filter", "NoSuchBenchmark"],
        ];
        foreach (var args in commands)
        {
            using var error = new StringWriter();
            var code = RouteKit.Perf.Program.Run(args, () => busy, error);
            Assert.That(code, Is.EqualTo(LoadGate.RefusedExitCode), $"{string.Join(' ', args)}: {error}");
            Assert.That(error.ToString(), Does.Contain("--allow-busy"), string.Join(' ', args));
        }
    }

    [Test]
    public void FeatureNormsAllowedOnABusyMachineWritesTheMarkingIntoItsMarkdownAndCsv()
    {
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 2, 1);
        var dir = Directory.CreateTempSubdirectory("routekit-load-").FullName;
        try
        {
            using var error = new StringWriter();
            var code = RouteKit.Perf.Program.Run(["featurenorms", "--quick", "--allow-busy", "--out", dir], () => busy, error);
            Assert.That(code, Is.Zero, error.ToString());
            var md = File.ReadAllText(Directory.GetFiles(dir, "featurenorms-managed-*.md").Single());
            Assert.That(md, Does.Contain("**BUSY MACHINE").And.Contain("machine: busy (--allow-busy)"));
            Assert.That(md, Does.Contain("% of read").And.Contain("% of copy (read+write)"));
            var csv = File.ReadAllLines(Directory.GetFiles(dir, "featurenorms-managed-*.csv").Single());
            Assert.That(csv[0], Does.EndWith(",load1,load5,load15,machine"));
            Assert.That(csv, Has.Length.EqualTo(2), "header and the quick shape");
            Assert.That(csv[1], Does.EndWith(",busy"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void GemmAllowedOnABusyMachineValidatesAndReportsAgainstThePeak()
    {
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 2, 1);
        var dir = Directory.CreateTempSubdirectory("routekit-load-").FullName;
        try
        {
            using var error = new StringWriter();
            var code = RouteKit.Perf.Program.Run(["gemm", "--quick", "--allow-busy", "--out", dir], () => busy, error);
            Assert.That(code, Is.Zero, error.ToString());
            var md = File.ReadAllText(Directory.GetFiles(dir, "gemm-managed-*.md").Single());
            Assert.That(md, Does.Contain("**BUSY MACHINE").And.Contain("validated 256^3").And.Contain("% of peak (wall)"));
            // ONNX Runtime's MatMul beside it: validated like Sgemm, its rate, fractions of the peak and the ratio.
            Assert.That(md, Does.Contain("validated 256^3 (ONNX Runtime)").And.Contain($"{Environment.ProcessorCount} intra-op threads")
                .And.Contain("ORT GFLOP/s").And.Contain("Managed / ORT"));
            var csv = File.ReadAllLines(Directory.GetFiles(dir, "gemm-managed-*.csv").Single());
            Assert.That(csv, Has.Length.EqualTo(2), "header and the quick size");
            Assert.That(csv[0], Is.EqualTo(RouteKit.Perf.Gemm.GemmBenchmark.CsvHeader));
            Assert.That(csv[0], Does.Contain(",ort_threads,ort_median_ms,").And.Contain(",ort_peak_fraction,").And.Contain(",managed_over_ort,load1,"));
            Assert.That(csv[1], Does.StartWith("256,").And.EndWith(",busy"));
            var fields = csv[1].Split(',');
            var header = csv[0].Split(',');
            Assert.That(fields, Has.Length.EqualTo(header.Length));
            Assert.That(int.Parse(fields[Array.IndexOf(header, "ort_threads")], System.Globalization.CultureInfo.InvariantCulture), Is.EqualTo(Environment.ProcessorCount));
            var ratio = double.Parse(fields[Array.IndexOf(header, "managed_over_ort")], System.Globalization.CultureInfo.InvariantCulture);
            var gflops = double.Parse(fields[Array.IndexOf(header, "gflops")], System.Globalization.CultureInfo.InvariantCulture);
            var ortGflops = double.Parse(fields[Array.IndexOf(header, "ort_gflops")], System.Globalization.CultureInfo.InvariantCulture);
            Assert.That(ratio, Is.EqualTo(gflops / ortGflops).Within(1e-3 * ratio + 1e-4), "Managed / ORT is the ratio of the two rates");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void TrainingOpsAllowedOnABusyMachineValidatesAndWritesEveryOpAgainstTheBandwidth()
    {
        var busy = new LoadAverages(10.0 * Environment.ProcessorCount, 2, 1);
        var dir = Directory.CreateTempSubdirectory("routekit-load-").FullName;
        try
        {
            using var error = new StringWriter();
            var code = RouteKit.Perf.Program.Run(["training-ops", "--quick", "--repeats", "1", "--allow-busy", "--out", dir], () => busy, error);
            Assert.That(code, Is.Zero, error.ToString());
            var md = File.ReadAllText(Directory.GetFiles(dir, "training-ops-managed-*.md").Single());
            Assert.That(md, Does.Contain("**BUSY MACHINE").And.Contain("machine: busy (--allow-busy)").And.Contain("memory copy").And.Contain("read stream"));
            Assert.That(md, Does.Contain("validated LayerNorm forward").And.Contain("validated GradientClip").And.Not.Contain("FAILED"));
            var csv = File.ReadAllLines(Directory.GetFiles(dir, "training-ops-managed-*.csv").Single());
            Assert.That(csv[0], Is.EqualTo(RouteKit.Perf.Training.TrainingOpsBenchmark.CsvHeader));
            var header = csv[0].Split(',');
            var ops = csv.Skip(1).Select(line => line.Split(',')).ToArray();
            Assert.That(ops.Select(f => f[1]).Distinct(), Is.EquivalentTo(new[]
            {
                "LayerNorm", "RmsNorm", "Gelu (tanh)", "Silu", "Relu", "CrossEntropy", "Embedding", "AdamW", "GradientClip",
            }));
            foreach (var f in ops)
            {
                Assert.That(f, Has.Length.EqualTo(header.Length), string.Join(',', f));
                Assert.That(f[0], Is.EqualTo("managed"));
                Assert.That(f[^1], Is.EqualTo("busy"));
                var fraction = double.Parse(f[Array.IndexOf(header, "copy_fraction")], System.Globalization.CultureInfo.InvariantCulture);
                // From the unrounded columns: bytes / median time over the copy rate.
                var bytes = double.Parse(f[Array.IndexOf(header, "bytes")], System.Globalization.CultureInfo.InvariantCulture);
                var ms = double.Parse(f[Array.IndexOf(header, "median_ms")], System.Globalization.CultureInfo.InvariantCulture);
                var copy = double.Parse(f[Array.IndexOf(header, "copy_gbps")], System.Globalization.CultureInfo.InvariantCulture);
                // The CSV prints median_ms with 4 decimals, so a microsecond-scale op's ms is rounded by up to 0.5e-4 ms
                // (3% at 1.5 us): the tolerance is that rounding's relative size plus 2% for the other rounded columns.
                var msRounding = 0.5e-4 / ms;
                Assert.That(fraction, Is.EqualTo(bytes / (ms * 1e6) / copy).Within((0.02 + 1.1 * msRounding) * fraction + 1e-4), string.Join(',', f));
                Assert.That(f[Array.IndexOf(header, "kernel_gbps")], Is.Not.Empty, "Managed times the kernel alone too");
            }
            // Both passes of the layer ops; AdamW over the quick 2^20 parameters moves 32 bytes each.
            Assert.That(ops.Count(f => f[1] == "LayerNorm"), Is.EqualTo(2));
            Assert.That(ops.Single(f => f[1] == "AdamW")[Array.IndexOf(header, "bytes")], Is.EqualTo((32L << 20).ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void TrainingOpsCsvRowLeavesTheKernelColumnsEmptyOffManaged()
    {
        var timing = new Timing(2, 1, 3, double.NaN, "device markers");
        var row = new RouteKit.Perf.Training.TrainingOpTiming("Relu", "forward", "T=4 C=8", 4e6, 4e6, timing, Kernel: null);
        var check = LoadGate.Check(new LoadAverages(0.4, 30, 48), 2, allowBusy: false);
        var line = RouteKit.Perf.Training.TrainingOpsBenchmark.CsvRow("cuda", row, copyGBps: 4, readGBps: double.NaN, check);
        Assert.That(line, Is.EqualTo("cuda,Relu,forward,T=4 C=8,4000000,4.00,2.0000,1.0000,3.0000,2.00,4.00,0.5000,,,,,,0.40,30.00,48.00,quiet"));
        Assert.That(line.Split(','), Has.Length.EqualTo(RouteKit.Perf.Training.TrainingOpsBenchmark.CsvHeader.Split(',').Length));
    }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(17)]
    [TestCase(64)]
    [TestCase(1025)]
    [TestCase(4099)]
    public void TheReadStreamSumsEveryElement(int n)
    {
        // Small integers: exact in float32 whatever the order of the adds, so any skipped or repeated element shows.
        var x = Enumerable.Range(0, n).Select(i => (float)(i % 7 - 3)).ToArray();
        Assert.That(ReadBandwidth.Sum(x), Is.EqualTo(x.Sum()));
        Assert.That(ReadBandwidth.VectorBits, Is.AnyOf(128, 256, 512));
    }

    [Test]
    public void TheReadBandwidthIsMeasuredOnASmallBuffer() =>
        Assert.That(ReadBandwidth.Measure(8L << 20, repeats: 2), Is.GreaterThan(0).And.LessThan(1e4));
}
