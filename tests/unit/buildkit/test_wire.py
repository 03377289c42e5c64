from __future__ import annotations

from kubectl_build._proto import control_pb2, fsutil_pb2
from kubectl_build.buildkit.wire import (
    decode_bytes_message,
    encode_bytes_message,
    encode_data_packet,
)


def test_bytes_message_matches_protobuf() -> None:
    for data in (b"", b"x", b"a" * 300, bytes(range(256)) * 1000):
        assert encode_bytes_message(data) == control_pb2.BytesMessage(data=data).SerializeToString()
        assert decode_bytes_message(encode_bytes_message(data)) == data


def test_decode_skips_unknown_fields() -> None:
    raw = b"\x10\x05" + control_pb2.BytesMessage(data=b"payload").SerializeToString()
    assert decode_bytes_message(raw) == b"payload"


def test_data_packet_matches_protobuf() -> None:
    for file_id, data in ((0, b""), (0, b"abc"), (7, b""), (300000, b"z" * 70000)):
        expected = fsutil_pb2.Packet(type=fsutil_pb2.PACKET_DATA, id=file_id, data=data)
        assert encode_data_packet(file_id, data) == expected.SerializeToString()


def test_end_of_listing_is_empty_packet() -> None:
    assert fsutil_pb2.Packet().SerializeToString() == b""
    assert fsutil_pb2.Packet(stat=fsutil_pb2.Stat()).SerializeToString() != b""
