"""A tree's own kernel, built by kbuild, cached and incremental.

``build_kernel(config, kernel_src)`` builds the kernel of a whole tree
(:mod:`pyharness.builder.kernel_tree`) for a lab configuration: ``make
O=DIR ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-`` (``LLVM=1`` for a Clang
configuration), ``allnoconfig`` with the fragment of
:mod:`pyharness.builder.kernel_config` as ``KCONFIG_ALLCONFIG``, every
option checked, then ``make Image``. The tree is never written.

The build directory, under the kernel cache (``paths.kernel_cache``), is
keyed by what kbuild cannot see for itself: the tree's place, the
fragment, the toolchain's versions and the build's environment. Inside
it kbuild is incremental (it knows every file each object read, through
its ``.cmd`` files), so an edit to one file of the tree rebuilds what
kbuild rebuilds. To skip even kbuild's walk when nothing changed, the
stamp (``pyharness-kernel.json``) records every file of the tree that the
``.cmd`` files name, with its size and mtime, and the Image's sha256: a
build whose files all stat the same and whose Image hashes the same is
used without running make.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pyharness.builder import kernel_config
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.kernel_tree import FullTree, open_full_tree
from pyharness.builder.lock import exclusive
from pyharness.builder.toolchain import Toolchain, find_toolchain
from pyharness.errors import BuildError, HarnessError, ToolchainError
from pyharness.files import sha256_of, write_atomically
from pyharness.kconfig import resolve as kconfig
from pyharness.paths import kernel_cache

BUILDS_DIR = "builds"
# How many builds of one configuration and tree the cache keeps.
KEEP_BUILDS = 3
STAMP = "pyharness-kernel.json"
FRAGMENT = "pyharness.config"
IMAGE = "arch/arm64/boot/Image"

# The environment make runs in: nothing of the caller's but PATH and TMPDIR
# (CFLAGS, KCFLAGS, KBUILD_* would change the kernel without changing the
# key), and fixed build stamps so the Image does not depend on the hour.
BUILD_ENV_KEPT = ("PATH", "TMPDIR", "HOME")
FIXED_BUILD_STAMPS = {"KBUILD_BUILD_TIMESTAMP": "pyharness", "KBUILD_BUILD_USER": "pyharness",
                      "KBUILD_BUILD_HOST": "pyharness", "KBUILD_BUILD_VERSION": "1"}

# A compiler's diagnostic: FILE:LINE[:COL]: [fatal ]error: ...
_DIAGNOSTIC = re.compile(r"^(?P<file>[^\s:][^:]*):(?P<line>\d+)(?::\d+)?: (?:fatal )?error: ")
_MAX_ERROR_LINES = 12


@dataclass(frozen=True)
class KernelBuildPlan:
    """Everything that decides a build's directory."""

    config: kconfig.ResolvedConfig
    tree: FullTree
    toolchain: Toolchain
    options: tuple[kernel_config.KernelOption, ...]
    make_args: tuple[str, ...]

    @property
    def fragment(self) -> str:
        return kernel_config.fragment_text(list(self.options))

    def key(self) -> str:
        h = hashlib.sha256()
        for part in (str(self.tree.root), self.tree.version, self.fragment,
                     self.toolchain.prefix, self.toolchain.version, *self.make_args,
                     json.dumps(FIXED_BUILD_STAMPS, sort_keys=True)):
            h.update(part.encode() + b"\0")
        return h.hexdigest()


def _clang_floor(tree: FullTree) -> str | None:
    """The tree's minimum LLVM version (scripts/min-tool-version.sh), if it says."""
    script = tree.root / "scripts" / "min-tool-version.sh"
    if not script.is_file():
        return None
    proc = subprocess.run(["sh", str(script), "llvm"], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""), "SRCARCH": "arm64",
                               "ARCH": "arm64"}, timeout=30)
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _check_clang(tree: FullTree, toolchain: Toolchain) -> None:
    floor = _clang_floor(tree)
    found = re.search(r"clang version (\d+\.\d+\.\d+)", toolchain.version)
    if floor and found and _version_tuple(found.group(1)) < _version_tuple(floor):
        raise ToolchainError(
            f"{tree.given}: Linux {tree.version} needs LLVM {floor} or newer to build with "
            f"Clang (its scripts/min-tool-version.sh), and this machine has clang "
            f"{found.group(1)}; build this tree with a GCC configuration, or put a newer "
            "LLVM on PATH (the fast path, pyharness run --kernel-src, is not bound by it)")


def plan_build(config_path: Path | str, kernel_src: str, cache: Path) -> KernelBuildPlan:
    """Resolve the configuration, the tree and the toolchain; derive the fragment."""
    config = kconfig.resolve(kconfig.find_config(str(config_path)))
    if not config.enabled("KVM"):
        raise kconfig.ConfigError(f"{config.source}: CONFIG_KVM is not set, so there is no "
                                  "hypervisor to build or test; set CONFIG_KVM=y")
    tree = open_full_tree(kernel_src, cache)
    clang = config.enabled("CC_IS_CLANG")
    toolchain = find_toolchain(clang=clang)
    if clang:
        _check_clang(tree, toolchain)
        make_args = ("LLVM=1" if toolchain.prefix in ("", "1") else f"LLVM={toolchain.prefix}",)
    else:
        make_args = (f"CROSS_COMPILE={toolchain.prefix}",)
    options = tuple(kernel_config.kernel_fragment(config, tree.root))
    return KernelBuildPlan(config=config, tree=tree, toolchain=toolchain, options=options,
                           make_args=("ARCH=arm64", *make_args))


def _environment() -> dict[str, str]:
    env = {name: os.environ[name] for name in BUILD_ENV_KEPT if name in os.environ}
    env.update(LC_ALL="C", LANG="C", **FIXED_BUILD_STAMPS)
    return env


def _make(plan: KernelBuildPlan, build_dir: Path, targets: list[str], jobs: int,
          what: str, extra: tuple[str, ...] = ()) -> None:
    make = shutil.which("make")
    if make is None:
        raise ToolchainError("`make` is not on PATH; install it with `apt-get install make`")
    argv = [make, "-C", str(plan.tree.root), f"O={build_dir}", *plan.make_args, *extra,
            f"-j{jobs}", *targets]
    proc = subprocess.run(argv, cwd=build_dir, capture_output=True, text=True,
                          env=_environment(), errors="replace")
    if proc.returncode != 0:
        raise BuildError(_failure_message(plan, what, proc.returncode,
                                          proc.stdout + proc.stderr))


def _failure_message(plan: KernelBuildPlan, what: str, code: int, output: str) -> str:
    """The compiler's own FILE:LINE lines first (made absolute in the tree),
    then make's last lines, and the configuration."""
    lines = output.strip().splitlines()
    errors = []
    for line in lines:
        match = _DIAGNOSTIC.match(line)
        if match and len(errors) < _MAX_ERROR_LINES:
            file = match.group("file")
            if not os.path.isabs(file) and (plan.tree.root / file).exists():
                line = str(plan.tree.root / file) + line[len(file):]
            errors.append(line)
    tail = [line for line in lines[-8:] if line not in errors]
    return (f"{what} of Linux {plan.tree.version} ({plan.tree.given}) for the configuration "
            f"{plan.config.name} failed (make exit {code}):\n"
            + "\n".join(errors + tail))


# -- what kbuild read ----------------------------------------------------------

def tree_files_read(build_dir: Path, tree_root: Path) -> list[str]:
    """Every file of the tree that a ``.cmd`` file of the build names (each
    object's source and headers), the Kconfig files ``auto.conf.cmd`` names
    and the top Makefiles, relative to the tree."""
    prefix = str(tree_root) + os.sep
    found: set[str] = set()
    for cmd in build_dir.rglob("*.cmd"):
        try:
            text = cmd.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for token in text.split():
            if token.startswith(prefix):
                found.add(token[len(prefix):].rstrip(":)"))
    # The Kconfig files syncconfig read, named relative to the tree.
    try:
        kconfig_cmd = (build_dir / "include/config/auto.conf.cmd").read_text(
            encoding="utf-8", errors="replace")
    except OSError:
        kconfig_cmd = ""
    found.update(token for token in kconfig_cmd.split() if "Kconfig" in token)
    found.update(("Makefile", "arch/arm64/Makefile"))
    return sorted(name for name in found if (tree_root / name).is_file())


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _write_stamp(plan: KernelBuildPlan, build_dir: Path, key: str) -> None:
    files = {}
    for name in tree_files_read(build_dir, plan.tree.root):
        try:
            files[name] = _stat_key(plan.tree.root / name)
        except OSError:
            continue
    stamp = {"key": key, "tree": str(plan.tree.root), "version": plan.tree.version,
             "config": plan.config.name, "toolchain": plan.toolchain.version,
             "image_sha256": sha256_of(build_dir / IMAGE), "files": files}
    write_atomically(build_dir / STAMP, json.dumps(stamp) + "\n")


def _up_to_date(plan: KernelBuildPlan, build_dir: Path, key: str) -> bool:
    """The build holds this key's Image and no file it read has changed."""
    try:
        stamp = json.loads((build_dir / STAMP).read_text(encoding="utf-8"))
        if stamp.get("key") != key or sha256_of(build_dir / IMAGE) != stamp.get("image_sha256"):
            return False
        for name, recorded in stamp["files"].items():
            if _stat_key(plan.tree.root / name) != recorded:
                return False
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return all((build_dir / name).is_file() for name in ("vmlinux", "System.map", ".config"))


def _build_name(plan: KernelBuildPlan) -> str:
    compiler = "-clang" if plan.config.enabled("CC_IS_CLANG") else ""
    return f"{kconfig.config_slug(plan.config.name)}-{plan.tree.label}{compiler}"


def build_dir_for(plan: KernelBuildPlan, cache: Path) -> Path:
    return cache / BUILDS_DIR / f"{_build_name(plan)}-{plan.key()[:12]}"


def _built_from(build_dir: Path, tree_root: Path) -> bool:
    """Whether the finished build in ``build_dir`` is of the tree at
    ``tree_root`` (its stamp says; a build without one is no tree's)."""
    try:
        stamp = json.loads((build_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(stamp, dict) and stamp.get("tree") == str(tree_root)


def _prune(plan: KernelBuildPlan, kept: Path) -> None:
    """After a new build, only the newest KEEP_BUILDS of this configuration
    and tree stay (a kernel build is half a gigabyte); each goes under its
    own lock, so one in use is waited for. Copies of a tree share its
    version, and so its build name: a build is this tree's by its stamp."""
    same = [d for d in kept.parent.glob(f"{_build_name(plan)}-*")
            if d.is_dir() and d != kept and len(d.name) == len(kept.name)
            and _built_from(d, plan.tree.root)]
    same.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in same[KEEP_BUILDS - 1:]:
        with exclusive(old.parent, old.name, f"the kernel build {old}"):
            if _built_from(old, plan.tree.root):
                shutil.rmtree(old, ignore_errors=True)


def _configure(plan: KernelBuildPlan, build_dir: Path, jobs: int) -> None:
    """allnoconfig with the fragment, once per build directory, then check it."""
    if not (build_dir / ".config").is_file():
        write_atomically(build_dir / FRAGMENT, plan.fragment)
        _make(plan, build_dir, ["allnoconfig"], jobs, "configuring the kernel",
              (f"KCONFIG_ALLCONFIG={build_dir / FRAGMENT}",))
    values = kernel_config.read_dotconfig((build_dir / ".config").read_text(encoding="utf-8"))
    try:
        kernel_config.check_applied(list(plan.options), values, plan.tree.given,
                                    plan.config.name)
    except HarnessError:
        (build_dir / ".config").unlink(missing_ok=True)   # configure afresh next time
        raise


def build_kernel(config_path: Path | str, kernel_src: str, out_dir: Path | str | None = None,
                 jobs: int | None = None) -> KernelImage:
    """Build (or find up to date) the kernel of ``kernel_src`` for the lab
    configuration at ``config_path``."""
    started = time.monotonic()
    if jobs is not None and jobs < 1:
        raise HarnessError(f"-j {jobs}: the number of compile jobs must be at least 1")
    cache = kernel_cache(out_dir)
    plan = plan_build(config_path, kernel_src, cache)
    key = plan.key()
    build_dir = build_dir_for(plan, cache)
    cached = _up_to_date(plan, build_dir, key)
    if not cached:
        with exclusive(build_dir.parent, build_dir.name, f"the kernel build {build_dir}"):
            cached = _up_to_date(plan, build_dir, key)
            if not cached:
                build_dir.mkdir(parents=True, exist_ok=True)
                (build_dir / STAMP).unlink(missing_ok=True)
                n = jobs or os.cpu_count() or 1
                _configure(plan, build_dir, n)
                _make(plan, build_dir, ["Image"], n, "the kernel build")
                _write_stamp(plan, build_dir, key)
        _prune(plan, build_dir)
    return KernelImage(
        image=build_dir / IMAGE, vmlinux=build_dir / "vmlinux",
        system_map=build_dir / "System.map", dotconfig=build_dir / ".config",
        version=plan.tree.version, generation=plan.tree.generation, label=plan.tree.label,
        origin="kbuild", config_name=plan.config.name,
        compiler="clang" if plan.config.enabled("CC_IS_CLANG") else "gcc",
        build_dir=build_dir, given=plan.tree.given, source_root=plan.tree.root, cached=cached,
        seconds=time.monotonic() - started)
