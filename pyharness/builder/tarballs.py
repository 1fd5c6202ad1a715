"""Kernel source tarballs read safely: by content, with bounded members.

A tarball a user names (``--kernel-src linux-source-6.12.tar.xz``) is data,
not trusted: a 184-byte ``.tar.xz`` can hold a sparse member of 20 GiB, or
be corrupt. Here:

- :func:`content_digest`: the sha256 of its bytes, streamed (a 140 MB xz
  in about 0.3 s; a process remembers it while the file's stat, ctime
  included, is unchanged). Extractions are keyed by it, never by name,
  size and mtime, which two different tarballs can share.
- :func:`read_members`: the named members' bytes, each at most
  :data:`MAX_SOURCE_FILE` (a kernel source file the fast path reads is a
  few kilobytes), read in bounded chunks.
- :func:`unreadable`: any failure to read one (a corrupt xz, a truncated
  gzip, a file that is no tar at all) as one line of the harness's error.
- A whole tree's extraction (``tar``) runs with each file capped at
  :data:`MAX_TREE_FILE` (:func:`limit_file_size`).
- :func:`recorded_digest` / :func:`record_digest`: which tarball an
  extraction was made from, in a file beside it (``.<dir>.tarball``).
"""

from __future__ import annotations

import json
import lzma
import os
import resource
import signal
import tarfile
import zlib
from pathlib import Path
from typing import Iterable

from pyharness.builder.inputs import file_hash
from pyharness.errors import HarnessError
from pyharness.files import write_atomically

# The biggest file the fast path reads of a tree (its unwinder's sources
# and headers are 2-60 KB).
MAX_SOURCE_FILE = 10 * 1024 * 1024
# The biggest file a whole kernel tree holds (the largest, an AMD register
# header, is 24 MB in 6.12 and 7.2).
MAX_TREE_FILE = 256 * 1024 * 1024
_CHUNK = 1 << 20


def content_digest(tarball: Path) -> str:
    """The sha256 of the tarball's bytes."""
    digest = file_hash(tarball)
    if digest is None:
        raise HarnessError(f"{tarball}: cannot read the tarball; check that it exists and "
                           "is readable")
    return digest


def unreadable(tarball: Path, err: BaseException) -> HarnessError:
    """A tarball that cannot be read, as one line (tarfile's own message for
    an unknown format spans five lines)."""
    if isinstance(err, tarfile.ReadError) and "could not be opened successfully" in str(err):
        compression = _compression(tarball)
        why = (f"its {compression} data is damaged or cut short" if compression else
               "not a tar archive, plain or compressed with gzip, bzip2 or xz")
    elif isinstance(err, (lzma.LZMAError, zlib.error, EOFError, tarfile.CompressionError)):
        why = f"the compressed data is damaged or cut short ({' '.join(str(err).split())})"
    else:
        why = " ".join(str(err).split()) or type(err).__name__
    return HarnessError(f"{tarball}: cannot read the tarball: {why}; give an intact "
                        "linux-source tarball (apt-get install --reinstall linux-source-X.Y)")


_MAGIC = ((b"\xfd7zXZ\x00", "xz"), (b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"))


def _compression(tarball: Path) -> str | None:
    """The compression the file's first bytes announce, if any."""
    try:
        with open(tarball, "rb") as f:
            start = f.read(6)
    except OSError:
        return None
    return next((name for magic, name in _MAGIC if start.startswith(magic)), None)


# What reading a tarball may raise: bad tar data, bad compressed data, I/O.
READ_ERRORS = (tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError, ValueError)


def _read_bounded(archive: tarfile.TarFile, member: tarfile.TarInfo, tarball: Path) -> bytes:
    if member.size > MAX_SOURCE_FILE:
        raise HarnessError(f"{tarball}: {member.name} is {member.size} bytes, more than any "
                           f"kernel source file ({MAX_SOURCE_FILE // (1024 * 1024)} MB): not a "
                           "kernel source tarball")
    data = archive.extractfile(member)
    if data is None:
        return b""
    chunks, total = [], 0
    while chunk := data.read(_CHUNK):
        total += len(chunk)
        if total > MAX_SOURCE_FILE:     # a header that lied about the size
            raise HarnessError(f"{tarball}: {member.name} is larger than its header says: "
                               "not a kernel source tarball")
        chunks.append(chunk)
    return b"".join(chunks)


def read_members(tarball: Path, wanted: Iterable[str], *,
                 still_wanted=None) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """The regular-file members named (relative to the archive's one top
    directory) in ``wanted``, streamed; reading stops once all are found.
    ``still_wanted(found, wanted)`` may narrow the set as files are read."""
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                _, _, name = member.name.partition("/")
                if name not in wanted or not member.isfile() or name in found:
                    continue
                found[name] = _read_bounded(archive, member, tarball)
                if still_wanted is not None:
                    wanted = still_wanted(found, wanted)
                if wanted <= found.keys():
                    break
    except READ_ERRORS as err:
        raise unreadable(tarball, err) from None
    return found


def limit_file_size() -> None:
    """In a child (``preexec_fn``): no file it writes may pass
    :data:`MAX_TREE_FILE`; a write past it fails (EFBIG) instead of
    killing the child with SIGXFSZ."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_TREE_FILE, MAX_TREE_FILE))


def _record_path(extracted: Path) -> Path:
    return extracted.parent / f".{extracted.name}.tarball"


def recorded_digest(extracted: Path) -> str | None:
    """The sha256 of the tarball ``extracted`` was made from, if recorded."""
    try:
        data = json.loads(_record_path(extracted).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    digest = data.get("sha256") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) else None


def record_digest(extracted: Path, tarball: Path, digest: str) -> None:
    write_atomically(_record_path(extracted),
                     json.dumps({"sha256": digest, "tarball": str(tarball)}) + "\n")


def same_files(tarball: Path, tree: Path) -> bool:
    """Whether every regular file of the tarball (under its top directory)
    is in ``tree`` with the same bytes: an extraction made before it was
    recorded, checked once."""
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                _, _, name = member.name.partition("/")
                if not member.isfile() or not name:
                    continue
                path = tree / name
                if not path.is_file() or os.path.getsize(path) != member.size:
                    return False
                data = archive.extractfile(member)
                if data is None:
                    return False
                with open(path, "rb") as disk:
                    while chunk := data.read(_CHUNK):
                        if disk.read(len(chunk)) != chunk:
                            return False
    except READ_ERRORS:
        return False
    return True
