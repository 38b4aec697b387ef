// `routekit merge <dirs...>`: joins the shard run folders of one sweep (signature or brake) into a new run folder of
// that experiment, with every record once, in the sweep's point order, and writes the report the unsharded run would
// have written. The shards must agree on experiment, profile, seed and backends (their options less the shard); a point
// present in two folders must have the same record (timing fields aside): training is deterministic, so a difference
// means the shards did not run the same code or data, and the merge refuses. Points no shard computed are listed in the
// summary and the command exits 1, so a job array that lost a shard fails loudly.
using System.Text.Json.Nodes;
using RouteKit.Engine.Runs;
using Spectre.Console;

namespace RouteKit.Engine.Experiments;

/// <summary>Joins shard run folders (see the file header).</summary>
internal static class Merge
{
    /// <summary>Fields of a record that depend on when and how fast it ran, not on what it computed.</summary>
    public static readonly string[] TimingFields = ["seconds", "completed_utc"];

    public static RouterSweeps.Result Run(IAnsiConsole console, IReadOnlyList<string> dirs, string outRoot, string commandLine)
    {
        if (dirs.Count == 0) throw new UsageException("merge: name at least one run folder.");
        var shards = dirs.Select(Read).ToList();
        var first = shards[0];
        if (first.Experiment is not (RouterSweeps.SignatureName or RouterSweeps.BrakeName or GraphExperiment.Name or DepthExperiment.Name))
            throw new UsageException($"merge: {first.Dir} is a '{first.Experiment}' run; only {RouterSweeps.SignatureName}, {RouterSweeps.BrakeName}, {GraphExperiment.Name} and {DepthExperiment.Name} sweeps shard.");
        foreach (var s in shards.Skip(1))
            if (s.Experiment != first.Experiment || s.Common.ToJsonString() != first.Common.ToJsonString())
                throw new UsageException($"merge: {s.Dir} ({s.Experiment}, {s.Common.ToJsonString()}) is not a shard of the same sweep as {first.Dir} ({first.Experiment}, {first.Common.ToJsonString()}).");
        var profile = Enum.Parse<RunProfile>((string)first.Common["profile"]!, ignoreCase: true);
        var seed = (int)first.Common["seed"]!;
        var points = first.Experiment switch
        {
            GraphExperiment.Name => GraphExperiment.Points(profile, seed).Select(p => p.Key).ToList(),
            DepthExperiment.Name => DepthExperiment.Points(profile, seed).Select(p => p.Key).ToList(),
            _ => RouterSweeps.Points(first.Experiment, profile, seed).Select(p => p.Key).ToList(),
        };
        var order = points.Select((key, i) => (key, i)).ToDictionary(x => x.key, x => x.i);
        var merged = new Dictionary<string, (JsonObject Record, string Dir)>();
        foreach (var s in shards)
            foreach (var r in s.Records)
            {
                var key = (string)r["key"]!;
                if (!order.ContainsKey(key))
                    throw new UsageException($"merge: {s.Dir} has a point '{key}' that is not a point of this {first.Experiment} sweep.");
                if (merged.TryGetValue(key, out var seen))
                {
                    if (Content(seen.Record) != Content(r))
                        throw new UsageException($"merge: point '{key}' differs between {seen.Dir} and {s.Dir}; the shards did not compute the same thing.");
                    continue;
                }
                merged[key] = (r, s.Dir);
            }
        var options = first.Common.DeepClone().AsObject();
        options["shard"] = "merged";
        options["merged_from"] = new JsonArray(shards.Select(s => (JsonNode)Path.GetFileName(s.Dir)).ToArray());
        using var run = RunFolder.Open(outRoot, first.Experiment, options, first.Devices, commandLine, resumePath: null);
        foreach (var (record, _) in merged.Values.OrderBy(m => order[(string)m.Record["key"]!]))
            run.Append(record.DeepClone().AsObject());
        var result = first.Experiment switch
        {
            GraphExperiment.Name => GraphExperiment.Report(run, profile, seed, Shard.Whole),
            DepthExperiment.Name => DepthExperiment.Report(run, profile, seed, Shard.Whole),
            _ => RouterSweeps.Report(run, first.Experiment, profile, seed, Shard.Whole),
        };
        console.WriteLine($"merge: {merged.Count} of {points.Count} points from {shards.Count} folder(s) into {run.Path}" +
            (result.Missing > 0 ? $"; {result.Missing} point(s) missing (listed in {RunFolder.SummaryFile})." : "."));
        return result;
    }

    /// <summary>A record without its timing fields, as JSON (what two computations of one point must agree on).</summary>
    public static string Content(JsonObject record)
    {
        var copy = record.DeepClone().AsObject();
        foreach (var f in TimingFields) copy.Remove(f);
        return copy.ToJsonString();
    }

    private sealed record ShardFolder(string Dir, string Experiment, JsonObject Common, JsonArray Devices, List<JsonObject> Records);

    private static ShardFolder Read(string dir)
    {
        var config = Path.Combine(dir, RunFolder.ConfigFile);
        if (!File.Exists(config)) throw new UsageException($"merge: {dir} is not a run folder (no {RunFolder.ConfigFile}).");
        JsonObject c;
        try
        {
            c = JsonNode.Parse(File.ReadAllText(config))!.AsObject();
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new UsageException($"merge: {config} is not valid JSON ({e.Message}).");
        }
        var options = c["options"]?.DeepClone().AsObject() ?? throw new UsageException($"merge: {config} has no options.");
        var experiment = (string?)c["experiment"] ?? "";
        options.Remove("shard");
        var records = new List<JsonObject>();
        var metrics = Path.Combine(dir, RunFolder.MetricsFile);
        if (File.Exists(metrics))
            foreach (var line in File.ReadLines(metrics))
            {
                try
                {
                    records.Add(JsonNode.Parse(line)!.AsObject());
                }
                catch (System.Text.Json.JsonException)
                {
                    break; // a torn last line of a killed shard: that point was not completed
                }
            }
        return new ShardFolder(Path.GetFullPath(dir), experiment, options, c["devices"]?.DeepClone().AsArray() ?? [], records);
    }
}
