"""Debian's kernel images in the kernel cache: what one is, and its files.

A :class:`DebianRelease` is one cloud-arm64 image of Debian (an ABI, the
suite it came from, its packages' version and the packages). Its four
files, ``Image`` (the package's vmlinuz: an uncompressed arm64 Image,
checked), ``config``, ``vmlinux`` and ``System.map`` (the -dbg package's:
the image package's is a one-line placeholder), are streamed out of the
downloaded packages (:mod:`pyharness.builder.deb_members`) into
``<kernel cache>/debian/images/debian-ABI-cloud-arm64_VERSION/``, with a
stamp (``pyharness-debian.json``: packages, sizes, where each file was,
download and extraction seconds). The directory is made in a scratch
directory beside it and renamed into place; the .debs are deleted once
read. A directory is used while its stamp's sizes hold.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyharness.builder.deb_members import extract_members
from pyharness.builder.debian_apt import AptIndex, DebianPackageError, PackageInfo
from pyharness.builder.lock import exclusive
from pyharness.files import write_atomically

PREFIX = "debian:"
FLAVOUR = "cloud-arm64"
IMAGES_DIR = "images"
STAMP = "pyharness-debian.json"
INDEX_LOCK = "index"
# arm64's Image header: the magic "ARM\x64" at byte 56.
IMAGE_MAGIC = b"ARM\x64"
IMAGE_MAGIC_OFFSET = 0x38
# What an image directory holds, each taken from one package.
FILES = ("Image", "config", "vmlinux", "System.map")


def member_paths(full: str) -> dict[str, tuple[str, ...]]:
    """Where each file is in the packages, in 6.x and 7.x packaging."""
    modules, debug = f"usr/lib/modules/{full}", "usr/lib/debug"
    return {
        "Image": (f"boot/vmlinuz-{full}", f"{modules}/vmlinuz.unsigned", f"{modules}/vmlinuz"),
        "config": (f"boot/config-{full}", f"{modules}/config"),
        "vmlinux": (f"{debug}/boot/vmlinux-{full}", f"{debug}/lib/modules/{full}/vmlinux",
                    f"{debug}/{modules}/vmlinux"),
        "System.map": (f"{debug}/boot/System.map-{full}",
                       f"{debug}/lib/modules/{full}/System.map", f"{debug}/{modules}/System.map"),
    }


@dataclass(frozen=True)
class DebianRelease:
    """One cloud-arm64 image of Debian: its ABI, suite, version and packages."""

    abi: str                                   # "6.1.0-57", "6.12.118+deb13"
    suite: str
    version: str                               # the packages' version, "6.1.192-3"
    # Each package with the files it gives (empty when found in the cache).
    packages: tuple[tuple[PackageInfo, tuple[str, ...]], ...] = field(default=(), compare=False)

    @property
    def full(self) -> str:
        return f"{self.abi}-{FLAVOUR}"

    @property
    def label(self) -> str:
        return f"debian-{self.full}"

    @property
    def exact(self) -> str:
        """The name that finds this image again: ``debian:6.1.0-57@bookworm``."""
        return f"{PREFIX}{self.abi}@{self.suite}"

    @property
    def upstream(self) -> str:
        """Linux's version: ``6.1.192`` of ``6.1.192-3``, ``6.12.118`` of ``6.12.118-1~deb12u1``."""
        return upstream_version(self.version)

    @property
    def generation(self) -> str:
        return generation_of(self.upstream)


def upstream_version(version: str) -> str:
    """A Debian version without its epoch and Debian revision."""
    return version.split(":", 1)[-1].rsplit("-", 1)[0]


def generation_of(version: str) -> str:
    """The unwinder generation of a Linux version: 6.1, 6.12, or 7.x."""
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers == (6, 1):
        return "6.1"
    if numbers == (6, 12):
        return "6.12"
    if numbers and numbers[0] >= 7:
        return "7.x"
    raise DebianPackageError(f"Debian's Linux {version} is of no generation the harness knows "
                             "(6.1, 6.12, 7.x); name one of those series")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def image_dir(images: Path, release: DebianRelease) -> Path:
    return images / _safe(f"{release.label}_{release.version}")


def valid_stamp(directory: Path) -> dict | None:
    try:
        stamp = json.loads((directory / STAMP).read_text(encoding="utf-8"))
        if all((directory / name).stat().st_size == size
               for name, size in stamp["sizes"].items()):
            return stamp
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def cached_image(images: Path, abi: str, version: str | None) -> tuple[Path, dict] | None:
    """The newest valid extraction of ``abi`` (of ``version`` when given)."""
    found = []
    for directory in images.glob(f"debian-{_safe(abi)}-{FLAVOUR}_*"):
        stamp = valid_stamp(directory)
        if stamp and stamp.get("abi") == abi and version in (None, stamp.get("version")):
            found.append((stamp.get("fetched", 0), directory, stamp))
    if not found:
        return None
    _, directory, stamp = max(found, key=lambda f: f[0])
    return directory, stamp


def release_of(stamp: dict) -> DebianRelease:
    return DebianRelease(abi=stamp["abi"], suite=stamp["suite"], version=stamp["version"])


def _check_image(path: Path, deb: str) -> None:
    """The vmlinuz must be a bare arm64 Image, as Debian's arm64 ones are:
    QEMU's -kernel boots it and the faults are written at symbol offsets
    into it."""
    with open(path, "rb") as f:
        head = f.read(IMAGE_MAGIC_OFFSET + len(IMAGE_MAGIC))
    if head[IMAGE_MAGIC_OFFSET:] != IMAGE_MAGIC:
        raise DebianPackageError(f"the vmlinuz of {deb} is not an uncompressed arm64 Image (no "
                                 "ARM\\x64 magic at byte 56; compressed, or an EFI zboot "
                                 "image?): the harness cannot write faults into it")


def _check_system_map(path: Path, deb: str) -> None:
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if b" _text\n" not in head and b" _text\r\n" not in head:
        raise DebianPackageError(f"{path} (from {deb}) has no _text: not a real System.map")


def fetch(release: DebianRelease, index: AptIndex, target: Path) -> None:
    """Download the packages into a scratch directory beside ``target``,
    take the four files out, check them, and rename the directory in."""
    try:
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    except OSError as err:
        raise DebianPackageError(f"cannot write into {target.parent} ({err.strerror}); give "
                                 "another kernel cache (--out)") from None
    try:
        os.chmod(scratch, 0o755)   # mkdtemp's 0700 would hide a shared cache's image
        started = time.monotonic()
        debs = []
        with exclusive(index.directory, INDEX_LOCK, f"the Debian package index "
                       f"{index.directory}", DebianPackageError):
            for info, roles in release.packages:
                debs.append((index.download(info, scratch), roles))
        downloaded = time.monotonic()
        members: dict[str, str] = {}
        paths = member_paths(release.full)
        for deb, roles in debs:
            members.update(extract_members(deb, {role: paths[role] for role in roles}, scratch))
            deb.unlink()
        _check_image(scratch / "Image", debs[0][0].name)
        _check_system_map(scratch / "System.map", debs[-1][0].name)
        stamp = {"abi": release.abi, "suite": release.suite, "version": release.version,
                 "packages": {info.name: {"version": info.version, "size": info.size,
                                          "sha256": info.sha256}
                              for info, _ in release.packages},
                 "members": members,
                 "sizes": {name: (scratch / name).stat().st_size for name in FILES},
                 "download_s": round(downloaded - started, 3),
                 "extract_s": round(time.monotonic() - downloaded, 3),
                 "fetched": time.time()}
        write_atomically(scratch / STAMP, json.dumps(stamp, indent=1) + "\n")
        shutil.rmtree(target, ignore_errors=True)   # an invalid leftover of this version
        os.rename(scratch, target)
    except OSError as err:
        raise DebianPackageError(f"cannot write Debian's {release.label} into {target.parent} "
                                 f"({err.strerror}); free some space there, or give another "
                                 "kernel cache (--out)") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
