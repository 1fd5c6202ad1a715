"""Building the firmware for one configuration, cached, keyed by every file
the compile read.

A build has two keys (docs/kernel-src.md, "The build key"):

- its *recipe*, known before compiling: the .config, the toolchain, the
  lab's sources (every file under csrc/, the CMake files, the kallsyms
  generator) and, with ``kernel_src``, the kernel tree's place and
  generation;
- its *content key*: the recipe and every file the compile read, by
  label and sha256, from the compiler's own dependency output
  (:mod:`pyharness.builder.depfiles`): the lab's sources, the tree's files
  (through csrc/kcompat and its arch/arm64/include alike), the compiler's
  own headers, and whatever a compiler probe reads.

The finished image lives in ``<base>/<name>-<content key>`` (named for its
configuration, and for a kernel tree's unwinder its generation:
``pkvm-linux-6.12-<hash>``) and never changes once its stamp is written.
A build is found again only while every file it read hashes as it did: the
inputs come from the last build in the configuration's work tree (or the
stamps of the finished builds of the same recipe), are hashed now, and
must name a finished directory. An edit to any header the build includes
therefore rebuilds, and a build with nothing changed does no compiler work.

It compiles in a persistent work tree per (configuration, toolchain,
checkout, tree place) (:mod:`pyharness.builder.worktree`): only the objects
that read a changed file are compiled again. The image and what describes
it (the compile database, the configuration files) are then copied into
the keyed directory.

The stamp (``build.json``) records the image's sha256: an image damaged
since (truncated, patched) is built again, afresh, and the result says
why. A finished build is found without the lock and without writing
anything, so a shared read-only cache can be used; only a build needs
write access (``_build_lock``: one builder per work tree and per keyed
directory). The build runs in a scrubbed environment
(:func:`pyharness.builder.worktree.build_environment`). After a real build
the configuration's older keyed directories and work trees beyond the
newest few are removed (:mod:`pyharness.builder.trees`; ``pyharness
clean`` does the rest).

``scratch`` puts the work trees elsewhere (``pyharness mutate``: one
directory per worker's copy of the sources).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pyharness.kconfig import resolve as kconfig
from pyharness.errors import BuildError, HarnessError  # BuildError: what a failed build raises
from pyharness.builder.inputs import (Roots, all_settled, content_key, current_hashes,
                                      moved_during_build, source_files as lab_sources,
                                      source_hashes)
from pyharness.builder.kernelsrc import KernelSource, KernelTree, open_source
from pyharness.builder.worktree import (Compiled, build_in, cannot_write, check_cmake_can_carry,
                                        read_record, work_tree_path)
from pyharness.files import sha256_of, write_atomically
from pyharness.paths import build_base, source_root
from pyharness.builder.toolchain import Toolchain, find_toolchain
from pyharness.builder.lock import hold_shared, release
from pyharness.builder.trees import STAMP, WORK_DIR, lock_path, prune_after_build, write_marker

_KEY_FORMAT = "pyharness build recipe 2"
# What the keyed directory holds besides the stamp: the image and what describes it.
PRODUCTS = ("vmlinux", "compile_commands.json")
PRODUCT_DIRS = ("config",)
# Builds made before giving up when the sources keep changing while they run.
_ATTEMPTS = 2


@dataclass(frozen=True)
class BuildResult:
    """A built image and where it came from."""

    config: kconfig.ResolvedConfig
    elf: Path
    build_dir: Path
    digest: str                  # the content key: recipe and every file read
    cached: bool
    seconds: float
    kernel: KernelSource | None = None   # None: the lab's own unwinder
    # Why a build directory that held a finished build was built again.
    rebuilt_because: str | None = None
    recipe: str = ""                # the key known before compiling
    work_dir: Path | None = None    # the persistent tree it compiles in
    # Objects compiled by this call (None: found cached), of how many.
    compiled: tuple[str, ...] | None = None
    objects: int | None = None

    @property
    def unwinder(self) -> str:
        """What the image carries: ``lab`` or ``linux-<generation>``."""
        return "lab" if self.kernel is None else self.kernel.unwinder

    @property
    def compile_commands(self) -> Path:
        """CMake's compile database, with the kernel tree's files when there is one."""
        return self.build_dir / "compile_commands.json"


def source_files() -> list[Path]:
    """The lab's sources a build's recipe holds (:func:`inputs.source_files`)."""
    return lab_sources(source_root())


def recipe_key(config: kconfig.ResolvedConfig, toolchain: Toolchain,
               tree: KernelTree | None = None,
               sources: dict[str, str | None] | None = None) -> str:
    """What decides a build before it compiles: the .config, the toolchain,
    the lab's sources (by path in the checkout and hash: ``sources``, or
    hashed now) and a kernel tree's place and generation (the compile
    database names its files). The tree's files, like every other file the
    compile reads, join in the content key."""
    h = hashlib.sha256()
    kernel = () if tree is None else (str(tree.root), tree.generation)
    for part in (_KEY_FORMAT, config.dotconfig, toolchain.prefix, toolchain.version, *kernel):
        h.update(part.encode() + b"\0")
    if sources is None:
        sources = source_hashes(source_root())
    for name, digest in sources.items():
        h.update(f"{name}\0{digest}\0".encode())
    return h.hexdigest()


def build_dir_name(config_name: str, digest: str) -> str:
    """``<slug>-<digest[:12]>``: no config name can reach outside the base
    directory or break the CMake files that carry it."""
    return f"{kconfig.config_slug(config_name)}-{digest[:12]}"


def _read_stamp(build_dir: Path) -> dict | None:
    try:
        stamp = json.loads((build_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _check_built(build_dir: Path, digest: str) -> tuple[bool, str | None]:
    """(finished, problem): whether the build directory holds the finished
    image of ``digest``, checked against the sha256 its stamp recorded; the
    problem says why not when a stamp is there but its image is not right.
    Reads only, takes no lock: stamps are replaced atomically."""
    stamp = _read_stamp(build_dir)
    if stamp is None or stamp.get("digest") != digest:
        return False, None
    recorded = stamp.get("sha256")
    if not isinstance(recorded, str):
        return False, "its stamp records no sha256 of the image (an older pyharness)"
    try:
        actual = sha256_of(build_dir / "vmlinux")
    except OSError as err:
        return False, f"the cached vmlinux cannot be read ({err.strerror})"
    if actual != recorded:
        return False, "the cached vmlinux does not match the sha256 recorded when it was built"
    return True, None


@dataclass(frozen=True)
class _Found:
    build_dir: Path | None = None
    digest: str | None = None
    problem: str | None = None      # a finished build of these inputs is damaged


# Per process: what the stamp of each keyed directory records (its recipe,
# its inputs' labels), for as long as the directory is unchanged: a lookup
# that reads the stamps (no work tree, or sources a work tree has moved on
# from) reads each once.
_stamped: dict[str, tuple[int, str | None, list[str]]] = {}


def _stamped_inputs(base: Path, slug: str, recipe: str) -> Iterator[list[str]]:
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if entry.name[:-13] != slug or entry.name[-13:-12] != "-":
            continue
        try:
            version = entry.stat().st_mtime_ns
        except OSError:
            continue
        known = _stamped.get(entry.path)
        if known is None or known[0] != version:
            stamp = _read_stamp(Path(entry.path)) or {}
            inputs = stamp.get("inputs")
            known = _stamped[entry.path] = (
                version, stamp.get("recipe") if isinstance(stamp.get("recipe"), str) else None,
                list(inputs) if isinstance(inputs, dict) else [])
        if known[1] == recipe:
            yield known[2]


def _candidate_inputs(base: Path, name: str, recipe: str, work: Path) -> Iterator[list[str]]:
    """The input lists a finished build of ``recipe`` may have: the last
    build's in the work tree, then (only if that does not lead to one) those
    the stamps of this configuration's keyed directories record: with no
    work tree (removed, or a cache made elsewhere), or sources the work tree
    has since moved on from. Each is checked against the files as they are."""
    record = read_record(work)
    if record is not None:
        yield list(record.hashes)
    yield from _stamped_inputs(base, kconfig.config_slug(name), recipe)


def _find_finished(base: Path, name: str, recipe: str, work: Path, roots: Roots) -> _Found:
    """A finished build of ``recipe`` whose every input hashes now as it did
    when it was compiled. Reads only."""
    problem = None
    tried = set()
    for labels in _candidate_inputs(base, name, recipe, work):
        hashes = current_hashes(labels, roots)
        if not labels or not all_settled(hashes):
            continue
        digest = content_key(recipe, hashes)
        if digest in tried:
            continue
        tried.add(digest)
        build_dir = base / build_dir_name(name, digest)
        finished, why = _check_built(build_dir, digest)
        if finished:
            return _Found(build_dir, digest)
        problem = problem or why
    return _Found(problem=problem)


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)


@contextmanager
def _build_lock(config: kconfig.ResolvedConfig, build_dir: Path) -> Iterator[None]:
    """Exclusive use of ``build_dir`` (a work tree, or a keyed directory
    being filled) for a build: the one place a build needs write access to
    the base directory."""
    base = build_dir.parent
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(lock_path(build_dir))
    except OSError as err:
        raise HarnessError(f"cannot build {config.name} in {base}: the directory is not "
                           f"writable ({err.strerror}) and holds no finished build of it; "
                           "pass a writable --out DIR") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _publish(config: kconfig.ResolvedConfig, toolchain: Toolchain, build_dir: Path,
             digest: str, recipe: str, work: Path, compiled: Compiled,
             kernel: KernelSource | None) -> None:
    """Copy the image and what describes it from the work tree into the
    keyed directory, the stamp last; unless another builder of the same
    sources has just done so."""
    release(lock_path(build_dir))       # this process's own hold would block it
    with _build_lock(config, build_dir):
        if _check_built(build_dir, digest)[0]:
            return
        if build_dir.exists():
            shutil.rmtree(build_dir)
        build_dir.mkdir(parents=True)
        write_marker(build_dir, digest)
        for name in PRODUCTS:
            shutil.copyfile(work / name, build_dir / name)
        for name in PRODUCT_DIRS:
            shutil.copytree(work / name, build_dir / name)
        stamp = {"digest": digest, "recipe": recipe, "config": str(config.source),
                 "toolchain": toolchain.version, "sha256": sha256_of(build_dir / "vmlinux"),
                 "work_tree": str(work), "inputs": compiled.hashes}
        if kernel:
            stamp.update(kernel_src=kernel.given, kernel_tree=str(kernel.tree.root),
                         kernel_version=kernel.tree.version, unwinder=kernel.unwinder)
        write_atomically(build_dir / STAMP, json.dumps(stamp, indent=1) + "\n")


def _held(found: _Found) -> bool:
    """Hold the finished build against removal while this process may use
    it (:func:`pyharness.builder.lock.hold_shared`: ``pyharness clean`` and
    the pruning after another build skip it); False when it was removed or
    replaced before the hold was taken."""
    assert found.build_dir is not None and found.digest is not None
    hold_shared(lock_path(found.build_dir))
    if _check_built(found.build_dir, found.digest)[0]:
        return True
    release(lock_path(found.build_dir))
    return False


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def build(config_path: Path | str, out_dir: Path | str | None = None,
          jobs: int | None = None, kernel_src: str | os.PathLike[str] | None = None,
          *, scratch: Path | None = None) -> BuildResult:
    """Build (or find cached) the image for the config file at config_path,
    with the nVHE unwinder of the kernel tree or tarball ``kernel_src``
    (None or ``lab``: the lab's own).

    ``scratch``: keep the work trees there rather than in ``<base>/work``
    (one directory per checkout of the sources, used by one process at a
    time)."""
    started = time.monotonic()
    config = kconfig.resolve(kconfig.find_config(str(config_path)))
    if not config.enabled("KVM"):
        raise kconfig.ConfigError(
            f"{config.source}: CONFIG_KVM is not set, so there is no hypervisor "
            "to build or test; set CONFIG_KVM=y")
    if jobs is not None and jobs < 1:
        raise HarnessError(f"-j {jobs}: the number of compile jobs must be at least 1")
    toolchain = find_toolchain(clang=config.enabled("CC_IS_CLANG"))
    base = build_base(out_dir)
    check_cmake_can_carry(base)
    kernel = open_source(kernel_src, base)
    name = f"{config.name}-{kernel.unwinder}" if kernel else config.name
    work = work_tree_path(scratch or base / WORK_DIR, name, config, toolchain, kernel)
    check_cmake_can_carry(work.parent, kernel.tree.root if kernel else None)
    roots = Roots(source_root(), kernel.tree.root if kernel else None, work)
    moved: list[str] = []
    attempts = 0
    while attempts < _ATTEMPTS:
        hashed_at = time.time_ns()          # before the recipe's sources are hashed
        sources = source_hashes(source_root())
        recipe = recipe_key(config, toolchain, kernel.tree if kernel else None, sources)
        found = _find_finished(base, name, recipe, work, roots)
        if found.build_dir is not None:
            if not _held(found):
                continue                    # removed as it was found: look again
            _touch(found.build_dir / STAMP)          # its last use, for `pyharness clean`
            return _result(config, found, kernel, recipe, work, started, None)
        with _build_lock(config, work):
            again = _find_finished(base, name, recipe, work, roots)  # another process built it?
            if again.build_dir is not None and _held(again):
                return _result(config, again, kernel, recipe, work, started, None)
            # A damaged image is built afresh: nothing of the tree it came from is
            # trusted; so is one whose CMake files or generator moved last time.
            problem = found.problem or again.problem
            try:
                compiled = build_in(work, config, toolchain, kernel, jobs,
                                    afresh=problem is not None or bool(moved))
            except OSError as err:
                raise cannot_write(name, err) from None
            moved = moved_during_build(source_root(), sources, hashed_at, compiled.hashes)
            if moved:       # what it read is not what its key says: not kept, built again
                attempts += 1
                continue
            digest = content_key(recipe, compiled.hashes)
            found = _Found(base / build_dir_name(name, digest), digest, problem)
            try:
                _publish(config, toolchain, found.build_dir, digest, recipe, work, compiled,
                         kernel)
            except OSError as err:          # a full disk while build.json is written...
                shutil.rmtree(found.build_dir, ignore_errors=True)
                raise cannot_write(name, err) from None
            _held(found)
        prune_after_build(base, name, found.build_dir)
        prune_after_build(work.parent, name, work)
        return _result(config, found, kernel, recipe, work, started, compiled)
    raise HarnessError(f"{', '.join(moved[:3])}{' ...' if len(moved) > 3 else ''}: changed "
                       f"(or could not be read) while {name} was built, {_ATTEMPTS} times; nothing was cached; "
                       "build again once the sources are saved")


def _result(config: kconfig.ResolvedConfig, found: _Found, kernel: KernelSource | None,
            recipe: str, work: Path, started: float, compiled: Compiled | None) -> BuildResult:
    assert found.build_dir is not None and found.digest is not None
    return BuildResult(config=config, elf=found.build_dir / "vmlinux", build_dir=found.build_dir,
                       digest=found.digest, cached=compiled is None,
                       seconds=time.monotonic() - started, kernel=kernel,
                       rebuilt_because=found.problem if compiled is not None else None,
                       recipe=recipe, work_dir=work,
                       compiled=compiled.compiled if compiled else None,
                       objects=compiled.objects if compiled else None)
