"""Building the firmware for one configuration, cached.

Each configuration builds in its own directory, named after the config and
keyed by a hash of (.config, firmware sources, toolchain version): a second
build with nothing changed finds the finished image there and does no
compiler work. Concurrent builds of the same key (pytest-xdist workers, a
matrix) wait on a lock rather than racing.

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
from pyharness.build.toolchain import Toolchain, find_toolchain

STAMP = "build.json"
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


def build_digest(config: kconfig.ResolvedConfig, toolchain: Toolchain) -> str:
    """Hash of everything that decides the image's bytes.

    Remembered per process for an unchanged set of sources (by stat), so a
    worker running many scenarios of one configuration hashes it once."""
    key = (config.dotconfig, toolchain.prefix, toolchain.version, _sources_signature())
    digest = _digest_cache.get(key)
    if digest is None:
        digest = _digest_cache[key] = _hash_sources(config, toolchain)
    return digest


def _hash_sources(config: kconfig.ResolvedConfig, toolchain: Toolchain) -> str:
    root = source_root()
    h = hashlib.sha256()
    for part in (config.dotconfig, toolchain.prefix, toolchain.version):
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
             build_dir: Path, jobs: int | None, *, reconfigure: bool = True) -> None:
    kconfig_outputs.write_outputs(config, build_dir / "config")
    env = dict(os.environ, **({"LLVM": toolchain.prefix} if toolchain.compiler == "clang"
                              else {"CROSS_COMPILE": toolchain.prefix}))
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    if reconfigure or not (build_dir / "CMakeCache.txt").is_file():
        _run([_cmake(), "-S", str(source_root()), "-B", str(build_dir), *generator,
              f"-DNVHE_CONFIG_DIR={build_dir / 'config'}",
              f"-DPython_EXECUTABLE={sys.executable}"],
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


def build(config_path: Path | str, out_dir: Path | str | None = None,
          jobs: int | None = None, *, scratch: Path | None = None) -> BuildResult:
    """Build (or find cached) the image for the config file at config_path.

    ``scratch``: compile in a persistent CMake tree there (incremental)
    rather than in a fresh one in the keyed directory, then copy the image
    into the keyed directory. The caller keeps one scratch directory per
    source root, used by one process at a time, and must make every source
    it changes newer than everything built so far (Ninja goes by mtimes)."""
    started = time.monotonic()
    config = kconfig.resolve(kconfig.find_config(str(config_path)))
    if not config.enabled("KVM"):
        raise kconfig.ConfigError(
            f"{config.source}: CONFIG_KVM is not set, so there is no hypervisor "
            "to build or test; set CONFIG_KVM=y")
    toolchain = find_toolchain(clang=config.enabled("CC_IS_CLANG"))
    digest = build_digest(config, toolchain)
    base = Path(out_dir) if out_dir is not None else default_build_dir()
    build_dir = base / f"{config.name}-{digest[:12]}"
    try:
        build_dir.mkdir(parents=True, exist_ok=True)
        lock = open(base / f".{build_dir.name}.lock", "w")
    except OSError as err:
        raise HarnessError(f"cannot create the build directory {build_dir}: "
                           f"{err.strerror}; pass a writable --out DIR") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_stamp(build_dir, digest)
        if not cached:
            (build_dir / STAMP).unlink(missing_ok=True)
            if scratch is None:
                _compile(config, toolchain, build_dir, jobs)
            else:
                tree = scratch_tree(scratch, config)
                tree.mkdir(parents=True, exist_ok=True)
                _compile(config, toolchain, tree, jobs, reconfigure=False)
                shutil.copyfile(tree / "vmlinux", build_dir / "vmlinux")
            (build_dir / STAMP).write_text(json.dumps({
                "digest": digest, "config": str(config.source),
                "toolchain": toolchain.version}, indent=1) + "\n")
    return BuildResult(config=config, elf=build_dir / "vmlinux", build_dir=build_dir,
                       digest=digest, cached=cached,
                       seconds=time.monotonic() - started)
