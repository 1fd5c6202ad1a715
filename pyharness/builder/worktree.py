"""The persistent CMake/Ninja tree a configuration compiles in.

Each (configuration, toolchain, lab checkout, kernel tree's place) has one
work tree, ``<base>/work/<name>-<hash>``, kept from build to build, so that
an edit recompiles only the objects that read the edited file, however the
file's mtime moved: the tree's record (``work.json``) holds, from the
compiler's dependency output (:mod:`pyharness.builder.depfiles`), every
object's inputs and the hash each input had when it was compiled. Before a
build, every object one of whose inputs hashes differently now is removed,
so Ninja (or make) compiles it again; an input of a configure-time step
makes CMake configure again. A change to what decides the CMake tree
itself (the CMake files, the kallsyms generator, the set of lab sources,
the configure command) starts the tree afresh.

After the build, every input the compile read is hashed, and one whose
ctime moved since the build started is recorded as changed during the
build (:data:`pyharness.builder.inputs.CHANGED_DURING_BUILD`): its
objects are compiled again next time, and no cached build is found for it.

The build sees only a scrubbed environment (:data:`BUILD_ENV_KEPT`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import elftools

from pyharness.builder.depfiles import read_build_deps
from pyharness.builder.inputs import (SETTLE_NS, SOURCE_DIRS, Roots, current_hashes, file_hash,
                                      source_files)
from pyharness.builder.kernel_numbers import compiler_argv, probe as probe_kernel_numbers
from pyharness.builder.kernelsrc import KernelSource
from pyharness.builder.toolchain import Toolchain
from pyharness.builder.trees import MARKER, write_marker
from pyharness.errors import BuildError, HarnessError
from pyharness.files import write_atomically
from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig.resolve import ResolvedConfig, config_slug
from pyharness.paths import source_root

RECORD = "work.json"
_RECORD_FORMAT = 1
_OBJECT_SUFFIXES = (".o", ".obj")

# The only variables of the caller's environment the build sees (README,
# "build"). CFLAGS, CC, CPATH, GCC_EXEC_PREFIX, CMAKE_*, MAKEFLAGS and the
# like would change the image without changing its key, and CMake would keep
# them in CMakeCache.txt: the image is a function of (.config, sources,
# toolchain) and nothing else.
BUILD_ENV_KEPT = ("PATH", "TMPDIR")


def build_environment(toolchain: Toolchain) -> dict[str, str]:
    """The environment CMake, the compiler and the kallsyms pass run in (the
    kallsyms pass with the harness's own pyelftools)."""
    env = {name: os.environ[name] for name in BUILD_ENV_KEPT if name in os.environ}
    env.update(LC_ALL="C", LANG="C",
               PYTHONPATH=str(Path(elftools.__file__).resolve().parent.parent))
    # GCC's prefix, or for Clang the kernel's LLVM= suffix or directory.
    env["LLVM" if toolchain.compiler == "clang" else "CROSS_COMPILE"] = toolchain.prefix
    return env


@dataclass(frozen=True)
class WorkRecord:
    """What the last build in a work tree read (``work.json``)."""

    setup: str
    hashes: dict[str, str | None]          # input label -> sha256 (None: changed since)
    compile: dict[str, list[str]]          # target (relative) -> its inputs' labels
    configure: dict[str, list[str]]        # configure-time target -> its inputs' labels

    def to_json(self) -> str:
        return json.dumps({"format": _RECORD_FORMAT, "setup": self.setup, "hashes": self.hashes,
                           "compile": self.compile, "configure": self.configure}) + "\n"


def read_record(work: Path) -> WorkRecord | None:
    """The work tree's record, or None (no build yet, another format, damaged)."""
    try:
        data = json.loads((work / RECORD).read_text(encoding="utf-8"))
        if data.get("format") != _RECORD_FORMAT:
            return None
        return WorkRecord(setup=str(data["setup"]), hashes=dict(data["hashes"]),
                          compile=dict(data["compile"]), configure=dict(data["configure"]))
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Compiled:
    """What one build in a work tree did."""

    hashes: dict[str, str | None]   # every file the compile read, by label
    compiled: tuple[str, ...]       # objects compiled this time (relative to the tree)
    objects: int                    # objects in the build


def work_tree_path(work_base: Path, name: str, config: ResolvedConfig, toolchain: Toolchain,
                   kernel: KernelSource | None) -> Path:
    """``<work_base>/<name>-<hash>``: one tree per configuration, toolchain,
    lab checkout and kernel tree (by place and generation)."""
    tree = (str(kernel.tree.root), kernel.generation) if kernel else ()
    h = hashlib.sha256()
    for part in ("work tree", config.dotconfig, toolchain.prefix, toolchain.version,
                 str(source_root()), *tree):
        h.update(part.encode() + b"\0")
    return work_base / f"{config_slug(name)}-{h.hexdigest()[:12]}"


# Characters a CMake/Ninja build cannot carry in a path: a list separator,
# quotes and escapes, comment and shell characters Ninja's generator
# rejects, `$` (a variable, or `$(...)` a command, to make and Ninja), and
# what the shell running the link steps would take as its own.
_CMAKE_UNSAFE = re.compile(r'[;"\'`#$&*^\\<>|?\x00-\x1f\x7f-\x9f\ud800-\udfff]')


def check_cmake_can_carry(build: Path, tree: Path | None = None) -> None:
    """Paths CMake is given: the build directory, the checkout, a kernel
    tree; one it cannot carry is exit 2 before anything is written."""
    for what, path, fix in (("build directory", build, "give another --out DIR"),
                            ("the firmware tree", source_root(),
                             "move the checkout to a plainer path"),
                            ("--kernel-src tree", tree, "copy the tree to a plainer path")):
        if path is None:
            continue
        bad = _CMAKE_UNSAFE.search(str(path))
        if bad:
            raise HarnessError(f"{what} {ascii(str(path))[1:-1]}: CMake cannot build in a "
                               f"path holding {ascii(bad.group())}; {fix}")


def cannot_write(name: str, err: OSError) -> HarnessError:
    """A build that could not write its files, as one line."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(Path(err.filename or "."), f"the build of {name}")
    return HarnessError(f"cannot write the build of {name}: {err.filename}: {err.strerror}; "
                        "pass a writable --out DIR")


def _configure_argv(work: Path, kernel: KernelSource | None) -> list[str]:
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    return [_cmake(), "-S", str(source_root()), "-B", str(work), *generator,
            f"-DNVHE_CONFIG_DIR={work / 'config'}", f"-DPython_EXECUTABLE={sys.executable}",
            *(kernel.tree.cmake_args() if kernel else [])]


def _setup_hash(argv: list[str]) -> str:
    """The configure command, the set of lab sources and the contents of
    those that are not compiled (the CMake files, the kallsyms generator)."""
    root = source_root()
    h = hashlib.sha256("\0".join(argv).encode())
    for path in source_files(root):
        name = path.relative_to(root)
        content = "" if name.parts[0] in SOURCE_DIRS else file_hash(path)
        h.update(f"\0{name}\0{content}".encode())
    return h.hexdigest()


def _cmake() -> str:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise HarnessError("cmake is not on PATH; install it with `pip install cmake` "
                           "or `apt-get install cmake`")
    return cmake


def _build_argv(work: Path, jobs: int | None) -> list[str]:
    """Ninja itself when CMake generated for it (one process fewer per
    build: the edit loop makes nine), else ``cmake --build``."""
    parallel = str(jobs or os.cpu_count() or 1)
    ninja = shutil.which("ninja")
    if ninja is not None and (work / "build.ninja").is_file():
        return [ninja, "-C", str(work), "-j", parallel]
    return [_cmake(), "--build", str(work), "--parallel", parallel]


def _run(argv: list[str], cwd: Path, what: str, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env,
                          errors="replace")
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if os.strerror(errno.ENOSPC) in output or os.strerror(errno.EDQUOT) in output:
            raise disk_full(cwd, what)
        refused = next((why for why in _CANNOT_WRITE if why in output), None)
        if refused is not None:     # the environment's refusal, not the code's failure
            raise HarnessError(f"{what} in {cwd}: a file could not be written ({refused}); "
                               "pass a writable --out DIR with room, or raise the limit")
        tail = "\n".join(output.strip().splitlines()[-40:])
        raise BuildError(f"{what} failed in {cwd} (exit {proc.returncode}):\n{tail}")


# What a tool prints when the system refuses a write (other than a full disk).
_CANNOT_WRITE = (os.strerror(errno.EROFS), os.strerror(errno.EFBIG), "File size limit exceeded")


def disk_full(where: Path, what: str) -> HarnessError:
    """A build that ran out of disk: the harness's environment, not the code
    under test (which a BuildError, exit 1, would blame)."""
    try:
        free = f"{shutil.disk_usage(where).free / 1e6:.1f} MB free"
    except OSError:
        free = "no space left"
    return HarnessError(f"{what}: the disk holding {where} is full ({free}); free some "
                        "space, or pass --out DIR on another disk")


def _start_afresh(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    write_marker(work, work.name.rsplit("-", 1)[1])


def _invalidate(work: Path, record: WorkRecord, roots: Roots) -> bool:
    """Remove every target one of whose inputs changed since it was made;
    True when a configure-time step read one (CMake must configure again).
    The changed inputs are marked in the record first, so a build that
    stops half way still leaves them to be compiled again."""
    now = current_hashes(record.hashes, roots)
    changed = {label for label, digest in record.hashes.items()
               if digest is None or now[label] != digest}
    if not changed:
        return False
    write_atomically(work / RECORD, WorkRecord(
        record.setup, {label: None if label in changed else digest
                       for label, digest in record.hashes.items()},
        record.compile, record.configure).to_json())
    for target, labels in record.compile.items():
        if changed.intersection(labels):
            (work / target).unlink(missing_ok=True)
    return any(changed.intersection(labels) for labels in record.configure.values())


def _object_times(work: Path, targets: list[str]) -> dict[str, int]:
    times = {}
    for target in targets:
        if target.endswith(_OBJECT_SUFFIXES):
            try:
                times[target] = (work / target).stat().st_mtime_ns
            except OSError:
                pass
    return times


def _labelled(deps: dict[str, tuple[str, ...]], roots: Roots) -> dict[str, list[str]]:
    out = {}
    for target, paths in deps.items():
        labels = (roots.label(p) for p in paths)
        out[target] = sorted({label for label in labels if label is not None})
    return out


def build_in(work: Path, config: ResolvedConfig, toolchain: Toolchain,
             kernel: KernelSource | None, jobs: int | None, *, afresh: bool = False) -> Compiled:
    """Build the image in the work tree (the caller holds its lock): afresh
    when asked, when the tree has no record or its setup changed; else
    incrementally, after removing what the changed inputs made."""
    # A file written from here on has a later ctime than this once the
    # clock's tick has passed (waited out below, before the compiler
    # starts): what the compiler reads and something changes while it runs
    # is seen as changed during the build.
    started = time.time_ns()
    roots = Roots(source_root(), kernel.tree.root if kernel else None, work)
    argv = _configure_argv(work, kernel)
    setup = _setup_hash(argv)
    record = None if afresh else read_record(work)
    if record is None or record.setup != setup or not (work / "CMakeCache.txt").is_file():
        _start_afresh(work)
        record, configure = None, True
    else:
        configure = _invalidate(work, record, roots)
    os.utime(work / MARKER)                     # its last use, for the bound on trees
    before = _object_times(work, list(record.compile) if record else [])
    time.sleep(max(0, started + SETTLE_NS - time.time_ns()) / 1e9)
    env = build_environment(toolchain)
    try:
        kconfig_outputs.write_outputs(config, work / "config")
        if configure:
            if kernel:  # a tree's numbers the platform cannot host are bad input (exit 2)
                probe_kernel_numbers(kernel.tree, work / "config", compiler_argv(toolchain))
            _run(argv, work, "cmake configure", env)
    except BaseException:
        (work / RECORD).unlink(missing_ok=True)     # no CMake tree to build on: afresh
        raise
    try:
        _run(_build_argv(work, jobs), work, "firmware build", env)
    finally:
        # Also after a failed build: what did compile is known, and what did
        # not has no object, so it is compiled next time.
        hashes, targets = _record_build(work, setup, roots, started)
    after = _object_times(work, targets)
    return Compiled(hashes=hashes, objects=len(after),
                    compiled=tuple(t for t, mtime in after.items() if before.get(t) != mtime))


def _record_build(work: Path, setup: str, roots: Roots,
                  started_ns: int) -> tuple[dict[str, str | None], list[str]]:
    """Write the record of what the build just read: (every input's hash,
    every target)."""
    deps = read_build_deps(work)
    compile_labels = _labelled(deps.compile, roots)
    configure_labels = _labelled(deps.configure, roots)
    labels = {label for group in (compile_labels, configure_labels)
              for target_labels in group.values() for label in target_labels}
    hashes = {label: file_hash(roots.path(label), unchanged_since_ns=started_ns)
              for label in sorted(labels)}
    write_atomically(work / RECORD,
                     WorkRecord(setup, hashes, compile_labels, configure_labels).to_json())
    return hashes, list(compile_labels)
