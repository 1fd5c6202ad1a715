"""Debian's own arm64 kernels, as shipped, for the QEMU platform.

``--kernel-src debian:SELECTOR[@SUITE]`` names a kernel Debian builds, not
a tree to build (docs/real-kernel.md, "Debian's own kernels"):

- ``debian:6.1``, ``debian:6.12``, ``debian:7.2``: the newest cloud-arm64
  image of that series (its ABI names start ``6.1.`` ...);
- ``debian:6.1.0-57``, ``debian:6.12.118+deb13`` (``-cloud-arm64`` may
  follow): that exact ABI;
- ``debian:trixie``, ``debian:sid``: the newest cloud-arm64 image of that
  suite;
- ``@SUITE`` after a series or an ABI: look in that suite (default: the
  machine's own release, e.g. ``bookworm`` with its -updates and -security).

Only the ``cloud-arm64`` flavour is fetched (the smallest; the one DESIGN
9.1 measured). A name is resolved against an arm64 package index of the
harness's own (:mod:`pyharness.builder.debian_apt`, never the machine's
apt state), and the image's packages are downloaded with ``apt-get
download``: the unsigned image (``linux-image-ABI-cloud-arm64-unsigned``;
7.x: ``linux-binary-unsigned-ABI-cloud-arm64`` and ``linux-base-ABI-...``
for the config) and its ``-dbg`` package (``vmlinux`` and the real
``System.map``: the image package's is a one-line placeholder). Four files
are streamed out (:mod:`pyharness.builder.deb_members`): ``Image`` (the
package's vmlinuz, an uncompressed arm64 Image: checked), ``config``,
``vmlinux`` and ``System.map``, into
``<kernel cache>/debian/images/debian-ABI-cloud-arm64_VERSION/``, made in a
scratch directory and renamed into place under a lock; the .debs are
deleted once read. A cached image is used without any network when the
name is an exact ABI, and without a download otherwise.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pyharness.builder.deb_members import extract_members
from pyharness.builder.debian_apt import (AptIndex, DebianPackageError, PackageInfo,
                                          apt_index, machine_codename, machine_entries)
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.lock import exclusive
from pyharness.files import write_atomically
from pyharness.paths import kernel_cache

PREFIX = "debian:"
FLAVOUR = "cloud-arm64"
DEBIAN_DIR = "debian"
IMAGES_DIR = "images"
STAMP = "pyharness-debian.json"
ORIGIN = "debian"
INDEX_LOCK = "index"
# arm64's Image header: the magic "ARM\x64" at byte 56.
IMAGE_MAGIC = b"ARM\x64"
IMAGE_MAGIC_OFFSET = 0x38
GZIP_MAGIC = b"\x1f\x8b"
# What an image directory holds, each taken from one package.
FILES = ("Image", "config", "vmlinux", "System.map")
# An image's packages, each with the files it gives.
Layout = tuple[tuple[str, tuple[str, ...]], ...]

_SERIES = re.compile(r"\d+\.\d+")
_ABI = re.compile(r"\d+\.\d+\.\d+[-+.~a-z0-9]*")
_SUITE = re.compile(r"[a-z][a-z0-9-]*")


def _paths(full: str) -> dict[str, tuple[str, ...]]:
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
class DebianSpec:
    """``debian:SELECTOR[@SUITE]`` taken apart."""

    given: str
    kind: str            # "series", "abi" or "suite" (the suite's newest)
    value: str           # "6.1", "6.1.0-57", "" (kind suite)
    suite: str           # the suite to look in


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


def is_debian_kernel(value: str | os.PathLike[str] | None) -> bool:
    """``--kernel-src`` names one of Debian's kernels (``debian:...``)."""
    return value is not None and str(value).startswith(PREFIX)


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


def default_suite() -> str:
    """The machine's own Debian release."""
    return machine_codename(machine_entries())


def parse_spec(value: str, suite: str | None = None) -> DebianSpec:
    """``debian:SELECTOR[@SUITE]``; ``suite`` is the default suite (the
    machine's release when None)."""
    if not is_debian_kernel(value):
        raise DebianPackageError(f"{value!r} does not name a Debian kernel (debian:...)")
    body = value[len(PREFIX):]
    selector, at, named = body.partition("@")
    if at and not _SUITE.fullmatch(named):
        raise DebianPackageError(f"--kernel-src {value}: {named!r} after @ is not a Debian "
                                 "suite name (bookworm, trixie, sid)")
    selector = selector.removesuffix(f"-{FLAVOUR}")
    if _SERIES.fullmatch(selector):
        kind = "series"
    elif _ABI.fullmatch(selector):
        kind = "abi"
    elif selector == "" or (_SUITE.fullmatch(selector) and not at):
        kind, named = "suite", named or selector
        selector = ""
    else:
        raise DebianPackageError(
            f"--kernel-src {value}: not a Debian kernel name; give debian:SERIES (debian:6.1), "
            f"debian:ABI (debian:6.1.0-57), or debian:SUITE (debian:trixie), a series or ABI "
            f"optionally followed by @SUITE (debian:6.12@trixie); only the {FLAVOUR} flavour "
            "is fetched")
    return DebianSpec(given=value, kind=kind, value=selector,
                      suite=named or suite or default_suite())


# -- resolving a name against the index ----------------------------------------

def _natural(text: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(part), "") if part.isdigit() else (-1, part)
                 for part in re.findall(r"\d+|[^\d]+", text))


def _layouts(abi: str, names: set[str]) -> Layout | None:
    """The packages that hold one ABI's files, as its packaging has them."""
    full = f"{abi}-{FLAVOUR}"
    dbg = (f"linux-image-{full}-dbg", ("vmlinux", "System.map"))
    if f"linux-image-{full}-unsigned" in names:                      # 6.x
        return ((f"linux-image-{full}-unsigned", ("Image", "config")), dbg)
    if f"linux-binary-unsigned-{full}" in names and f"linux-base-{full}" in names:  # 7.x
        return ((f"linux-binary-unsigned-{full}", ("Image",)),
                (f"linux-base-{full}", ("config",)), dbg)
    return None


def _available(names: set[str]) -> dict[str, Layout]:
    found = {}
    for name in names:
        match = re.fullmatch(rf"linux-image-(.+)-{FLAVOUR}-dbg", name)
        layout = _layouts(match.group(1), names) if match else None
        if match and layout:
            found[match.group(1)] = layout
    return found


def _listing(abis: list[str]) -> str:
    by_series: dict[str, list[str]] = {}
    for abi in sorted(abis, key=_natural):
        by_series.setdefault(".".join(abi.split(".")[:2]), []).append(abi)
    return "; ".join(f"{series}: {', '.join(found)}" for series, found in by_series.items())


def _choose(spec: DebianSpec, index: AptIndex, available: dict[str, Layout]) -> DebianRelease:
    if spec.kind == "abi":
        candidates = [spec.value] if spec.value in available else []
    elif spec.kind == "series":
        candidates = [abi for abi in available if abi.startswith(spec.value + ".")]
    else:
        candidates = list(available)
    if not candidates:
        what = {"abi": f"the ABI {spec.value}", "series": f"the {spec.value} series",
                "suite": "any version"}[spec.kind]
        raise DebianPackageError(
            f"--kernel-src {spec.given}: Debian {spec.suite} has no {FLAVOUR} image of {what} "
            f"for arm64 ({index.where}); it has {_listing(list(available)) or 'none'}; name one "
            "of those, or another suite with @SUITE (debian:7.2@sid)")
    infos = index.show([available[abi][-1][0] for abi in candidates])

    def newest(abi: str) -> tuple[tuple[tuple[int, str], ...], ...]:
        info = infos.get(available[abi][-1][0])
        version = info.version if info else ""
        return (_natural(version.partition("-")[0]), _natural(abi))
    abi = max(candidates, key=newest)
    names = [name for name, _ in available[abi]]
    shown = index.show(names)
    missing = [name for name in names if name not in shown]
    if missing:
        raise DebianPackageError(f"Debian {spec.suite}'s index lists no version of "
                                 f"{', '.join(missing)} ({index.where})")
    version = shown[names[-1]].version
    return DebianRelease(abi=abi, suite=spec.suite, version=version,
                         packages=tuple((shown[name], roles) for name, roles in available[abi]))


def _debian_dir(out_dir: Path | str | None) -> Path:
    return kernel_cache(out_dir) / DEBIAN_DIR


def resolve(value: str, out_dir: Path | str | None = None) -> DebianRelease:
    """The image ``value`` names. An exact ABI already in the cache needs no
    index; anything else reads the suite's index (fetched when missing or a
    day old; the mirror out of reach is :class:`MirrorUnreachable`)."""
    spec = parse_spec(value)
    base = _debian_dir(out_dir)
    if spec.kind == "abi":
        cached = _cached(base / IMAGES_DIR, spec.value, None)
        if cached is not None:
            return _release_of(cached[1])
    index = apt_index(base, spec.suite)
    with exclusive(index.directory, INDEX_LOCK, f"the Debian package index {index.directory}",
                   DebianPackageError):
        index.refresh()
        names = set(index.names("linux-"))
        return _choose(spec, index, _available(names))


# -- the cache of extracted images -----------------------------------------------

def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def _image_dir(images: Path, release: DebianRelease) -> Path:
    return images / f"{release.label}_{_safe(release.version)}"


def _valid(directory: Path) -> dict | None:
    try:
        stamp = json.loads((directory / STAMP).read_text(encoding="utf-8"))
        if all((directory / name).stat().st_size == size
               for name, size in stamp["sizes"].items()):
            return stamp
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _cached(images: Path, abi: str, version: str | None) -> tuple[Path, dict] | None:
    """The newest valid extraction of ``abi`` (of ``version`` when given)."""
    found = []
    for directory in images.glob(f"debian-{_safe(abi)}-{FLAVOUR}_*"):
        stamp = _valid(directory)
        if stamp and stamp.get("abi") == abi and version in (None, stamp.get("version")):
            found.append((stamp.get("fetched", 0), directory, stamp))
    if not found:
        return None
    _, directory, stamp = max(found, key=lambda f: f[0])
    return directory, stamp


def _release_of(stamp: dict) -> DebianRelease:
    return DebianRelease(abi=stamp["abi"], suite=stamp["suite"], version=stamp["version"])


def _check_image(path: Path) -> None:
    """The vmlinuz must be a bare arm64 Image (QEMU's -kernel boots it and the
    faults are written at symbol offsets into it); a gzip one is unpacked."""
    with open(path, "rb") as f:
        head = f.read(IMAGE_MAGIC_OFFSET + 4)
    if head[:2] == GZIP_MAGIC:
        with gzip.open(path, "rb") as f:
            data = f.read()
        write_atomically(path, data)
        head = data[:IMAGE_MAGIC_OFFSET + 4]
    if head[IMAGE_MAGIC_OFFSET:] != IMAGE_MAGIC:
        raise DebianPackageError(f"{path}: the package's vmlinuz is not an arm64 Image (no "
                                 "ARM\\x64 magic at byte 56; an EFI zboot image?): the harness "
                                 "cannot write faults into it")


def _check_system_map(path: Path, deb: str) -> None:
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if b" _text\n" not in head and b" _text\r\n" not in head:
        raise DebianPackageError(f"{path} (from {deb}) has no _text: not a real System.map")


def _fetch(release: DebianRelease, index: AptIndex, target: Path) -> None:
    """Download the packages into a scratch directory beside ``target``,
    take the four files out, check them, and rename the directory in."""
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
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
        paths = _paths(release.full)
        for deb, roles in debs:
            members.update(extract_members(deb, {role: paths[role] for role in roles}, scratch))
            deb.unlink()
        _check_image(scratch / "Image")
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
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _kernel_image(directory: Path, stamp: dict, cached: bool, seconds: float) -> KernelImage:
    release = _release_of(stamp)
    image = KernelImage(
        image=directory / "Image", vmlinux=directory / "vmlinux",
        system_map=directory / "System.map", dotconfig=directory / "config",
        version=release.upstream, generation=release.generation, label=release.label,
        origin=ORIGIN, config_name=FLAVOUR, build_dir=directory, given=release.exact,
        cached=cached, seconds=seconds)
    return replace(image, compiler="clang") if image.enabled("CC_IS_CLANG") else image


def obtain_debian_kernel(value: str, out_dir: Path | str | None = None) -> KernelImage:
    """The Debian image ``value`` names, from the cache or downloaded into it."""
    started = time.monotonic()
    release = resolve(value, out_dir)
    base = _debian_dir(out_dir)
    images = base / IMAGES_DIR
    cached = _cached(images, release.abi, release.version)
    if cached is None:
        target = _image_dir(images, release)
        with exclusive(images, target.name, f"{target} for Debian's {release.label}",
                       DebianPackageError):
            cached = _cached(images, release.abi, release.version)
            if cached is None:
                _fetch(release, apt_index(base, release.suite), target)
                stamp = _valid(target)
                assert stamp is not None
                return _kernel_image(target, stamp, False, time.monotonic() - started)
    return _kernel_image(cached[0], cached[1], True, time.monotonic() - started)
