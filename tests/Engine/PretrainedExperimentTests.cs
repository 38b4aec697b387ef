using NUnit.Framework;
using RouteKit.Engine.Experiments;

namespace RouteKit.Tests.Engine;

/// <summary>`routekit pretrained`: its bad usage and model names. The run itself (both models, smoke profile, Managed) is
/// checked in <see cref="ReproduceTests"/>, which runs it as part of `reproduce`.</summary>
public sealed class PretrainedExperimentTests
{
    [TestCase("bert-large")]
    [TestCase("")]
    public void UnknownModelIsRefused(string model)
    {
        using var tmp = new TempResults();
        tmp.AssertBadUsage("pretrained", "--model", model, "--backend", "managed", "--profile", "smoke");
    }

    [Test]
    public void ModelNamesParse()
    {
        Assert.That(PretrainedExperiment.ParseModels("all"), Has.Count.EqualTo(2));
        Assert.That(PretrainedExperiment.ParseModels(" Arctic-XS "), Is.EqualTo(new[] { RouteKit.Engine.Pretrained.PretrainedModelId.ArcticXs }));
    }
}
