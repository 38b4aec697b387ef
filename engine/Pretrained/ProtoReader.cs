namespace RouteKit.Engine.Pretrained;

/// <summary>
/// A minimal protobuf wire-format reader over a byte buffer: varints, fixed32/64 and length-delimited fields, enough for
/// the few ONNX messages <see cref="OnnxModel"/> reads. Every read is bounds-checked; a truncated or corrupt buffer
/// throws <see cref="InvalidDataException"/> naming the absolute byte offset and the message being read, never an
/// <see cref="IndexOutOfRangeException"/>.
/// </summary>
internal struct ProtoReader
{
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly long _base;
    private readonly string _message;
    private int _position;

    /// <summary>A reader over <paramref name="buffer"/>, which starts at absolute offset <paramref name="baseOffset"/>.</summary>
    public ProtoReader(ReadOnlyMemory<byte> buffer, long baseOffset, string message)
    {
        _buffer = buffer;
        _base = baseOffset;
        _message = message;
        _position = 0;
    }

    /// <summary>Whether the whole message has been read.</summary>
    public readonly bool End => _position >= _buffer.Length;

    /// <summary>The absolute offset of the next byte.</summary>
    public readonly long Offset => _base + _position;

    /// <summary>The message being read (for error messages).</summary>
    public readonly string Message => _message;

    /// <summary>Reads a field tag: its number and wire type.</summary>
    public (int Field, int WireType) ReadTag()
    {
        long start = Offset;
        ulong tag = ReadVarint();
        int wireType = (int)(tag & 7);
        ulong field = tag >> 3;
        if (field == 0 || field > int.MaxValue)
            throw Error(start, $"invalid field number {field} in a tag");
        return ((int)field, wireType);
    }

    /// <summary>Reads a base-128 varint (at most 10 bytes).</summary>
    public ulong ReadVarint()
    {
        long start = Offset;
        var span = _buffer.Span;
        ulong result = 0;
        for (int shift = 0; shift < 70; shift += 7)
        {
            if (_position >= span.Length) throw Error(start, "truncated varint");
            byte b = span[_position++];
            result |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return result;
        }
        throw Error(start, "varint longer than 10 bytes");
    }

    /// <summary>Reads a little-endian 32-bit value.</summary>
    public uint ReadFixed32()
    {
        var bytes = Take(4, "fixed32");
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.Span);
    }

    /// <summary>Reads a little-endian 64-bit value.</summary>
    public ulong ReadFixed64()
    {
        var bytes = Take(8, "fixed64");
        return System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes.Span);
    }

    /// <summary>Reads a length-delimited field's bytes (no copy) and the absolute offset they start at.</summary>
    public (ReadOnlyMemory<byte> Bytes, long Offset) ReadBytes(int field)
    {
        long start = Offset;
        ulong length = ReadVarint();
        if (length > (ulong)(_buffer.Length - _position))
            throw Error(start, $"field {field} claims {length} bytes but only {_buffer.Length - _position} remain");
        long offset = Offset;
        var bytes = _buffer.Slice(_position, (int)length);
        _position += (int)length;
        return (bytes, offset);
    }

    /// <summary>A reader over a nested message (a length-delimited field).</summary>
    public ProtoReader ReadMessage(int field, string message)
    {
        var (bytes, offset) = ReadBytes(field);
        return new ProtoReader(bytes, offset, message);
    }

    /// <summary>Reads a length-delimited field as UTF-8 text.</summary>
    public string ReadString(int field)
    {
        var (bytes, offset) = ReadBytes(field);
        try
        {
            return new System.Text.UTF8Encoding(false, true).GetString(bytes.Span);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw Error(offset, $"field {field} is not valid UTF-8 text");
        }
    }

    /// <summary>Skips a field of the given wire type.</summary>
    public void Skip(int field, int wireType)
    {
        long start = Offset;
        switch (wireType)
        {
            case 0: ReadVarint(); break;
            case 1: Take(8, $"field {field}"); break;
            case 2: ReadBytes(field); break;
            case 5: Take(4, $"field {field}"); break;
            default: throw Error(start, $"field {field} has unsupported wire type {wireType}");
        }
    }

    /// <summary>Reads a repeated int64 field, packed (wire type 2) or one element (wire type 0), into <paramref name="into"/>.</summary>
    public void ReadInt64s(int field, int wireType, List<long> into)
    {
        if (wireType == 0) { into.Add((long)ReadVarint()); return; }
        Expect(field, wireType, 2);
        var inner = ReadMessage(field, _message);
        while (!inner.End) into.Add((long)inner.ReadVarint());
    }

    /// <summary>Reads a repeated float field, packed (wire type 2) or one element (wire type 5), into <paramref name="into"/>.</summary>
    public void ReadFloats(int field, int wireType, List<float> into)
    {
        if (wireType == 5) { into.Add(BitConverter.UInt32BitsToSingle(ReadFixed32())); return; }
        Expect(field, wireType, 2);
        var (bytes, offset) = ReadBytes(field);
        if (bytes.Length % 4 != 0) throw Error(offset, $"packed float field {field} has {bytes.Length} bytes, not a multiple of 4");
        var span = bytes.Span;
        for (int i = 0; i < span.Length; i += 4)
            into.Add(BitConverter.UInt32BitsToSingle(System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(span[i..])));
    }

    /// <summary>Throws unless the field has the expected wire type.</summary>
    public readonly void Expect(int field, int wireType, int expected)
    {
        if (wireType != expected)
            throw Error(Offset, $"field {field} has wire type {wireType}, expected {expected}");
    }

    /// <summary>An exception naming the message and the absolute offset.</summary>
    public readonly InvalidDataException Error(long offset, string what) =>
        new($"ONNX file is corrupt or truncated: {what} while reading {_message} at byte offset {offset}.");

    private ReadOnlyMemory<byte> Take(int count, string what)
    {
        if (_buffer.Length - _position < count)
            throw Error(Offset, $"truncated {what} ({count} bytes needed, {_buffer.Length - _position} remain)");
        var bytes = _buffer.Slice(_position, count);
        _position += count;
        return bytes;
    }
}
