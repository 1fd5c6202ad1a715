"""A log's bytes as text, or one clear message when they are not a text log.

People pass the decoder whatever they have: a console capture, a mail
saved from a client (UTF-8, Latin-1, UTF-16 with a byte-order mark), and
sometimes the wrong file: the vmlinux itself, a compressed log, a core
dump. Text decodes (bytes that are not UTF-8 become U+FFFD, as a few
stray bytes in a real log should); anything that looks like binary data
is refused with what it seems to be and what to do instead.
"""

from __future__ import annotations

import re

from pyharness.errors import HarnessError

# Enough of the start of a file to tell text from binary.
SNIFF_BYTES = 64 * 1024

_MAGIC = (
    (b"\x7fELF", "an ELF file, not a log (an ELF goes after --elf; the log is LOG)"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first (`zcat FILE | pyharness decode -`)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (`xzcat FILE | pyharness decode -`)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first "
                          "(`zstdcat FILE | pyharness decode -`)"),
    (b"BZh", "bzip2-compressed: decompress it first (`bzcat FILE | pyharness decode -`)"),
    (b"PK\x03\x04", "a zip archive: unpack the log from it first"),
    (b"%PDF-", "a PDF: copy the log's text out of it"),
)
# A web page (an archive's message page saved from a browser): its tags and
# &lt;/&gt; hide the frames; the archive serves the message raw.
_HTML_RE = re.compile(rb"\s*(?:<!doctype\s+html|<html[\s>]|<\?xml[^>]*>\s*<!doctype\s+html)",
                      re.IGNORECASE)
_HTML = ("an HTML page, not a log or a mail: its markup hides the trace; save the "
         "message's raw text or the thread's mbox instead (an archive's raw/mbox link)")
_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))
# Bytes no text log holds (tab, newlines, form feed, backspace and escape may).
_CONTROL = frozenset(range(0x20)) - {0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1b}
_MAX_CONTROL_SHARE = 0.05
_MAX_UNDECODABLE_SHARE = 0.30


def binary_reason(head: bytes) -> str | None:
    """Why ``head`` (a file's first bytes) is not a text log, or None if it is one."""
    if any(head.startswith(bom) for bom, _ in _BOMS):
        return None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if _HTML_RE.match(head):
        return _HTML
    nul = head.find(b"\0")
    if nul >= 0:
        return f"binary data (a NUL byte at offset {nul})"
    if not head:
        return None
    controls = sum(1 for byte in head if byte in _CONTROL)
    if controls > _MAX_CONTROL_SHARE * len(head):
        return f"binary data ({controls} control bytes in its first {len(head)})"
    undecodable = head.decode("utf-8", errors="replace").count("\ufffd")
    if undecodable > _MAX_UNDECODABLE_SHARE * len(head):
        return f"binary data ({undecodable} of its first {len(head)} bytes are not text)"
    return None


def log_text(data: bytes, name: str) -> str:
    """``data`` decoded as a log; HarnessError (exit 2) if it is not text."""
    reason = binary_reason(data[:SNIFF_BYTES])
    if reason is not None:
        raise HarnessError(f"{name} is not a text log: {reason}; give the kernel log, "
                           "console capture or mail as text")
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    return data.decode("utf-8", errors="replace")
