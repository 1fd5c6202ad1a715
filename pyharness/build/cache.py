"""Building the firmware for one configuration, cached.

Each configuration builds in its own directory, named after the config and
keyed by a hash of (.config, firmware sources, toolchain version, and with
``kernel_src`` the kernel tree's files and place): a second build with
nothing changed finds the finished image there and does no compiler work.
A build with a kernel tree's unwinder is named for its generation
(``pkvm-linux-6.12-<hash>``). Concurrent builds of the same key
(pytest-xdist workers, a matrix) wait on a lock rather than racing. After a
real build the configuration's older trees beyond the newest few are
removed (:mod:`pyharness.build.trees`; ``pyharness clean`` does the rest).

Many builds of one source tree that differs a file at a time (``pyharness
mutate``) may compile in a persistent CMake tree instead (``scratch``):
Ninja then recompiles only what the change touched, and the image is copied
into the keyed directory like any other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig import resolve as kconfig
from pyharness.errors import BuildError, HarnessError
from pyharness.paths import default_build_dir, source_root
from pyharness.build.lock import exclusive
from pyharness.build.kernelsrc import KernelSource, KernelTree, open_source
from pyharness.build.toolchain import Toolchain, find_toolchain
from pyharness.build.trees import STAMP, prune_after_build, write_marker

_SOURCE_GLOBS = ("csrc/**/*", "cmake/*", "CMakeLists.txt", "pyharness/build/kallsyms_gen.py")


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


def _run(argv: list[str], cwd: Path, what: str, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise BuildError(f"{what} failed in {cwd} (exit {proc.returncode}):\n{tail}")


def _compile(config: kconfig.ResolvedConfig, toolchain: Toolchain,
             build_dir: Path, jobs: int | None, kernel: KernelSource | None, *,
             reconfigure: bool = True) -> None:
    kconfig_outputs.write_outputs(config, build_dir / "config")
    env = dict(os.environ, **({"LLVM": toolchain.prefix} if toolchain.compiler == "clang"
                              else {"CROSS_COMPILE": toolchain.prefix}))
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    if reconfigure or not (build_dir / "CMakeCache.txt").is_file():
        _run([_cmake(), "-S", str(source_root()), "-B", str(build_dir), *generator,
              f"-DNVHE_CONFIG_DIR={build_dir / 'config'}",
              f"-DPython_EXECUTABLE={sys.executable}",
              *(kernel.tree.cmake_args() if kernel else [])],
             build_dir, "cmake configure", env)
    _run([_cmake(), "--build", str(build_dir), "--parallel", str(jobs or os.cpu_count() or 1)],
         build_dir, "firmware build", env)


def _read_stamp(build_dir: Path, digest: str) -> bool:
    try:
        stamp = json.loads((build_dir / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp.get("digest") == digest and (build_dir / "vmlinux").is_file()


def scratch_tree(scratch: Path, config: kconfig.ResolvedConfig) -> Path:
    """The persistent CMake tree under ``scratch`` for this configuration
    (and this source root: one scratch directory must serve one root)."""
    return scratch / f"{config.name}-{hashlib.sha256(config.dotconfig.encode()).hexdigest()[:12]}"


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
    toolchain = find_toolchain(clang=config.enabled("CC_IS_CLANG"))
    base = Path(out_dir) if out_dir is not None else default_build_dir()
    kernel = open_source(kernel_src, base)
    digest = build_digest(config, toolchain, kernel.tree if kernel else None)
    unwinder = f"-{kernel.unwinder}" if kernel else ""
    build_dir = base / f"{config.name}{unwinder}-{digest[:12]}"
    with exclusive(base, build_dir.name, f"the build directory {build_dir}"):
        build_dir.mkdir(exist_ok=True)
        cached = _read_stamp(build_dir, digest)
        if cached:
            _touch(build_dir / STAMP)        # its last use, for `pyharness clean`
        else:
            build_dir.mkdir(exist_ok=True)
            write_marker(build_dir, digest)
            (build_dir / STAMP).unlink(missing_ok=True)
            if scratch is None:
                _compile(config, toolchain, build_dir, jobs, kernel)
            else:
                tree = scratch_tree(scratch, config)
                tree.mkdir(parents=True, exist_ok=True)
                _compile(config, toolchain, tree, jobs, kernel, reconfigure=False)
                shutil.copyfile(tree / "vmlinux", build_dir / "vmlinux")
            stamp = {"digest": digest, "config": str(config.source),
                     "toolchain": toolchain.version}
            if kernel:
                stamp.update(kernel_src=kernel.given, kernel_tree=str(kernel.tree.root),
                             kernel_version=kernel.tree.version, unwinder=kernel.unwinder)
            (build_dir / STAMP).write_text(json.dumps(stamp, indent=1) + "\n")
    if not cached:
        prune_after_build(base, f"{config.name}{unwinder}", build_dir)
    return BuildResult(config=config, elf=build_dir / "vmlinux", build_dir=build_dir,
                       digest=digest, cached=cached,
                       seconds=time.monotonic() - started, kernel=kernel)
