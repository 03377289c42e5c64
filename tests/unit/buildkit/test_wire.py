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


def test_stat_packet_matches_protobuf() -> None:
    from kubectl_build.buildkit.wire import encode_stat_packet

    cases = [
        dict(path=b"a", mode=0o644, uid=0, gid=0, size=5, mod_time=1_700_000_000_123_456_789),
        dict(path=b"dir/\xff\xfe", mode=(1 << 31) | 0o755, uid=1000, gid=1000, size=0,
             mod_time=-5, linkname=b"", devmajor=0, devminor=0),
        dict(path=b"l", mode=(1 << 27) | 0o777, uid=0, gid=0, size=0, mod_time=1,
             linkname=b"../target", devmajor=0, devminor=0),
        dict(path=b"dev", mode=(1 << 26) | (1 << 21) | 0o600, uid=0, gid=0, size=0, mod_time=2,
             devmajor=1, devminor=3, xattrs={"user.a": b"1", "security.selinux": b""}),
        dict(path=b"big", mode=0o600, uid=0, gid=0, size=5 << 30, mod_time=3),
    ]
    for case in cases:
        xattrs = case.pop("xattrs", {})
        expected = fsutil_pb2.Packet(type=fsutil_pb2.PACKET_STAT,
                                     stat=fsutil_pb2.Stat(**case, xattrs=xattrs))
        got = fsutil_pb2.Packet.FromString(encode_stat_packet(**case, xattrs=xattrs))  # type: ignore[arg-type]
        assert got == expected
        if not xattrs:
            assert encode_stat_packet(**case) == expected.SerializeToString()  # type: ignore[arg-type]


def test_framed_data_packet_is_prefix_plus_packet() -> None:
    from kubectl_build.buildkit.wire import framed_data_packet

    for file_id, data in ((0, b""), (3, b"abc"), (70000, b"z" * 100000)):
        packet = encode_data_packet(file_id, data)
        assert framed_data_packet(file_id, data) == b"\x00" + len(packet).to_bytes(4, "big") + packet


def test_framed_data_header_then_data_is_the_framed_packet() -> None:
    from kubectl_build.buildkit.wire import framed_data_header, framed_data_packet

    for file_id, data in ((0, b""), (5, b""), (3, b"abc"), (70000, b"z" * 300000)):
        assert framed_data_header(file_id, len(data)) + data == framed_data_packet(file_id, data)


def test_join_bytes_message_equals_encoding_the_joined_parts() -> None:
    from kubectl_build.buildkit.wire import join_bytes_message

    parts = [b"ab", memoryview(b"xcdx")[1:3], b"", b"e" * 200]
    joined = b"".join(bytes(p) for p in parts)
    assert join_bytes_message(parts, len(joined)) == encode_bytes_message(joined)
    assert join_bytes_message([], 0) == b""
