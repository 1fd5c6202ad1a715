"""Kernel trees whose nVHE unwinder the firmware can be built with.

The firmware can take its nVHE stack unwinder from a Linux kernel tree
instead of its own (CMake's ``NVHE_KERNEL_SRC`` / ``NVHE_KERNEL_GEN``,
docs/kernel-src.md). This module knows which trees that works for:

- :func:`inspect` reads a tree directory: its version (the top Makefile's
  VERSION, PATCHLEVEL, SUBLEVEL), its generation, decided by the unwinder
  API its sources have (each generation has its own compatibility headers,
  csrc/kcompat/<generation>), and the files the build compiles from it.
- :func:`extract` takes just those files out of a Debian
  ``linux-source-X.Y`` tarball (``/usr/src/linux-source-X.Y.tar.xz``) into a
  directory, which then is such a tree.
- :func:`open_source` turns what a user passes as ``--kernel-src`` (a tree,
  a tarball, or ``lab`` for the lab's own unwinder) into a
  :class:`KernelSource`; a tarball is extracted once into the build cache.

Anything else (a missing file, an older or newer unwinder) is a
:class:`KernelSourceError` naming what is wrong and the supported
generations.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyharness.builder.debian_kernel import is_debian_kernel
from pyharness.builder.lock import exclusive
from pyharness.errors import HarnessError

# Generations the compatibility layer (csrc/kcompat/<generation>) supports.
GENERATIONS = ("6.1", "6.12")

MAKEFILE = "Makefile"
COMMON_H = "arch/arm64/include/asm/stacktrace/common.h"
NVHE_H = "arch/arm64/include/asm/stacktrace/nvhe.h"
HYP_STACKTRACE_C = "arch/arm64/kvm/hyp/nvhe/stacktrace.c"
HOST_STACKTRACE_C = "arch/arm64/kvm/stacktrace.c"

# What the firmware build reads from a tree: the two objects' sources and
# the two headers they include from the tree (everything else comes from
# csrc/kcompat). These, with the generation, decide the image's bytes.
BUILD_FILES = (COMMON_H, NVHE_H, HYP_STACKTRACE_C, HOST_STACKTRACE_C)
# ... and what inspect() needs on top: the version.
TREE_FILES = (MAKEFILE, *BUILD_FILES)

DEBIAN_TARBALL = "/usr/src/linux-source-{generation}.tar.xz"

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
        """The tree's files the firmware build reads."""
        return tuple(self.root / name for name in BUILD_FILES)

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
        for name in BUILD_FILES:
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


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


def detect_generation(common_h: str, nvhe_h: str, hyp_c: str, host_c: str) -> str:
    """The generation whose compatibility headers fit these sources, or a
    KernelSourceError saying which API they have instead.

    - 6.1: the stack_info / unwind_consume_stack() unwinder (a walk
      consumes each stack upwards and drops a stack once it leaves it),
      unwind_init_common() taking a task, one-page hyp stacks found through
      kvm_init_params.stack_hyp_va and kvm_arm_hyp_stack_page.
    - 6.12: the same, but unwind_init_common() takes only the state.
    Older trees (stack types and a stacks_done bitmap, 5.19/6.0) and newer
    ones (multi-page hyp stacks, NVHE_STACK_SIZE and kvm_arm_hyp_stack_base,
    6.13 on) are refused.
    """
    if not _has(r"\bunwind_consume_stack\s*\(", common_h):
        if _has(r"\bstacks_done\b", common_h) or _has(r"\benum\s+stack_type\b", common_h):
            raise KernelSourceError(
                f"{COMMON_H} has the older unwinder (stack types and a stacks_done "
                f"bitmap, before 6.1); {_supported()}")
        raise KernelSourceError(f"{COMMON_H} has no unwind_consume_stack(): not an "
                                f"arm64 unwinder this build knows; {_supported()}")
    if (_has(r"\bNVHE_STACK_SIZE\b", hyp_c + host_c)
            or _has(r"\bkvm_arm_hyp_stack_base\b", nvhe_h + host_c)):
        raise KernelSourceError(
            "the tree's hyp stacks are NVHE_STACK_SIZE / kvm_arm_hyp_stack_base "
            f"(6.13 and later), not one page found through kvm_arm_hyp_stack_page; "
            f"{_supported()}")
    for needed, where, text in (
            (r"\bkvm_arm_hyp_stack_page\b", NVHE_H, nvhe_h),
            (r"\bstack_hyp_va\b", HYP_STACKTRACE_C, hyp_c),
            (r"\bkvm_nvhe_prepare_backtrace\s*\(", HYP_STACKTRACE_C, hyp_c),
            (r"\bkvm_nvhe_dump_backtrace\s*\(", HOST_STACKTRACE_C, host_c)):
        if not _has(needed, text):
            name = needed.replace(r"\b", "").replace(r"\s*\(", "()")
            raise KernelSourceError(f"{where} does not use {name}: not an nVHE unwinder "
                                    f"this build knows; {_supported()}")
    init = re.search(r"\bunwind_init_common\s*\(([^)]*)\)\s*\{", common_h)
    if init is None:
        raise KernelSourceError(f"{COMMON_H} defines no unwind_init_common(); {_supported()}")
    params = init.group(1)
    if _has(r"\bstruct\s+task_struct\b", params):
        return "6.1"
    if "," not in params:
        return "6.12"
    raise KernelSourceError(f"{COMMON_H}: unwind_init_common({' '.join(params.split())}) "
                            f"is neither the 6.1 nor the 6.12 form; {_supported()}")


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
        generation = detect_generation(texts[COMMON_H], texts[NVHE_H],
                                       texts[HYP_STACKTRACE_C], texts[HOST_STACKTRACE_C])
    except KernelSourceError as err:
        raise KernelSourceError(f"{root}: {err}") from None
    return KernelTree(root=root, version=version, generation=generation)


def debian_tarball(generation: str) -> Path:
    """Where Debian's ``linux-source-<generation>`` package puts its tarball."""
    if generation not in GENERATIONS:
        raise KernelSourceError(f"unknown kernel generation {generation!r}; {_supported()}")
    return Path(DEBIAN_TARBALL.format(generation=generation))


def extract(tarball: Path | str, dest: Path | str) -> KernelTree:
    """Extract the files the build needs (TREE_FILES) from a kernel source
    tarball (its members under one top directory, as Debian's
    ``linux-source-X.Y/``) into ``dest``, and inspect the result.

    Only those files are written, each through a temporary file and a
    rename, so a concurrent reader never sees half a file. Reading stops
    as soon as all are found (about 3 s for a Debian tarball)."""
    tarball, dest = Path(tarball), Path(dest)
    if not tarball.is_file():
        hint = ""
        match = re.fullmatch(r"linux-source-(\d+\.\d+)\.tar\.xz", tarball.name)
        if match:
            hint = f" (apt-get install linux-source-{match.group(1)})"
        raise KernelSourceError(f"{tarball}: no such tarball{hint}; {_supported()}")
    wanted = set(TREE_FILES)
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(tarball, "r:*") as archive:
            for member in archive:
                _, _, name = member.name.partition("/")
                if name not in wanted or not member.isfile() or name in found:
                    continue
                data = archive.extractfile(member)
                if data is None:
                    continue
                found[name] = data.read()
                if len(found) == len(wanted):
                    break
    except (tarfile.TarError, OSError, EOFError) as err:
        raise KernelSourceError(f"{tarball}: cannot read the tarball: {err}") from None
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


# -- what --kernel-src names ---------------------------------------------------

@dataclass(frozen=True)
class KernelSource:
    """What ``--kernel-src`` named, and the tree the build reads."""

    given: str              # the tree or tarball, absolute, as the user named it
    tree: KernelTree        # the tree itself, or the tarball's files in the build cache

    @property
    def generation(self) -> str:
        return self.tree.generation

    @property
    def unwinder(self) -> str:
        """What an image built from it says it carries: ``linux-6.12``."""
        return f"linux-{self.tree.generation}"


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


def open_source(value: str | os.PathLike[str] | None, cache_dir: Path) -> KernelSource | None:
    """``--kernel-src VALUE``: None for the lab's unwinder, else the tree
    (a directory) or a tarball's files, extracted once under
    ``cache_dir/kernel-src``. A tree this build cannot use is a
    :class:`KernelSourceError` naming what is missing."""
    if is_lab(value):
        return None
    path = Path(os.path.abspath(os.path.expanduser(str(value))))
    if path.is_dir():
        return KernelSource(str(path), inspect(path))
    if path.is_file() and is_tarball(path):
        return KernelSource(str(path), extract_cached(path, cache_dir / EXTRACTED_DIR))
    if is_debian_kernel(value) and not path.exists():
        raise KernelSourceError(f"--kernel-src {value} names one of Debian's built kernels, "
                                "which only the real-kernel path boots (pyharness qemu, "
                                "pyharness matrix --qemu); the fast path compiles a tree's "
                                "unwinder: give a tree or a Debian linux-source-X.Y.tar.xz")
    what = "not a directory or a kernel source tarball" if path.exists() else "no such path"
    raise KernelSourceError(f"--kernel-src {value}: {what}; give the top directory of a Linux "
                            "kernel tree, a Debian /usr/src/linux-source-X.Y.tar.xz, or "
                            f"`{LAB}` for the lab's own unwinder; {_supported()}")


def extract_cached(tarball: Path, cache_dir: Path) -> KernelTree:
    """:func:`extract`, once per tarball version (name, size, mtime): the
    files go to a fresh directory that is renamed into place when complete,
    under a lock, so concurrent workers wait for one extraction and never
    see half of one."""
    st = tarball.stat()
    key = hashlib.sha256(f"{tarball.name}\0{st.st_size}\0{st.st_mtime_ns}".encode())
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
