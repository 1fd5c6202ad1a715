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
            return root
    raise HarnessError(
        f"cannot find the firmware tree (Kconfig, csrc/) next to {_PACKAGE_DIR}; "
        "run pyharness from a checkout installed with `pip install -e .`, "
        "or set NVHE_LAB_ROOT to the checkout")


def kconfig_file() -> Path:
    return source_root() / "Kconfig"


def configs_dir() -> Path:
    return source_root() / "configs"


def default_build_dir() -> Path:
    """Build trees go under ``$PYHARNESS_BUILD_DIR`` or ``<root>/build``."""
    override = os.environ.get("PYHARNESS_BUILD_DIR")
    return Path(override) if override else source_root() / "build"
