"""Finding the aarch64 cross toolchain: GCC (``$CROSS_COMPILE`` or
aarch64-linux-gnu-) or, for ``CONFIG_CC_IS_CLANG``, Clang with ld.lld and
llvm-objcopy (``$LLVM`` as in the kernel: ``-14`` a suffix, ``/dir/`` a
prefix)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

from pyharness.errors import ToolchainError

DEFAULT_PREFIX = "aarch64-linux-gnu-"
INSTALL_HINT = ("install it with `apt-get install gcc-aarch64-linux-gnu` "
                "(Debian/Ubuntu), or set CROSS_COMPILE to the prefix of an "
                "aarch64 GCC toolchain (for example CROSS_COMPILE=aarch64-none-elf-)")
CLANG_INSTALL_HINT = ("install it with `apt-get install clang lld llvm` (Debian/Ubuntu), "
                      "or set LLVM to the suffix (LLVM=-14) or directory (LLVM=/opt/llvm/bin/) "
                      "of an LLVM toolchain")


@dataclass(frozen=True)
class Toolchain:
    """The cross tools a build uses, and the versions that key its cache."""

    prefix: str
    gcc: str            # the C compiler: gcc, or clang for CONFIG_CC_IS_CLANG
    version: str
    compiler: str = "gcc"

    def tool(self, name: str) -> str:
        """Full path of ``<prefix><name>`` (nm, addr2line, objdump...)."""
        path = shutil.which(self.prefix + name)
        if path is None:
            raise ToolchainError(f"`{self.prefix}{name}` is not on PATH; {INSTALL_HINT}")
        return path


def cross_prefix() -> str:
    return os.environ.get("CROSS_COMPILE") or DEFAULT_PREFIX


def _first_line(argv: list[str], hint: str = INSTALL_HINT) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise ToolchainError(f"`{' '.join(argv)}` failed ({err}); {hint}") from None
    return out.splitlines()[0] if out else ""


@lru_cache(maxsize=None)
def _find(prefix: str, path_env: str) -> Toolchain:
    gcc = shutil.which(prefix + "gcc", path=path_env)
    if gcc is None:
        raise ToolchainError(
            f"no aarch64 cross compiler: `{prefix}gcc` is not on PATH; {INSTALL_HINT}")
    for name in ("ld", "objcopy"):
        if shutil.which(prefix + name, path=path_env) is None:
            raise ToolchainError(
                f"`{prefix}{name}` is missing next to `{prefix}gcc`; {INSTALL_HINT}")
    version = " | ".join((_first_line([gcc, "--version"]),
                          _first_line([prefix + "ld", "--version"])))
    return Toolchain(prefix=prefix, gcc=gcc, version=version)


@lru_cache(maxsize=None)
def _find_clang(llvm: str, path_env: str) -> Toolchain:
    prefix, suffix = (llvm, "") if llvm.endswith("/") else ("", llvm if llvm.startswith("-") else "")
    tools = {name: shutil.which(f"{prefix}{name}{suffix}", path=path_env)
             for name in ("clang", "ld.lld", "llvm-objcopy")}
    missing = [f"{prefix}{name}{suffix}" for name, path in tools.items() if path is None]
    if missing:
        raise ToolchainError(f"CONFIG_CC_IS_CLANG: `{'`, `'.join(missing)}` not on PATH; "
                             f"{CLANG_INSTALL_HINT}")
    version = " | ".join(_first_line([tools[name], "--version"], CLANG_INSTALL_HINT)
                         for name in ("clang", "ld.lld"))   # llvm-objcopy's names no version
    return Toolchain(prefix=llvm, gcc=str(tools["clang"]), version=f"clang: {version}",
                     compiler="clang")


def find_toolchain(clang: bool = False) -> Toolchain:
    """The toolchain to build with (GCC, or Clang/LLVM when ``clang``), or a
    ToolchainError saying how to get one."""
    if clang:
        return _find_clang(os.environ.get("LLVM", ""), os.environ.get("PATH", ""))
    return _find(cross_prefix(), os.environ.get("PATH", ""))
