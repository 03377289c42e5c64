"""Hand-rolled protobuf encodings for the hot paths.

The byte pumps of the session move every byte of the build context; encoding the
two one-field messages involved by hand avoids a protobuf object per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

# What may be handed to the wire without copying first: bytes or a view of them.
Buffer: TypeAlias = bytes | memoryview


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def encode_bytes_message(data: bytes) -> bytes:
    """Encode `BytesMessage{1: bytes data}`."""
    if not data:
        return b""
    return b"\x0a" + _varint(len(data)) + data


def join_bytes_message(parts: Sequence[Buffer], size: int) -> bytes:
    """Encode `BytesMessage{1: b"".join(parts)}` (size = their total) in one copy."""
    if not size:
        return b""
    return b"".join((b"\x0a" + _varint(size), *parts))


def decode_bytes_message(buf: bytes) -> bytes:
    """Decode `BytesMessage{1: bytes data}`, skipping unknown fields."""
    view = memoryview(buf)
    pos, data = 0, b""
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        wire_type = key & 7
        if wire_type == 2:
            length, pos = _read_varint(view, pos)
            if key >> 3 == 1:
                data = bytes(view[pos : pos + length])
            pos += length
        elif wire_type == 0:
            _, pos = _read_varint(view, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return data


def encode_data_packet(file_id: int, data: bytes) -> bytes:
    """Encode fsutil `Packet{type=DATA, ID=file_id, data=data}`."""
    out = b"\x08\x02"
    if file_id:
        out += b"\x18" + _varint(file_id)
    if data:
        out += b"\x22" + _varint(len(data)) + data
    return out


def framed_data_header(file_id: int, size: int) -> bytes:
    """The 5-byte gRPC prefix and the fields of a DATA packet whose `size` data bytes follow.

    Sending header and data as separate buffers lets the data reach the wire
    with no copy of its own: it is copied once, into the outgoing message.
    """
    header = b"\x08\x02" + (b"\x18" + _varint(file_id) if file_id else b"")
    if size:
        header += b"\x22" + _varint(size)
    return b"\x00" + (len(header) + size).to_bytes(4, "big") + header


def framed_data_packet(file_id: int, data: bytes) -> bytes:
    """A DATA packet already wrapped in its 5-byte gRPC message prefix, in one copy."""
    return framed_data_header(file_id, len(data)) + data


def identity(value: bytes) -> bytes:
    """Serializer that passes pre-encoded bytes through."""
    return value


def _int64(value: int) -> bytes:
    # proto int64: negative values are sent as their 64-bit two's complement.
    return _varint(value & 0xFFFFFFFFFFFFFFFF if value < 0 else value)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def encode_stat_packet(  # noqa: PLR0913 - one parameter per field of fsutil's Stat
        path: bytes, mode: int, uid: int, gid: int, size: int, mod_time: int,
        linkname: bytes = b"", devmajor: int = 0, devminor: int = 0,
        xattrs: dict[str, bytes] | None = None) -> bytes:
    """Encode fsutil `Packet{type=STAT, stat=Stat{...}}` (type 0 is the default, omitted)."""
    stat = bytearray(b"\x0a" + _varint(len(path)) + path if path else b"")
    for number, value in ((2, mode), (3, uid), (4, gid)):
        if value:
            stat += bytes((number << 3,)) + _varint(value)
    for number, value in ((5, size), (6, mod_time)):
        if value:
            stat += bytes((number << 3,)) + _int64(value)
    if linkname:
        stat += b"\x3a" + _varint(len(linkname)) + linkname
    for number, value in ((8, devmajor), (9, devminor)):
        if value:
            stat += bytes((number << 3,)) + _int64(value)
    for key, xvalue in sorted((xattrs or {}).items()):
        entry = _field_bytes(1, key.encode()) + (_field_bytes(2, xvalue) if xvalue else b"")
        stat += _field_bytes(10, entry)
    return b"\x12" + _varint(len(stat)) + bytes(stat)
