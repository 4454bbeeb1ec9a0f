"""The container formats the fleet opens, recognised from their first bytes before any demuxer runs.

ffmpeg chooses a demuxer by probing the content, and some demuxers open other resources named
inside the file: an HLS playlist fetches its segment and key URLs, an ffconcat script opens paths
and URLs, an image sequence reads files, an MP4 data reference points outside the file. Left to
probing, a crafted upload makes a worker send requests wherever its author likes. So the format
is decided here, from magic bytes, against an allow-list of single-file containers, and the
demuxer is then forced to it (``workers.media.containers.open_container``): a playlist, a
script or an image is never handed to a demuxer that would follow it, and is refused as not a
video.
"""

from __future__ import annotations

from dataclasses import dataclass

# Enough for every signature below, including three MPEG-TS packets of 192 bytes (M2TS).
HEAD_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Container:
    """An allowed container: the ffmpeg demuxer forced for it, its full name, a name for people.

    ``names`` is what ffprobe reports as ``format_name`` (the demuxer's aliases), kept as the
    probe's ``container``.
    """

    demuxer: str
    names: str
    label: str


MP4 = Container("mov", "mov,mp4,m4a,3gp,3g2,mj2", "MP4/QuickTime/3GP")
MATROSKA = Container("matroska", "matroska,webm", "Matroska/WebM")
MPEG_TS = Container("mpegts", "mpegts", "MPEG-TS")
AVI = Container("avi", "avi", "AVI")
FLV = Container("flv", "flv", "FLV")
MPEG_PS = Container("mpeg", "mpeg", "MPEG program stream")
OGG = Container("ogg", "ogg", "Ogg")
ASF = Container("asf", "asf", "ASF/WMV")

ALLOWED = (MP4, MATROSKA, MPEG_TS, AVI, FLV, MPEG_PS, OGG, ASF)

# ISO BMFF / QuickTime top-level boxes a file can start with.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_TS_PACKET = 188
_M2TS_PACKET = 192


def sniff(head: bytes) -> Container | None:
    """The allowed container ``head`` (the object's first bytes) starts, or None.

    Pure: the decision is made on bytes alone, never on a name or a content type an uploader
    chose.
    """
    if len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES:
        return MP4
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MATROSKA
    if _is_transport_stream(head):
        return MPEG_TS
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return AVI
    if head.startswith(b"FLV\x01"):
        return FLV
    if head.startswith(b"\x00\x00\x01\xba"):
        return MPEG_PS
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(_ASF_GUID):
        return ASF
    return None


def mp4_index_span(head: bytes, *, size: int | None) -> tuple[int, int] | None:
    """Where an MP4's index (``moov``) lies, judged from the top-level boxes in its first bytes.

    The ``moov`` box itself when the head holds its header (index at the front), else
    everything after the last box the head reaches into (a camera's ``mdat`` first, the index
    at the end). None when the boxes make no sense. A guess for read-ahead only: the demuxer
    still finds the index itself.
    """
    pos = 0
    while pos + 8 <= len(head):
        box = int.from_bytes(head[pos : pos + 4], "big")
        kind = head[pos + 4 : pos + 8]
        header = 8
        if box == 1:  # a 64-bit size follows the type
            if pos + 16 > len(head):
                return None
            box, header = int.from_bytes(head[pos + 8 : pos + 16], "big"), 16
        elif box == 0:  # the box runs to the end of the file
            return (pos, size) if kind == b"moov" and size else None
        if box < header:
            return None
        if kind == b"moov":
            return pos, pos + box
        pos += box
    if size is None or pos >= size:
        return None
    return pos, size


def named(demuxer: str) -> Container | None:
    """The allowed container whose forced demuxer is ``demuxer``."""
    return next((c for c in ALLOWED if c.demuxer == demuxer), None)


def _is_transport_stream(head: bytes) -> bool:
    """Three sync bytes at packet distance: 188-byte TS, or 192-byte M2TS with a 4-byte prefix."""
    for size, offset in ((_TS_PACKET, 0), (_M2TS_PACKET, 4)):
        positions = [offset + k * size for k in range(3)]
        if positions[-1] < len(head) and all(head[p] == 0x47 for p in positions):
            return True
    return False
