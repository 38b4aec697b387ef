namespace RouteKit;

/// <summary>Checks of option values shared by every op, made once at the API boundary before any backend is chosen.</summary>
internal static class OptionChecks
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> naming the option, the value seen and the allowed values when
    /// <paramref name="value"/> is not a defined member of <typeparamref name="TEnum"/> (a cast such as <c>(Score)7</c>).
    /// Without it each backend read an undefined value its own way: Managed ran it as the default, the ILGPU
    /// dispatcher threw from deep inside kernel selection.
    /// </summary>
    public static void Defined<TEnum>(TEnum value, string name) where TEnum : struct, Enum
    {
        if (Enum.IsDefined(value)) return;
        var allowed = string.Join(", ", Enum.GetValues<TEnum>().Select(v => $"{v} ({Convert.ToInt64(v)})"));
        throw new ArgumentException(
            $"{name} = {Convert.ToInt64(value)} is not a defined {typeof(TEnum).Name}; allowed values: {allowed}.", name);
    }
}
