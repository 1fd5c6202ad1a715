"""Kernel trees whose nVHE unwinder the firmware can be built with.

The firmware can take its nVHE stack unwinder from a Linux kernel tree
instead of its own (CMake's ``NVHE_KERNEL_SRC`` / ``NVHE_KERNEL_GEN``,
docs/kernel-src.md). This module knows which trees that works for:

- :func:`inspect` reads a tree directory: its version (the top Makefile's
  VERSION, PATCHLEVEL, SUBLEVEL), its generation, decided by the unwinder
  API its sources have (:mod:`pyharness.builder.kernel_api`; each
  generation has its own compatibility headers, csrc/kcompat/<generation>),
  and the files the build reads from it.
- :func:`extract` takes just those files out of a Debian
  ``linux-source-X.Y`` tarball (``/usr/src/linux-source-X.Y.tar.xz``) into a
  directory, which then is such a tree.
- :func:`open_source` turns what a user passes as ``--kernel-src`` (a tree,
  a tarball, or ``lab`` for the lab's own unwinder; ``NAME=PATH`` names a
  tree) into a :class:`KernelSource` with which state of the tree it is
  (:mod:`pyharness.builder.provenance`); a tarball is extracted once into
  the build cache.

Anything else (a missing file, an older or newer unwinder) is a
:class:`KernelSourceError` naming what is wrong and the supported
generations.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyharness.builder.debian_kernel import is_debian_kernel
from pyharness.builder.kernel_api import (COMMON_H, DEBIAN_PACKAGES, FRAME_H, GENERATIONS,
                                          HOST_STACKTRACE_C, HYP_STACKTRACE_C, NVHE_H,
                                          UnknownApi, detect_generation)
from pyharness.builder.lock import exclusive
from pyharness.builder.tarballs import content_digest, read_members
from pyharness.builder.provenance import (A_TARBALL, NOT_A_WORK_TREE, TreeProvenance,
                                          not_git, tree_provenance_once)
from pyharness.errors import HarnessError

MAKEFILE = "Makefile"
MEMORY_H = "arch/arm64/include/asm/memory.h"

# What the firmware build reads from a tree: the two objects' sources and
# the two headers they include from the tree (everything else comes from
# csrc/kcompat). These, with the generation, decide the image's bytes.
BUILD_FILES = (COMMON_H, NVHE_H, HYP_STACKTRACE_C, HOST_STACKTRACE_C)
# ... and what inspect() needs on top: the version.
TREE_FILES = (MAKEFILE, *BUILD_FILES)
# ... and per generation: asm/memory.h with what its assembler-safe part
# includes, from which the compiler evaluates the tree's numbers
# (builder/kernel_numbers.py; the reference trees' dependency output), and
# 7.x's struct frame_record. A tree has them all; extract() takes them from
# a tarball.
_NUMBERS_6_12 = (MEMORY_H, "arch/arm64/include/asm/page-def.h", "include/linux/const.h",
                 "include/vdso/const.h", "include/uapi/linux/const.h", "include/linux/sizes.h")
GENERATION_FILES = {
    "6.1": (*_NUMBERS_6_12, "include/asm-generic/memory_model.h", "include/linux/pfn.h"),
    "6.12": _NUMBERS_6_12,
    "7.x": (*_NUMBERS_6_12, "include/vdso/page.h", FRAME_H),
}

DEBIAN_TARBALL = "/usr/src/{package}.tar.xz"

# What --kernel-src defaults to, and the value that means the lab's own unwinder.
KERNEL_SRC_ENV = "PYHARNESS_KERNEL_SRC"
LAB = "lab"
# Where extracted tarballs go, under the build directory.
EXTRACTED_DIR = "kernel-src"
_TARBALL_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tar.zst", ".tgz", ".tar")

_VERSION_LINE = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL)\s*=\s*(\d*)\s*$", re.M)


class KernelSourceError(HarnessError):
    """A kernel tree or tarball the firmware cannot be built with."""


@dataclass(frozen=True)
class KernelTree:
    """A kernel tree the firmware can take its nVHE unwinder from."""

    root: Path
    version: str            # "6.1.192", from the Makefile
    generation: str         # one of GENERATIONS, from the unwinder API

    @property
    def build_files(self) -> tuple[Path, ...]:
        """The tree's files the firmware build reads (the optional ones it has)."""
        return tuple(self.root / name for name in self._build_names())

    def _build_names(self) -> tuple[str, ...]:
        extra = GENERATION_FILES.get(self.generation, ())
        return (*BUILD_FILES, *(name for name in extra if (self.root / name).is_file()))

    @property
    def compiled_files(self) -> tuple[Path, ...]:
        """The tree's sources compiled into the image (EL2, then EL1)."""
        return (self.root / HYP_STACKTRACE_C, self.root / HOST_STACKTRACE_C)

    def digest(self) -> str:
        """Hash of the generation and every file the build reads from the
        tree, by path relative to the tree: for a build key. Where the tree
        lives does not count."""
        h = hashlib.sha256()
        h.update(f"kernel-src {self.generation}\0".encode())
        for name in self._build_names():
            h.update(name.encode() + b"\0")
            h.update((self.root / name).read_bytes())
            h.update(b"\0")
        return h.hexdigest()

    def cmake_args(self) -> list[str]:
        """The CMake cache settings that build against this tree."""
        return [f"-DNVHE_KERNEL_SRC={self.root}", f"-DNVHE_KERNEL_GEN={self.generation}"]


def _supported() -> str:
    return "supported generations: " + ", ".join(GENERATIONS)


def read_version(makefile_text: str) -> str:
    """``VERSION.PATCHLEVEL.SUBLEVEL`` from a kernel's top Makefile text
    (``VERSION.PATCHLEVEL`` when SUBLEVEL is empty)."""
    fields: dict[str, str] = {}
    for name, value in _VERSION_LINE.findall(makefile_text):
        fields.setdefault(name, value)
    if not fields.get("VERSION") or not fields.get("PATCHLEVEL"):
        raise KernelSourceError("no VERSION / PATCHLEVEL lines in the Makefile: "
                                "this is not the top Makefile of a Linux tree")
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    return f"{version}.{fields['SUBLEVEL']}" if fields.get("SUBLEVEL") else version


def inspect(root: Path | str) -> KernelTree:
    """Check that ``root`` is a kernel tree the firmware can be built with."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise KernelSourceError(f"{root}: not a directory; give the top directory of a "
                                "Linux kernel tree (or extract one from a Debian "
                                "linux-source tarball)")
    missing = [name for name in TREE_FILES if not (root / name).is_file()]
    if missing:
        raise KernelSourceError(f"{root} is not a kernel tree with the nVHE stack unwinder: "
                                f"missing {', '.join(missing)}; {_supported()}")
    try:
        texts = {name: (root / name).read_text(encoding="utf-8", errors="replace")
                 for name in TREE_FILES}
    except OSError as err:
        raise KernelSourceError(f"{root}: cannot read the tree: {err}") from None
    try:
        version = read_version(texts[MAKEFILE])
        generation = detect_generation(texts)
    except (KernelSourceError, UnknownApi) as err:
        raise KernelSourceError(f"{root}: {err}; {_supported()}") from None
    if generation == "7.x" and not (root / FRAME_H).is_file():
        raise KernelSourceError(f"{root} is missing {FRAME_H}, whose struct frame_record "
                                f"the 7.x unwinder reads records as; {_supported()}")
    return KernelTree(root=root, version=version, generation=generation)


def debian_tarball(generation: str) -> Path:
    """Where the Debian package of the generation's reference tree
    (``linux-source-7.2`` for 7.x) puts its tarball."""
    if generation not in GENERATIONS:
        raise KernelSourceError(f"unknown kernel generation {generation!r}; {_supported()}")
    return Path(DEBIAN_TARBALL.format(package=DEBIAN_PACKAGES[generation]))


def extract(tarball: Path | str, dest: Path | str) -> KernelTree:
    """Extract the files the build needs (TREE_FILES, then the
    GENERATION_FILES of the generation they have) from a kernel source
    tarball (its members under one top directory, as Debian's
    ``linux-source-X.Y/``) into ``dest``, and inspect the result.

    Only those files are written, each through a temporary file and a
    rename, so a concurrent reader never sees half a file. Reading stops
    as soon as all are found (3 to 15 s for a Debian tarball). Each file
    is at most :data:`pyharness.builder.tarballs.MAX_SOURCE_FILE` and
    read in bounded chunks: a tarball's word about a member is not trusted."""
    tarball, dest = Path(tarball), Path(dest)
    if not tarball.is_file():
        hint = ""
        match = re.fullmatch(r"linux-source-(\d+\.\d+)\.tar\.xz", tarball.name)
        if match:
            hint = f" (apt-get install linux-source-{match.group(1)})"
        raise KernelSourceError(f"{tarball}: no such tarball{hint}; {_supported()}")
    wanted = {*TREE_FILES, *(name for names in GENERATION_FILES.values() for name in names)}
    try:
        found = read_members(tarball, wanted, still_wanted=_still_wanted)
    except HarnessError as err:     # corrupt, not a tarball, a member too large
        raise KernelSourceError(str(err)) from None
    missing = [name for name in TREE_FILES if name not in found]
    if missing:
        raise KernelSourceError(f"{tarball} has no {', '.join(missing)}: not a kernel "
                                f"source tarball with the nVHE stack unwinder; {_supported()}")
    for name, data in found.items():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    return inspect(dest)


def _still_wanted(found: dict[str, bytes], wanted: set[str]) -> set[str]:
    """Once a tarball's unwinder files are read, only its generation's
    other files are still wanted."""
    if not all(name in found for name in TREE_FILES):
        return wanted
    try:
        generation = detect_generation({n: found[n].decode("utf-8", "replace")
                                        for n in BUILD_FILES})
    except UnknownApi:
        return set(TREE_FILES)     # inspect() says why, after the loop
    return {*TREE_FILES, *GENERATION_FILES[generation]}


# -- what --kernel-src names ---------------------------------------------------

@dataclass(frozen=True)
class KernelSource:
    """What ``--kernel-src`` named, and the tree the build reads."""

    given: str              # the tree or tarball, absolute, as the user named it
    tree: KernelTree        # the tree itself, or the tarball's files in the build cache
    name: str | None = None             # NAME of ``--kernel-src NAME=PATH``
    provenance: TreeProvenance = not_git()   # its commit, dirtiness, diff hash

    @property
    def generation(self) -> str:
        return self.tree.generation

    @property
    def unwinder(self) -> str:
        """What an image built from it says it carries: ``linux-6.12``."""
        return f"linux-{self.tree.generation}"

    @property
    def label(self) -> str:
        """What its runs are labelled: its NAME, else ``linux-6.12``."""
        return self.name or self.unwinder


def is_lab(value: str | os.PathLike[str] | None) -> bool:
    """No --kernel-src, or ``lab``: the lab's own unwinder."""
    return value is None or str(value) in ("", LAB)


def default_kernel_src() -> str | None:
    """``$PYHARNESS_KERNEL_SRC``, the default of every ``--kernel-src``."""
    return os.environ.get(KERNEL_SRC_ENV) or None


def is_tarball(path: Path) -> bool:
    return path.name.endswith(_TARBALL_SUFFIXES)


def source_name(path: Path | str) -> str:
    """A tree's directory name, a tarball's name without its suffix
    (``linux-source-6.12``), in characters safe in ids and file names."""
    name = Path(path).name
    for suffix in _TARBALL_SUFFIXES:
        name = name.removesuffix(suffix)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name) or "tree"


# NAME of ``--kernel-src NAME=PATH``: a run id's first part, so no '/' and
# nothing a shell or a file name would mind.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def split_name(value: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); anything else -> (None, value). The
    text before the first ``=`` is a NAME when it has no ``/``: a path whose
    first part holds an ``=`` is given as ``./a=b``."""
    name, equals, path = value.partition("=")
    if not equals or "/" in name:
        return None, value
    if not _NAME.fullmatch(name):
        raise KernelSourceError(f"--kernel-src {value}: {name!r} is not a tree name: use "
                                "letters, digits and _.+- (starting with a letter or "
                                "digit), as in --kernel-src mytree=~/src/linux")
    if name == LAB:
        raise KernelSourceError(f"--kernel-src {value}: `{LAB}` is the lab's own unwinder; "
                                "give the tree another name")
    if is_lab(path):
        raise KernelSourceError(f"--kernel-src {value}: the lab's own unwinder takes no name; "
                                f"give `{LAB}` alone")
    return name, path


def open_source(value: str | os.PathLike[str] | None, cache_dir: Path) -> KernelSource | None:
    """``--kernel-src VALUE``: None for the lab's unwinder, else the tree
    (a directory) or a tarball's files, extracted once under
    ``cache_dir/kernel-src``; ``NAME=PATH`` names it. A tree this build
    cannot use is a :class:`KernelSourceError` naming what is missing."""
    if is_lab(value):
        return None
    name, text = split_name(str(value))
    path = Path(os.path.abspath(os.path.expanduser(text)))
    if path.is_dir():
        return KernelSource(str(path), inspect(path), name, provenance_of(path))
    if path.is_file() and is_tarball(path):
        return KernelSource(str(path), extract_cached(path, cache_dir / EXTRACTED_DIR), name,
                            provenance_of(path))
    if is_debian_kernel(text) and not path.exists():
        raise KernelSourceError(f"--kernel-src {value} names one of Debian's built kernels, "
                                "which only the real-kernel path boots (pyharness qemu, "
                                "pyharness matrix --qemu); the fast path compiles a tree's "
                                "unwinder: give a tree or a Debian linux-source-X.Y.tar.xz")
    what = "not a directory or a kernel source tarball" if path.exists() else "no such path"
    raise KernelSourceError(f"--kernel-src {value}: {what}; give the top directory of a Linux "
                            "kernel tree, a Debian /usr/src/linux-source-X.Y.tar.xz, or "
                            f"`{LAB}` for the lab's own unwinder (NAME=PATH names a tree); "
                            f"{_supported()}")


def provenance_of(given: Path | str) -> TreeProvenance:
    """Which state of the tree ``given`` (absolute) is: a directory's from
    git (once per process), a tarball's none."""
    path = Path(given)
    if path.is_dir():
        return tree_provenance_once(str(path))
    if is_debian_kernel(str(given)) and not path.exists():
        return not_git("one of Debian's built kernels, not a git work tree")
    return not_git(A_TARBALL if is_tarball(path) else NOT_A_WORK_TREE)


def extract_cached(tarball: Path, cache_dir: Path) -> KernelTree:
    """:func:`extract`, once per tarball content (the sha256 of its bytes:
    two tarballs of one name, size and mtime are still two) and set of
    files extracted: the files go to a fresh directory that is renamed
    into place when complete, under a lock, so concurrent workers wait for
    one extraction and never see half of one."""
    try:
        digest = content_digest(tarball)
    except HarnessError as err:
        raise KernelSourceError(str(err)) from None
    files = sorted({*TREE_FILES, *(n for names in GENERATION_FILES.values() for n in names)})
    key = hashlib.sha256("\0".join(["content", digest, *files]).encode())
    dest = cache_dir / f"{source_name(tarball)}-{key.hexdigest()[:12]}"
    if dest.is_dir():
        return inspect(dest)
    with exclusive(cache_dir, dest.name, f"{dest} for the files of {tarball}",
                   KernelSourceError):
        if not dest.is_dir():
            scratch = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{dest.name}."))
            try:
                try:
                    extract(tarball, scratch)
                except KernelSourceError as err:  # name the tarball, not the scratch dir
                    raise KernelSourceError(str(err).replace(str(scratch), str(tarball))) \
                        from None
                os.rename(scratch, dest)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return inspect(dest)
