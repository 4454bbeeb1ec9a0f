"""The container allow-list decides from bytes alone; playlists, scripts and images are refused."""

from __future__ import annotations

import pytest

from workers.media import formats


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom" + bytes(24), formats.MP4),
        (b"\x00\x00\x00\x08free\x00\x00\x00\x10mdat", formats.MP4),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", formats.MATROSKA),
        ((b"\x47" + bytes(187)) * 3, formats.MPEG_TS),
        ((bytes(4) + b"\x47" + bytes(187)) * 3, formats.MPEG_TS),  # M2TS: 192-byte packets
        (b"RIFF\x10\x00\x00\x00AVI LIST", formats.AVI),
        (b"FLV\x01\x05\x00\x00\x00\x09", formats.FLV),
        (b"\x00\x00\x01\xba\x44\x00\x04", formats.MPEG_PS),
        (b"OggS\x00\x02" + bytes(20), formats.OGG),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c") + bytes(8), formats.ASF),
    ],
)
def test_allowed_containers_are_recognised_by_their_first_bytes(
    head: bytes, expected: formats.Container
) -> None:
    assert formats.sniff(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nhttp://169.254.169.254/latest\n",
        b"ffconcat version 1.0\nfile 'http://127.0.0.1:9/a.mp4'\n",
        b"file '/etc/passwd'\n",
        b"<?xml version='1.0'?><MPD xmlns='urn:mpeg:dash:schema:mpd:2011'>",
        b"\x89PNG\r\n\x1a\n" + bytes(16),
        b"\xff\xd8\xff\xe0\x00\x10JFIF",
        b"GIF89a" + bytes(10),
        b"ID3\x04\x00" + bytes(10),
        b"\x47" + bytes(100),  # one sync byte is no transport stream
        b"",
        b"hello, I am a text file named video.mp4\n",
    ],
)
def test_anything_else_is_no_container_the_fleet_opens(head: bytes) -> None:
    assert formats.sniff(head) is None


def test_every_allowed_container_can_be_found_by_its_demuxer() -> None:
    assert all(formats.named(c.demuxer) is c for c in formats.ALLOWED)
    assert formats.named("hls") is None
