"""Building the firmware for one configuration, cached.

Each configuration builds in its own directory, named after the config and
keyed by a hash of (.config, firmware sources, toolchain version, and with
``kernel_src`` the kernel tree's files and place): a second build with
nothing changed finds the finished image there and does no compiler work.
A build with a kernel tree's unwinder is named for its generation
(``pkvm-linux-6.12-<hash>``). Concurrent builds of the same key
(pytest-xdist workers, a matrix) wait on a lock rather than racing. After a
real build the configuration's older trees beyond the newest few are
removed (:mod:`pyharness.builder.trees`; ``pyharness clean`` does the rest).

The stamp (``build.json``) records the image's sha256: an image damaged
since (truncated, patched) is built again, and the result says why. A
finished build is found without the lock and without writing anything, so
a shared read-only cache can be used; only a build needs write access
(``_build_lock``). The build runs in a scrubbed environment
(``build_environment``).

Many builds of one source tree that differs a file at a time (``pyharness
mutate``) may compile in a persistent CMake tree instead (``scratch``):
Ninja then recompiles only what the change touched, and the image is copied
into the keyed directory like any other.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import elftools

from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig import resolve as kconfig
from pyharness.errors import BuildError, HarnessError
from pyharness.builder.kernel_numbers import compiler_argv, probe as probe_kernel_numbers
from pyharness.builder.kernelsrc import KernelSource, KernelTree, open_source
from pyharness.files import write_atomically
from pyharness.paths import build_base, source_root
from pyharness.builder.toolchain import Toolchain, find_toolchain
from pyharness.builder.trees import STAMP, prune_after_build, write_marker

_SOURCE_GLOBS = ("csrc/**/*", "cmake/*", "CMakeLists.txt", "pyharness/builder/kallsyms_gen.py")


@dataclass(frozen=True)
class BuildResult:
    """A built image and where it came from."""

    config: kconfig.ResolvedConfig
    elf: Path
    build_dir: Path
    digest: str
    cached: bool
    seconds: float
    kernel: KernelSource | None = None   # None: the lab's own unwinder
    # Why a build directory that held a finished build was built again.
    rebuilt_because: str | None = None

    @property
    def unwinder(self) -> str:
        """What the image carries: ``lab`` or ``linux-<generation>``."""
        return "lab" if self.kernel is None else self.kernel.unwinder

    @property
    def compile_commands(self) -> Path:
        """CMake's compile database, with the kernel tree's files when there is one."""
        return self.build_dir / "compile_commands.json"


def source_files() -> list[Path]:
    root = source_root()
    files = {p for pattern in _SOURCE_GLOBS for p in root.glob(pattern) if p.is_file()}
    return sorted(files)


def _sources_signature() -> tuple[tuple[str, int, int], ...]:
    """(path, mtime_ns, size) of every source: cheap to take, and changes
    whenever a source does."""
    out = []
    for path in source_files():
        st = path.stat()
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


_digest_cache: dict[tuple[object, ...], str] = {}


def build_digest(config: kconfig.ResolvedConfig, toolchain: Toolchain,
                 tree: KernelTree | None = None) -> str:
    """Hash of everything that decides the build: the image's bytes, and with
    a kernel tree also where it is (the compile database names its files).

    Remembered per process for an unchanged set of sources (by stat), so a
    worker running many scenarios of one configuration hashes it once. A
    tree's files are hashed every time: an edit must rebuild."""
    kernel = () if tree is None else (str(tree.root), tree.digest())
    key = (config.dotconfig, toolchain.prefix, toolchain.version, *kernel,
           _sources_signature())
    digest = _digest_cache.get(key)
    if digest is None:
        digest = _digest_cache[key] = _hash_sources(config, toolchain, kernel)
    return digest


def _hash_sources(config: kconfig.ResolvedConfig, toolchain: Toolchain,
                  kernel: tuple[str, ...]) -> str:
    root = source_root()
    h = hashlib.sha256()
    for part in (config.dotconfig, toolchain.prefix, toolchain.version, *kernel):
        h.update(part.encode())
        h.update(b"\0")
    for path in source_files():
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _cmake() -> str:
    cmake = shutil.which("cmake")
    if cmake is None:
        raise HarnessError("cmake is not on PATH; install it with `pip install cmake` "
                           "or `apt-get install cmake`")
    return cmake


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


def _run(argv: list[str], cwd: Path, what: str, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BuildError(f"{what} failed in {cwd} (exit {proc.returncode}):\n{tail}")


def _compile(config: kconfig.ResolvedConfig, toolchain: Toolchain,
             build_dir: Path, jobs: int | None, kernel: KernelSource | None, *,
             reconfigure: bool = True) -> None:
    kconfig_outputs.write_outputs(config, build_dir / "config")
    if kernel:  # a tree's numbers the platform cannot host are bad input (exit 2)
        probe_kernel_numbers(kernel.tree, build_dir / "config", compiler_argv(toolchain))
    env = build_environment(toolchain)
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    if reconfigure or not (build_dir / "CMakeCache.txt").is_file():
        _run([_cmake(), "-S", str(source_root()), "-B", str(build_dir), *generator,
              f"-DNVHE_CONFIG_DIR={build_dir / 'config'}",
              f"-DPython_EXECUTABLE={sys.executable}",
              *(kernel.tree.cmake_args() if kernel else [])],
             build_dir, "cmake configure", env)
    _run([_cmake(), "--build", str(build_dir), "--parallel", str(jobs or os.cpu_count() or 1)],
         build_dir, "firmware build", env)


# Characters a CMake/Ninja build cannot carry in a path: a list separator,
# quotes and escapes, comment and shell characters Ninja's generator rejects.
_CMAKE_UNSAFE = re.compile(r'[;"#\\<>|?\x00-\x1f\x7f-\x9f\ud800-\udfff]')


def build_dir_name(config_name: str, digest: str) -> str:
    """``<slug>-<digest[:12]>``: no config name can reach outside the base
    directory or break the CMake files that carry it."""
    return f"{kconfig.config_slug(config_name)}-{digest[:12]}"


def _check_cmake_can_carry(build_dir: Path) -> None:
    for what, path, fix in (("build directory", build_dir.parent, "give another --out DIR"),
                            ("the firmware tree", source_root(),
                             "move the checkout to a plainer path")):
        bad = _CMAKE_UNSAFE.search(str(path))
        if bad:
            raise HarnessError(f"{what} {ascii(str(path))[1:-1]}: CMake cannot build in a "
                               f"path holding {ascii(bad.group())}; {fix}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_built(build_dir: Path, digest: str) -> tuple[bool, str | None]:
    """(finished, problem): whether the build directory holds the finished
    image of ``digest``, checked against the sha256 its stamp recorded; the
    problem says why not when a stamp is there but its image is not right.
    Reads only, takes no lock: stamps are replaced atomically."""
    try:
        stamp = json.loads((build_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False, None
    if not isinstance(stamp, dict) or stamp.get("digest") != digest:
        return False, None
    recorded = stamp.get("sha256")
    if not isinstance(recorded, str):
        return False, "its stamp records no sha256 of the image (an older pyharness)"
    try:
        actual = _sha256(build_dir / "vmlinux")
    except OSError as err:
        return False, f"the cached vmlinux cannot be read ({err.strerror})"
    if actual != recorded:
        return False, "the cached vmlinux does not match the sha256 recorded when it was built"
    return True, None


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)


@contextmanager
def _build_lock(config: kconfig.ResolvedConfig, build_dir: Path) -> Iterator[None]:
    """Exclusive use of ``build_dir`` for a build: the one place a build
    needs write access to the base directory."""
    base = build_dir.parent
    try:
        base.mkdir(parents=True, exist_ok=True)
        fd = _open_lock(base / f".{build_dir.name}.lock")
    except OSError as err:
        raise HarnessError(f"cannot build {config.name} in {base}: the directory is not "
                           f"writable ({err.strerror}) and holds no finished build of it; "
                           "pass a writable --out DIR") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fresh_build(config: kconfig.ResolvedConfig, toolchain: Toolchain, build_dir: Path,
                 digest: str, jobs: int | None, kernel: KernelSource | None,
                 scratch: Path | None = None) -> None:
    """Build from an empty directory: nothing of an earlier, unfinished or
    damaged build (objects, a stale CMakeCache.txt) is reused. With
    ``scratch``, compile incrementally in its persistent tree for this
    configuration and copy the image in."""
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    write_marker(build_dir, digest)
    if scratch is None:
        _compile(config, toolchain, build_dir, jobs, kernel)
    else:
        tree = scratch_tree(scratch, config)
        tree.mkdir(parents=True, exist_ok=True)
        _compile(config, toolchain, tree, jobs, kernel, reconfigure=False)
        shutil.copyfile(tree / "vmlinux", build_dir / "vmlinux")
    stamp = {"digest": digest, "config": str(config.source), "toolchain": toolchain.version,
             "sha256": _sha256(build_dir / "vmlinux")}
    if kernel:
        stamp.update(kernel_src=kernel.given, kernel_tree=str(kernel.tree.root),
                     kernel_version=kernel.tree.version, unwinder=kernel.unwinder)
    write_atomically(build_dir / STAMP, json.dumps(stamp, indent=1) + "\n")


def scratch_tree(scratch: Path, config: kconfig.ResolvedConfig) -> Path:
    """The persistent CMake tree under ``scratch`` for this configuration
    (and this source root: one scratch directory must serve one root)."""
    return scratch / build_dir_name(config.name, hashlib.sha256(config.dotconfig.encode()).hexdigest())


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

    ``scratch``: compile in a persistent CMake tree there (incremental)
    rather than in a fresh one in the keyed directory, then copy the image
    into the keyed directory. The caller keeps one scratch directory per
    source root (and kernel tree), used by one process at a time, and must
    make every source it changes newer than everything built so far (Ninja
    goes by mtimes)."""
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
    kernel = open_source(kernel_src, base)
    digest = build_digest(config, toolchain, kernel.tree if kernel else None)
    unwinder = f"-{kernel.unwinder}" if kernel else ""
    build_dir = base / build_dir_name(f"{config.name}{unwinder}", digest)
    _check_cmake_can_carry(build_dir)
    cached, problem = _check_built(build_dir, digest)
    rebuilt_because = None
    if cached:
        _touch(build_dir / STAMP)            # its last use, for `pyharness clean`
    else:
        with _build_lock(config, build_dir):
            cached, again = _check_built(build_dir, digest)  # another process built it?
            if not cached:
                rebuilt_because = problem or again
                _fresh_build(config, toolchain, build_dir, digest, jobs, kernel, scratch)
        if not cached:
            prune_after_build(base, f"{config.name}{unwinder}", build_dir)
    return BuildResult(config=config, elf=build_dir / "vmlinux", build_dir=build_dir,
                       digest=digest, cached=cached, seconds=time.monotonic() - started,
                       kernel=kernel, rebuilt_because=rebuilt_because)
