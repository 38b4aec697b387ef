// One run of one experiment: results/<experiment>/<run-id>/ with config.json, metrics.jsonl and summary.md.
//
// Run ids are "yyyyMMdd-HHmmss-xxxxxx" (UTC, then 6 random hex digits), so they sort by start time. A new run owns its
// folder because it creates config.json there with FileMode.CreateNew: a second process racing for the same id fails
// that create and draws another id, so two runs never write into the same folder. While a run is going it holds
// .lock with FileShare.None (an flock on Linux, released by the kernel when the process dies, kill -9 included), so a
// resume cannot attach to a run that is still alive.
//
// Resume: --resume alone continues the newest run of the experiment whose recorded options equal this invocation's
// (experiment, profile, seed, backends); --resume <run-id> continues that run and refuses (exit 2) if its options
// differ. Completed points are the records of metrics.jsonl; a torn last line (the process died mid-write) is cut off,
// so that point is computed again, and only that one.
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RouteKit.Engine.Runs;

/// <summary>Bad usage found before any work: the CLI prints the message as one line and exits with 2.</summary>
internal sealed class UsageException(string message) : Exception(message);

/// <summary>An open run folder: config, the append-only metrics file and the keys of the points already done.</summary>
internal sealed class RunFolder : IDisposable
{
    public const string ConfigFile = "config.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string SummaryFile = "summary.md";
    private const string LockFile = ".lock";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private readonly FileStream lockStream;
    private readonly FileStream metrics;
    private readonly HashSet<string> done = [];
    private readonly List<JsonObject> records = [];

    private RunFolder(string path, string runId, FileStream lockStream, bool resumed, int tornBytes)
    {
        Path = path;
        RunId = runId;
        this.lockStream = lockStream;
        Resumed = resumed;
        TornBytes = tornBytes;
        var file = System.IO.Path.Combine(path, MetricsFile);
        if (File.Exists(file))
            foreach (var line in File.ReadLines(file))
            {
                var record = JsonNode.Parse(line)!.AsObject();
                records.Add(record);
                done.Add((string)record["key"]!);
            }
        Skipped = done.Count;
        metrics = new FileStream(file, FileMode.Append, FileAccess.Write, FileShare.Read);
    }

    /// <summary>The run folder.</summary>
    public string Path { get; }

    /// <summary>The run id (the folder's name).</summary>
    public string RunId { get; }

    /// <summary>True when this continues an earlier run.</summary>
    public bool Resumed { get; }

    /// <summary>Points already in metrics.jsonl when the run was opened: they are skipped, not recomputed.</summary>
    public int Skipped { get; }

    /// <summary>Bytes of a torn last record cut off on resume (0 when the previous process ended between records).</summary>
    public int TornBytes { get; }

    /// <summary>Every record, earlier ones first, including those written by this process.</summary>
    public IReadOnlyList<JsonObject> Records => records;

    /// <summary>True when the point <paramref name="key"/> is already in metrics.jsonl.</summary>
    public bool IsDone(string key) => done.Contains(key);

    /// <summary>
    /// Validates a resume request without touching anything: returns the run folder to continue, or null for a new run.
    /// </summary>
    /// <exception cref="UsageException">--resume named a run that does not exist, is not a run, or has other options.</exception>
    public static string? FindResume(string outRoot, string experiment, JsonObject options, string? resume)
    {
        if (resume is null) return null;
        var root = System.IO.Path.Combine(outRoot, experiment);
        var wanted = options.ToJsonString();
        if (resume.Length > 0)
        {
            var path = System.IO.Path.Combine(root, resume);
            var config = System.IO.Path.Combine(path, ConfigFile);
            if (resume.IndexOfAny(['/', '\\']) >= 0 || !File.Exists(config))
                throw new UsageException($"--resume {resume}: no run {resume} of '{experiment}' under {root} (no {ConfigFile} there).");
            var recorded = ReadOptions(config);
            if (recorded != wanted)
                throw new UsageException($"--resume {resume}: that run was made with other options ({recorded}); this invocation has {wanted}.");
            return path;
        }
        if (!Directory.Exists(root)) return null;
        return Directory.GetDirectories(root)
            .OrderByDescending(d => System.IO.Path.GetFileName(d), StringComparer.Ordinal)
            .FirstOrDefault(d => File.Exists(System.IO.Path.Combine(d, ConfigFile)) && ReadOptions(System.IO.Path.Combine(d, ConfigFile)) == wanted);
    }

    /// <summary>Creates a new run folder and writes config.json into it, or reopens <paramref name="resumePath"/>.</summary>
    public static RunFolder Open(string outRoot, string experiment, JsonObject options, JsonArray devices, string commandLine, string? resumePath)
    {
        if (resumePath is not null)
        {
            var lockStream = TakeLock(resumePath)
                ?? throw new UsageException($"--resume: run {System.IO.Path.GetFileName(resumePath)} is still running in another process.");
            var torn = CutTornTail(System.IO.Path.Combine(resumePath, MetricsFile));
            return new RunFolder(resumePath, System.IO.Path.GetFileName(resumePath), lockStream, resumed: true, torn);
        }
        var root = System.IO.Path.Combine(outRoot, experiment);
        Directory.CreateDirectory(root);
        for (var attempt = 0; ; attempt++)
        {
            var id = $"{DateTime.UtcNow:yyyyMMdd-HHmmss}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant()}";
            var path = System.IO.Path.Combine(root, id);
            Directory.CreateDirectory(path);
            var config = new JsonObject
            {
                ["run_id"] = id,
                ["experiment"] = experiment,
                ["options"] = options.DeepClone(),
                ["git_commit"] = BuildInfo.GitCommit,
                ["devices"] = devices.DeepClone(),
                ["started_utc"] = DateTime.UtcNow.ToString("O"),
                ["command_line"] = commandLine,
                ["machine"] = $"{Environment.MachineName}, {Environment.ProcessorCount} logical cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}",
            };
            try
            {
                using (var f = new FileStream(System.IO.Path.Combine(path, ConfigFile), FileMode.CreateNew, FileAccess.Write))
                {
                    f.Write(Encoding.UTF8.GetBytes(config.ToJsonString(Indented) + "\n"));
                    f.Flush(true);
                }
            }
            catch (IOException) when (attempt < 10)
            {
                // Another process drew the same id in the same second and owns that folder: draw again.
                continue;
            }
            var lockStream = TakeLock(path) ?? throw new IOException($"Could not lock the new run folder {path}.");
            return new RunFolder(path, id, lockStream, resumed: false, tornBytes: 0);
        }
    }

    /// <summary>Appends one completed point and makes it durable (flushed to the disk) before returning.</summary>
    public void Append(JsonObject record)
    {
        var key = (string)record["key"]!;
        if (!done.Add(key)) throw new InvalidOperationException($"Point '{key}' is already in {MetricsFile}.");
        // One write of the whole line, then fsync: a kill leaves either the full record or a torn tail that resume cuts.
        metrics.Write(Encoding.UTF8.GetBytes(record.ToJsonString() + "\n"));
        metrics.Flush(true);
        records.Add(record);
    }

    /// <summary>Writes summary.md (replacing an earlier one: it is rebuilt from every record).</summary>
    public void WriteSummary(string markdown) => File.WriteAllText(System.IO.Path.Combine(Path, SummaryFile), markdown);

    /// <inheritdoc />
    public void Dispose()
    {
        metrics.Dispose();
        lockStream.Dispose();
    }

    private static string ReadOptions(string configFile)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(configFile))?["options"]?.ToJsonString() ?? "";
        }
        catch (JsonException)
        {
            return "";
        }
    }

    private static FileStream? TakeLock(string path)
    {
        try
        {
            return new FileStream(System.IO.Path.Combine(path, LockFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    // Keeps the longest prefix of whole, parseable lines; returns the number of bytes cut.
    private static int CutTornTail(string file)
    {
        if (!File.Exists(file)) return 0;
        var bytes = File.ReadAllBytes(file);
        var keep = 0;
        var start = 0;
        for (var i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] != (byte)'\n') continue;
            try
            {
                JsonNode.Parse(bytes.AsSpan(start, i - start));
            }
            catch (JsonException)
            {
                break;
            }
            keep = i + 1;
            start = i + 1;
        }
        if (keep == bytes.Length) return 0;
        using var f = new FileStream(file, FileMode.Open, FileAccess.Write);
        f.SetLength(keep);
        f.Flush(true);
        return bytes.Length - keep;
    }
}
