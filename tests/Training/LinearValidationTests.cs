using NUnit.Framework;
using RouteKit.Tests.Support;

namespace RouteKit.Tests;

/// <summary>Bad input to Linear is refused before any launch, naming the argument and shapes, with outputs untouched.</summary>
[TestFixture]
public sealed class LinearValidationTests
{
    private Device device = null!;

    [OneTimeSetUp]
    public void Create() => device = Device.Create(Backend.Managed);

    [OneTimeTearDown]
    public void Dispose() => device.Dispose();

    private Tensor Filled(float value, params int[] shape)
    {
        var n = shape.Aggregate(1, (a, s) => a * s);
        return device.FromArray(Enumerable.Repeat(value, n).ToArray(), shape);
    }

    [Test]
    public void ForwardRefusesWrongShapes()
    {
        using var x = Filled(1, 4, 3);
        using var w = Filled(1, 5, 2);
        using var wOk = Filled(1, 5, 3);
        using var b = Filled(1, 4);
        using var y = Filled(42, 4, 6);
        using var x3 = Filled(1, 2, 2, 3);
        var e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, w))!;
        Assert.That(e.ParamName, Is.EqualTo("w"));
        Assert.That(e.Message, Does.Contain("[5, 2]").And.Contain("[O, 3]"));
        e = Assert.Throws<ArgumentException>(() => Linear.Forward(x3, wOk))!;
        Assert.That(e.ParamName, Is.EqualTo("x"));
        Assert.That(e.Message, Does.Contain("[2, 2, 3]"));
        e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, wOk, b))!;
        Assert.That(e.ParamName, Is.EqualTo("b"));
        Assert.That(e.Message, Does.Contain("[4]").And.Contain("[5]"));
        e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, wOk, null, y))!;
        Assert.That(e.ParamName, Is.EqualTo("y"));
        Assert.That(e.Message, Does.Contain("[4, 6]").And.Contain("[4, 5]"));
        Assert.That(y.ToArray(), Is.All.EqualTo(42f));
    }

    [Test]
    public void ForwardRefusesNonFiniteInputsAndLeavesOutputUntouched()
    {
        using var x = Filled(1, 4, 3);
        using var w = Filled(1, 5, 3);
        using var b = Filled(1, 5);
        using var y = Filled(42, 4, 5);
        var bad = Enumerable.Repeat(1f, 15).ToArray();
        bad[7] = float.NaN;
        using var wNaN = device.FromArray(bad, 5, 3);
        var e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, wNaN, b, y))!;
        Assert.That(e.ParamName, Is.EqualTo("w"));
        Assert.That(e.Message, Does.Contain("flat index 7"));
        bad = Enumerable.Repeat(1f, 5).ToArray();
        bad[2] = float.PositiveInfinity;
        using var bInf = device.FromArray(bad, 5);
        e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, w, bInf, y))!;
        Assert.That(e.ParamName, Is.EqualTo("b"));
        Assert.That(y.ToArray(), Is.All.EqualTo(42f));
    }

    [Test]
    public void RefusesAliasingAndOtherDevices()
    {
        using var x = Filled(1, 4, 4);
        using var w = Filled(1, 4, 4);
        var e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, w, null, x))!;
        Assert.That(e.ParamName, Is.EqualTo("y"));
        using var other = Device.Create(Backend.Managed);
        using var wElsewhere = other.FromArray(new float[16], 4, 4);
        e = Assert.Throws<ArgumentException>(() => Linear.Forward(x, wElsewhere))!;
        Assert.That(e.ParamName, Is.EqualTo("w"));
        using var dy = Filled(1, 4, 4);
        using var dw = Filled(42, 4, 4);
        using var sameTwice = new LinearGradients(dw, dw, null);
        e = Assert.Throws<ArgumentException>(() => Linear.Backward(dy, x, w, hasBias: false, sameTwice))!;
        Assert.That(e.ParamName, Is.EqualTo("gradients.DW"));
        using var dxIsInput = new LinearGradients(dy, Filled(0, 4, 4), null);
        e = Assert.Throws<ArgumentException>(() => Linear.Backward(dy, x, w, hasBias: false, dxIsInput))!;
        Assert.That(e.ParamName, Is.EqualTo("gradients.DX"));
        Assert.That(dw.ToArray(), Is.All.EqualTo(42f));
    }

    [Test]
    public void BackwardRefusesBadGradientsAndNonFiniteInputs()
    {
        using var x = Filled(1, 4, 3);
        using var w = Filled(1, 5, 3);
        using var dyWrong = Filled(1, 4, 3);
        var e = Assert.Throws<ArgumentException>(() => Linear.Backward(dyWrong, x, w, hasBias: true))!;
        Assert.That(e.ParamName, Is.EqualTo("dy"));
        Assert.That(e.Message, Does.Contain("[4, 3]").And.Contain("[4, 5]"));
        using var dy = Filled(1, 4, 5);
        using var g = new LinearGradients(Filled(42, 4, 3), Filled(42, 5, 3), null);
        e = Assert.Throws<ArgumentException>(() => Linear.Backward(dy, x, w, hasBias: true, g))!;
        Assert.That(e.ParamName, Is.EqualTo("gradients"));
        var bad = Enumerable.Repeat(1f, 20).ToArray();
        bad[19] = float.NegativeInfinity;
        using var dyInf = device.FromArray(bad, 4, 5);
        e = Assert.Throws<ArgumentException>(() => Linear.Backward(dyInf, x, w, hasBias: false, g))!;
        Assert.That(e.ParamName, Is.EqualTo("dy"));
        Assert.That(g.DX.ToArray(), Is.All.EqualTo(42f));
        Assert.That(g.DW.ToArray(), Is.All.EqualTo(42f));
    }
}
