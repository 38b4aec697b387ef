using RouteKit.Engine.Pretrained;

namespace RouteKit.Tests.Pretrained;

/// <summary>The two packaged models, each read and parsed once per test run (about 90 MB each).</summary>
internal static class PretrainedModels
{
    private static readonly Dictionary<PretrainedModelId, Lazy<(PretrainedPackage Package, OnnxModel Model, BertStructure Structure)>> Cache =
        Enum.GetValues<PretrainedModelId>().ToDictionary(id => id, id => new Lazy<(PretrainedPackage, OnnxModel, BertStructure)>(() =>
        {
            var package = PretrainedPackage.Load(id);
            var model = OnnxModel.Parse(package.ModelBytes);
            return (package, model, BertStructure.Read(model));
        }));

    public static PretrainedPackage Package(PretrainedModelId id) => Cache[id].Value.Package;
    public static OnnxModel Model(PretrainedModelId id) => Cache[id].Value.Model;
    public static BertStructure Structure(PretrainedModelId id) => Cache[id].Value.Structure;
}
