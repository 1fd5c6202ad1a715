"""Where the firmware tree (Kconfig, configs/, csrc/, CMake files) lives."""

from __future__ import annotations

import os
from pathlib import Path

from pyharness.errors import HarnessError

_PACKAGE_DIR = Path(__file__).resolve().parent


def source_root() -> Path:
    """The directory holding Kconfig, CMakeLists.txt, csrc/ and configs/.

    ``$NVHE_LAB_ROOT`` wins; otherwise the checkout this package sits in.
    """
    override = os.environ.get("NVHE_LAB_ROOT")
    candidates = [Path(override)] if override else []
    candidates.append(_PACKAGE_DIR.parent)
    for root in candidates:
        if (root / "Kconfig").is_file() and (root / "csrc").is_dir():
            return root.resolve()
    raise HarnessError(
        f"cannot find the firmware tree (Kconfig, csrc/) next to {_PACKAGE_DIR}; "
        "run pyharness from a checkout installed with `pip install -e .`, "
        "or set NVHE_LAB_ROOT to the checkout")


def kconfig_file() -> Path:
    return source_root() / "Kconfig"


def configs_dir() -> Path:
    return source_root() / "configs"


def build_base(out_dir: Path | str | None) -> Path:
    """The absolute base directory of the build trees: ``out_dir`` (the
    ``--out`` option), else ``$PYHARNESS_BUILD_DIR``, else ``<root>/build``.

    A relative directory is taken from the current directory, once, here:
    the build itself runs CMake in other directories. An empty ``--out``
    is refused rather than taken as the current directory."""
    if isinstance(out_dir, str) and not out_dir:
        raise HarnessError('--out "": the build directory is empty; give a directory '
                           "(for example --out build)")
    chosen = out_dir if out_dir is not None else os.environ.get("PYHARNESS_BUILD_DIR")
    base = Path(chosen) if chosen else source_root() / "build"
    try:
        return base.resolve()
    except (OSError, RuntimeError) as err:   # RuntimeError: a symlink loop
        raise HarnessError(f"build directory {base}: cannot resolve it ({err}); "
                           "give another --out DIR") from None


# Real kernels (pyharness qemu) take minutes to build, so they live outside
# any checkout, where a second clone, CI and `pyharness clean` leave them.
KERNEL_CACHE_ENV = "PYHARNESS_KERNEL_CACHE"


def kernel_cache(out_dir: Path | str | None = None) -> Path:
    """The absolute directory of real-kernel trees and builds: ``out_dir``
    (``pyharness qemu --out``), else ``$PYHARNESS_KERNEL_CACHE``, else
    ``$XDG_CACHE_HOME/pyharness/kernels`` (``~/.cache/pyharness/kernels``)."""
    if isinstance(out_dir, str) and not out_dir:
        raise HarnessError('--out "": the kernel cache directory is empty; give a directory')
    chosen = out_dir if out_dir is not None else os.environ.get(KERNEL_CACHE_ENV)
    if chosen:
        base = Path(chosen).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "pyharness" / "kernels"
    try:
        return base.resolve()
    except (OSError, RuntimeError) as err:
        raise HarnessError(f"kernel cache {base}: cannot resolve it ({err}); "
                           "give another --out DIR") from None
