"""Binary content is described, never copied: `[image image/png 308012 bytes sha256:1a2b3c4d5e6f]`.

One 300 KB screenshot in a prompt would otherwise put ~0.8 MB of base64 on two spans (the module's input and
the LM's messages), past what most collectors accept per span. The description keeps what a reader of a trace
needs: what it was, how big, and a hash prefix to tell two images apart or match one against a file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Final

HASH_CHARS: Final = 12
"""sha256 hex digits kept: 48 bits, plenty to tell the images of one trace apart."""

# Leading bytes of the formats an LM program meets (what `file` and browsers sniff), for raw bytes and bare
# base64 that do not say their type.
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
)
_RIFF_KINDS: Final = {b"WEBP": "image/webp", b"WAVE": "audio/wav"}
OCTET_STREAM: Final = "application/octet-stream"


def sniff_mime(data: bytes) -> str:
    """The MIME type its leading bytes announce, else application/octet-stream."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF":
        return _RIFF_KINDS.get(data[8:12], OCTET_STREAM)
    return OCTET_STREAM


def kind_of(mime: str) -> str:
    """`image`, `audio`, `video` from the MIME type's top level; anything else is `binary`."""
    top = mime.partition("/")[0]
    return top if top in ("image", "audio", "video") else "binary"


def describe_bytes(data: bytes | bytearray | memoryview, mime: str | None = None) -> str:
    """`[<kind> <mime> <size> bytes sha256:<12 hex digits>]`; `mime` None: sniffed from the bytes."""
    raw = bytes(data)
    mime = mime or sniff_mime(raw)
    return f"[{kind_of(mime)} {mime} {len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:HASH_CHARS]}]"


def describe_base64(payload: str, mime: str | None = None) -> str | None:
    """The description of base64 `payload` (standard or URL-safe alphabet, one line or wrapped in lines), or None if
    it does not decode."""
    text = "".join(payload.split()) if "\n" in payload else payload.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_" if "-" in text or "_" in text else None,
                               validate=True)
    except (binascii.Error, ValueError):
        return None
    return describe_bytes(raw, mime)
