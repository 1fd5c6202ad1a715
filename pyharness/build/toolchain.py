"""Finding the aarch64 cross toolchain (``$CROSS_COMPILE`` or aarch64-linux-gnu-)."""

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


@dataclass(frozen=True)
class Toolchain:
    """The cross tools a build uses, and the versions that key its cache."""

    prefix: str
    gcc: str
    version: str

    def tool(self, name: str) -> str:
        """Full path of ``<prefix><name>`` (nm, addr2line, objdump...)."""
        path = shutil.which(self.prefix + name)
        if path is None:
            raise ToolchainError(f"`{self.prefix}{name}` is not on PATH; {INSTALL_HINT}")
        return path


def cross_prefix() -> str:
    return os.environ.get("CROSS_COMPILE") or DEFAULT_PREFIX


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as err:
        raise ToolchainError(f"`{' '.join(argv)}` failed ({err}); {INSTALL_HINT}") from None
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


def find_toolchain() -> Toolchain:
    """The toolchain to build with, or a ToolchainError saying how to get one."""
    return _find(cross_prefix(), os.environ.get("PATH", ""))
