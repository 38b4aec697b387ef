namespace RouteKit;

/// <summary>Thrown when a tensor does not fit in the memory its device has free.</summary>
public sealed class DeviceOutOfMemoryException : InvalidOperationException
{
    /// <summary>Creates the exception for a request of <paramref name="bytesRequested"/> bytes.</summary>
    public DeviceOutOfMemoryException(string deviceName, long bytesRequested, long bytesFree, Exception? inner = null)
        : base($"Device '{deviceName}' cannot hold {bytesRequested:N0} bytes: {bytesFree:N0} bytes are free.", inner)
    {
        BytesRequested = bytesRequested;
        BytesFree = bytesFree;
    }

    /// <summary>Bytes the allocation asked for.</summary>
    public long BytesRequested { get; }

    /// <summary>Bytes the device reported free when the allocation was refused.</summary>
    public long BytesFree { get; }
}
