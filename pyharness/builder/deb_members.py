"""A few files out of a Debian package, without unpacking the rest.

``dpkg-deb --fsys-tarfile`` streams a .deb's data archive as one plain tar
(whatever its compression); the members wanted are copied out as they pass
and the stream is dropped as soon as the last one has been read. A kernel's
-dbg package is 260-360 MB of xz holding 1.4 GB; its ``vmlinux`` and
``System.map`` come near the start in Debian 6.x packages (about 7 s), near
the end in 7.x ones (the modules' debug files first; about 25 s).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO

from pyharness.errors import HarnessError

_COPY_CHUNK = 1 << 20


class DebArchiveError(HarnessError):
    """A .deb that cannot be read, or that lacks a file asked for (exit 2)."""


def _member_path(name: str) -> str:
    """A tar member's name as a path in the package: ``boot/vmlinuz-...``."""
    return name[2:] if name.startswith("./") else name.lstrip("/")


def extract_members(deb: Path, wanted: dict[str, tuple[str, ...]],
                    dest: Path) -> dict[str, str]:
    """Copy one regular file per role out of ``deb`` into ``dest/<role>``.

    ``wanted`` maps a role (the file name it gets in ``dest``) to the paths it
    may have in the package (one per packaging layout); the first of them
    the stream brings is taken.
    Returns the path each role was taken from; a role none of whose paths
    the package has is a :class:`DebArchiveError` naming them."""
    dpkg_deb = shutil.which("dpkg-deb")
    if dpkg_deb is None:
        raise DebArchiveError("`dpkg-deb` is not on PATH; install it with `apt-get install "
                              "dpkg`")
    pending = dict(wanted)
    taken: dict[str, str] = {}
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen([dpkg_deb, "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                                stderr=errors, stdin=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            broken = _copy_wanted(proc.stdout, pending, taken, dest)
        finally:
            if proc.poll() is None:
                proc.kill()   # everything wanted was read: the rest of the stream is not
            proc.stdout.close()
            code = proc.wait()
        if not pending:
            return taken
        errors.seek(0)
        said = errors.read().decode("utf-8", errors="replace").strip()
    if code != 0 and said:
        raise DebArchiveError(f"{deb}: cannot read the package (dpkg-deb exit {code}: "
                              f"{said.splitlines()[-1]})")
    if broken:
        raise DebArchiveError(f"{deb}: cannot read its data archive ({broken})")
    missing = "; ".join(f"{role}: {' or '.join(paths)}" for role, paths in pending.items())
    raise DebArchiveError(f"{deb} does not hold what is needed ({missing}); it is not the "
                          "Debian kernel package it was taken for")


def _copy_wanted(stream: IO[bytes], pending: dict[str, tuple[str, ...]],
                 taken: dict[str, str], dest: Path) -> str:
    """Read the tar stream, copying each member that is one of a pending
    role's paths; stop as soon as no role is pending. Returns what broke
    the stream, if anything did."""
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                path = _member_path(member.name)
                role = next((r for r, paths in pending.items() if path in paths), None)
                if role is None or not member.isfile():
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                try:
                    with source, open(dest / role, "wb") as target:
                        shutil.copyfileobj(source, target, _COPY_CHUNK)
                except OSError as err:
                    raise DebArchiveError(f"cannot write {dest / role} ({err.strerror}); "
                                          "free some space there") from None
                taken[role] = path
                del pending[role]
                if not pending:
                    break
    except (tarfile.TarError, EOFError) as err:
        return str(err) or type(err).__name__
    return ""
