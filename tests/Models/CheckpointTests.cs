using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using RouteKit.Engine.Data;
using RouteKit.Engine.Models;
using RouteKit.Engine.Training;
using RouteKit.Tests.Engine;

namespace RouteKit.Tests.Models;

/// <summary>
/// Checkpoints resume bit for bit on Managed: in-process (save, rebuild, load, continue) and across a real SIGKILL of
/// a `routekit train` process, against an uninterrupted run; damaged checkpoints are refused.
/// </summary>
public sealed class CheckpointTests
{
    private static readonly Lazy<FortuneText> Text = new(FortuneText.LoadSample);

    private static Trainer NewTrainer(Device device, MixerKind mixer) => new(device,
        new ModelConfig { Mixer = mixer, Layers = 1, Width = 16, Context = 16, Heads = 2, Brake = mixer == MixerKind.Recurrent ? 8f : 0.5f },
        new TrainOptions { Steps = 24, Batch = 4, WarmupSteps = 4 }, Text.Value.Train, Text.Value.Validation);

    [TestCase(MixerKind.Attention)]
    [TestCase(MixerKind.Mamba)]
    [TestCase(MixerKind.Recurrent)]
    public void SavedAndLoadedTrainerContinuesBitForBit(MixerKind mixer)
    {
        using var device = Device.Create(Backend.Managed);
        var path = Path.Combine(Path.GetTempPath(), $"routekit-ckpt-{Guid.NewGuid():N}.bin");
        try
        {
            var straight = new List<float>();
            using (var t = NewTrainer(device, mixer))
                for (var s = 0; s < 24; s++) straight.Add(t.TrainStep().Loss);
            var resumed = new List<float>();
            using (var t = NewTrainer(device, mixer))
            {
                for (var s = 0; s < 10; s++) resumed.Add(t.TrainStep().Loss);
                Checkpoint.Save(path, t, "test");
                t.TrainStep(); // moves on past the checkpoint, so the load must really restore
            }
            using (var t = NewTrainer(device, mixer))
            {
                Checkpoint.Load(path, t);
                Assert.That(t.Step, Is.EqualTo(10));
                for (var s = 10; s < 24; s++) resumed.Add(t.TrainStep().Loss);
            }
            Assert.That(resumed.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(straight.Select(BitConverter.SingleToInt32Bits)));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void DamagedOrForeignCheckpointsAreRefused()
    {
        using var device = Device.Create(Backend.Managed);
        var path = Path.Combine(Path.GetTempPath(), $"routekit-ckpt-{Guid.NewGuid():N}.bin");
        try
        {
            using var t = NewTrainer(device, MixerKind.Attention);
            t.TrainStep();
            Checkpoint.Save(path, t, "test");
            Assert.That(Checkpoint.ReadHeader(path).Model, Is.EqualTo(t.Model.Config));
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..^100]);
            Assert.That(() => Checkpoint.Load(path, t), Throws.TypeOf<InvalidDataException>().With.Message.Contains("SHA-256"));
            bytes[5000] ^= 1;
            File.WriteAllBytes(path, bytes);
            Assert.That(() => Checkpoint.Load(path, t), Throws.TypeOf<InvalidDataException>().With.Message.Contains("SHA-256"));
            File.WriteAllBytes(path, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44]);
            Assert.That(() => Checkpoint.Load(path, t), Throws.TypeOf<InvalidDataException>().With.Message.Contains("not a RouteKit checkpoint"));
            using var other = NewTrainer(device, MixerKind.Recurrent);
            bytes[5000] ^= 1;
            File.WriteAllBytes(path, bytes);
            Assert.That(() => Checkpoint.Load(path, other), Throws.TypeOf<InvalidDataException>().With.Message.Contains("saved for a model"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>
    /// A `routekit train` process killed with SIGKILL after a checkpoint, then resumed: the resumed run re-runs the steps
    /// after the checkpoint, reproduces the killed run's recorded losses bit for bit, and ends with every step's loss equal
    /// to an uninterrupted run's.
    /// </summary>
    [Test]
    public void KilledTrainingResumesBitForBit()
    {
        string[] train = ["train", "--mixer", "mamba", "--layers", "1", "--width", "16", "--context", "16", "--batch", "4",
            "--steps", "200", "--eval-every", "100", "--checkpoint-every", "15", "--backend", "managed"];
        using var killed = new TempResults();
        using var straight = new TempResults();
        using (var child = EngineProcess.Start(train, killed.Root))
        {
            var clock = Stopwatch.StartNew();
            while (TrainSteps(killed.Root).Count < 40 && !child.HasExited && clock.Elapsed < TimeSpan.FromSeconds(120)) Thread.Sleep(2);
            Assert.That(child.HasExited, Is.False, "the run ended before the test could kill it");
            child.Kill(entireProcessTree: true); // SIGKILL on Linux: no handler runs
            child.WaitForExit();
        }
        var recordedBefore = TrainSteps(killed.Root).Count;
        Assert.That(recordedBefore, Is.InRange(40, 199));

        var (code, text) = killed.Run([.. train, "--resume"]);
        Assert.That(text, Does.Contain("resumed run").And.Not.Contain("differed"), text);
        var (code2, text2) = straight.Run(train);
        Assert.That(code, Is.EqualTo(code2), text + text2);
        var resumed = TrainSteps(killed.Root);
        var reference = TrainSteps(straight.Root);
        Assert.That(resumed.Keys, Is.EquivalentTo(Enumerable.Range(0, 200)));
        Assert.That(resumed, Is.EquivalentTo(reference), "every step's loss equals the uninterrupted run's, bit for bit");
    }

    // step -> loss (as recorded, full precision) of the one train run under root; a torn last line is ignored.
    private static Dictionary<int, double> TrainSteps(string root)
    {
        var dir = Path.Combine(root, "train");
        if (!Directory.Exists(dir)) return [];
        var file = Directory.GetDirectories(dir).Select(d => Path.Combine(d, "metrics.jsonl")).FirstOrDefault(File.Exists);
        if (file is null) return [];
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var content = new StreamReader(stream).ReadToEnd();
        var end = content.LastIndexOf('\n');
        if (end < 0) return [];
        return content[..end].Split('\n').Select(l => JsonNode.Parse(l)!).Where(n => (string?)n["kind"] == "train")
            .ToDictionary(n => (int)n["step"]!, n => (double)n["loss"]!);
    }
}
