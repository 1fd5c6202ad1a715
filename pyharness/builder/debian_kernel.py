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
apt state): the unsigned image (``linux-image-ABI-cloud-arm64-unsigned``;
7.x: ``linux-binary-unsigned-ABI-cloud-arm64`` and ``linux-base-ABI-...``
for the config) and its ``-dbg`` package (``vmlinux`` and the real
``System.map``). They are downloaded with ``apt-get download`` and their
four files kept in the kernel cache (:mod:`pyharness.builder.debian_images`),
under a lock. A cached image is used without any network when the name is
an exact ABI, and without a download otherwise.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pyharness.builder.debian_apt import (THIS_MACHINE, AptIndex, DebianPackageError, Machine,
                                          apt_index)
from pyharness.builder.debian_images import (FLAVOUR, IMAGES_DIR, INDEX_LOCK, PREFIX,
                                             DebianRelease, cached_image, fetch, image_dir,
                                             release_of, valid_stamp)
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.lock import exclusive
from pyharness.paths import kernel_cache

DEBIAN_DIR = "debian"
ORIGIN = "debian"
# An image's packages, each with the files it gives.
Layout = tuple[tuple[str, tuple[str, ...]], ...]

_SERIES = re.compile(r"\d+\.\d+")
_ABI = re.compile(r"\d+\.\d+\.\d+[-+.~a-z0-9]*")
_SUITE = re.compile(r"[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class DebianSpec:
    """``debian:SELECTOR[@SUITE]`` taken apart."""

    given: str
    kind: str            # "series", "abi" or "suite" (the suite's newest)
    value: str           # "6.1", "6.1.0-57", "" (kind suite)
    suite: str           # the suite to look in


def is_debian_kernel(value: str | os.PathLike[str] | None) -> bool:
    """``--kernel-src`` names one of Debian's kernels (``debian:...``)."""
    return value is not None and str(value).startswith(PREFIX)


def parse_spec(value: str, default_suite: str | None = None) -> DebianSpec:
    """``debian:SELECTOR[@SUITE]``; with no suite named, ``default_suite``
    (None: the machine's own release)."""
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
                      suite=named or default_suite or THIS_MACHINE.codename())


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


def resolve(value: str, out_dir: Path | str | None = None,
            machine: Machine = THIS_MACHINE) -> DebianRelease:
    """The image ``value`` names. An exact ABI already in the cache needs no
    index; anything else reads the suite's index (fetched when missing or a
    day old; the mirror out of reach is :class:`MirrorUnreachable`)."""
    spec = parse_spec(value, machine.codename())
    base = _debian_dir(out_dir)
    if spec.kind == "abi":
        cached = cached_image(base / IMAGES_DIR, spec.value, None)
        if cached is not None:
            return release_of(cached[1])
    index = apt_index(base, spec.suite, machine)
    with exclusive(index.directory, INDEX_LOCK, f"the Debian package index {index.directory}",
                   DebianPackageError):
        index.refresh()
        names = set(index.names("linux-"))
        return _choose(spec, index, _available(names))


def _kernel_image(directory: Path, stamp: dict, cached: bool, seconds: float) -> KernelImage:
    release = release_of(stamp)
    image = KernelImage(
        image=directory / "Image", vmlinux=directory / "vmlinux",
        system_map=directory / "System.map", dotconfig=directory / "config",
        version=release.upstream, generation=release.generation, label=release.label,
        origin=ORIGIN, config_name=FLAVOUR, build_dir=directory, given=release.exact,
        cached=cached, seconds=seconds)
    return replace(image, compiler="clang") if image.enabled("CC_IS_CLANG") else image


def obtain_debian_kernel(value: str, out_dir: Path | str | None = None,
                         machine: Machine = THIS_MACHINE) -> KernelImage:
    """The Debian image ``value`` names, from the cache or downloaded into it
    (``machine``: whose apt sources name the mirror)."""
    started = time.monotonic()
    release = resolve(value, out_dir, machine)
    base = _debian_dir(out_dir)
    images = base / IMAGES_DIR
    cached = cached_image(images, release.abi, release.version)
    if cached is None:
        target = image_dir(images, release)
        with exclusive(images, target.name, f"{target} for Debian's {release.label}",
                       DebianPackageError):
            cached = cached_image(images, release.abi, release.version)
            if cached is None:
                fetch(release, apt_index(base, release.suite, machine), target)
                stamp = valid_stamp(target)
                assert stamp is not None
                return _kernel_image(target, stamp, False, time.monotonic() - started)
    return _kernel_image(cached[0], cached[1], True, time.monotonic() - started)
