// Checkpoints of a training run: a versioned binary file holding the configuration (JSON), the step, the batch
// sampler's state (the data cursor), and the flat parameters and both AdamW moments, with a SHA-256 of everything
// before it at the end. Written to a temporary file, flushed to disk and renamed over the old one, so a run killed at
// any instant (SIGKILL included) leaves either the previous checkpoint or the new one, never a torn file. A resumed
// run draws the same batches and computes the same floats, so on Managed its losses equal an uninterrupted run's bit
// for bit (tests/Models/CheckpointTests.cs kills a real process to check it).
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using RouteKit.Engine.Models;

namespace RouteKit.Engine.Training;

/// <summary>Saves and restores a <see cref="Trainer"/>'s whole state.</summary>
public static class Checkpoint
{
    /// <summary>The first 8 bytes of every checkpoint.</summary>
    public static ReadOnlySpan<byte> Magic => "RKCKPT\r\n"u8;

    /// <summary>The format version this build writes and reads.</summary>
    public const int Version = 1;

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false, IncludeFields = false };

    /// <summary>What a checkpoint describes, besides the tensors.</summary>
    /// <param name="Model">The model configuration.</param>
    /// <param name="Train">The optimisation options.</param>
    /// <param name="Corpus">Which text (e.g. "fortunes sample") the run trains on.</param>
    public sealed record Header(ModelConfig Model, TrainOptions Train, string Corpus);

    /// <summary>Writes <paramref name="trainer"/>'s state to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, Trainer trainer, string corpus)
    {
        var ps = trainer.Model.Parameters;
        var n = ps.Count;
        var buffer = new float[n];
        var tmp = path + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            void Put(ReadOnlySpan<byte> bytes)
            {
                file.Write(bytes);
                hash.AppendData(bytes);
            }
            Put(Magic);
            Put(BitConverter.GetBytes(Version));
            var header = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new Header(trainer.Model.Config, trainer.Options, corpus), Json));
            Put(BitConverter.GetBytes(header.Length));
            Put(header);
            Put(BitConverter.GetBytes(trainer.Step));
            Put(BitConverter.GetBytes(trainer.DataRng.State));
            Put(BitConverter.GetBytes((long)n));
            foreach (var t in new[] { ps.Values, ps.M, ps.V })
            {
                t.CopyTo(buffer);
                Put(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()));
            }
            file.Write(hash.GetHashAndReset());
            file.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads the header of the checkpoint at <paramref name="path"/> (to rebuild a matching trainer).</summary>
    /// <exception cref="InvalidDataException">The file is not a checkpoint of this version, is truncated, or fails its hash.</exception>
    public static Header ReadHeader(string path) => Read(path, null).Header;

    /// <summary>Restores <paramref name="trainer"/> (built from the checkpoint's header) from <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">As <see cref="ReadHeader"/>, or the checkpoint's model differs from the trainer's.</exception>
    public static void Load(string path, Trainer trainer) => Read(path, trainer);

    private static (Header Header, int Step) Read(string path, Trainer? trainer)
    {
        var bytes = File.ReadAllBytes(path);
        var name = Path.GetFileName(path);
        if (bytes.Length < Magic.Length + 4 + 32 || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException($"{name}: not a RouteKit checkpoint (bad magic or too short).");
        var body = bytes.AsSpan(0, bytes.Length - 32);
        if (!SHA256.HashData(body).AsSpan().SequenceEqual(bytes.AsSpan(bytes.Length - 32)))
            throw new InvalidDataException($"{name}: the SHA-256 at its end does not match its contents (truncated or corrupted).");
        var at = Magic.Length;
        var version = BitConverter.ToInt32(bytes, at);
        at += 4;
        if (version != Version)
            throw new InvalidDataException($"{name}: checkpoint format version {version}; this build reads version {Version}.");
        var headerLength = BitConverter.ToInt32(bytes, at);
        at += 4;
        var header = JsonSerializer.Deserialize<Header>(bytes.AsSpan(at, headerLength), Json)
            ?? throw new InvalidDataException($"{name}: empty header.");
        at += headerLength;
        var step = BitConverter.ToInt32(bytes, at);
        at += 4;
        var rng = BitConverter.ToUInt64(bytes, at);
        at += 8;
        var n = BitConverter.ToInt64(bytes, at);
        at += 8;
        if (at + 3 * n * sizeof(float) != body.Length)
            throw new InvalidDataException($"{name}: holds {body.Length - at:N0} bytes of tensors; {n:N0} parameters need {3 * n * sizeof(float):N0}.");
        if (trainer is null) return (header, step);
        var ps = trainer.Model.Parameters;
        if (n != ps.Count || header.Model != trainer.Model.Config)
            throw new InvalidDataException(
                $"{name}: saved for a model of {n:N0} parameters ({header.Model}); this trainer's has {ps.Count:N0} ({trainer.Model.Config}).");
        var floats = new float[n];
        foreach (var t in new[] { ps.Values, ps.M, ps.V })
        {
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes.AsSpan(at, (int)(n * sizeof(float)))).CopyTo(floats);
            t.CopyFrom(floats);
            at += (int)(n * sizeof(float));
        }
        trainer.Step = step;
        trainer.DataRng.State = rng;
        return (header, step);
    }
}
