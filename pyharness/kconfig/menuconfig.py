"""``pyharness menuconfig``: kconfiglib's terminal menuconfig on one file."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from pyharness.kconfig import resolve as kconfig
from pyharness.errors import HarnessError
from pyharness.files import write_atomically


def _save(kconf_path: Path, target: Path) -> None:
    """Write back what menuconfig saved: minimal for *_defconfig files. The
    file is replaced in one step: a failed write leaves the old one whole."""
    if target.name.endswith("_defconfig"):
        write_atomically(target, kconfig.savedefconfig(kconf_path))
    else:
        write_atomically(target, kconfig.resolve(kconf_path).dotconfig)


def run_menuconfig(target: Path) -> bool:
    """Edit ``target`` interactively; True if a changed config was saved.

    A missing target starts from Kconfig's defaults. The file is checked
    first, so a bad one is reported before the screen is taken over.
    """
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        raise HarnessError("menuconfig needs a terminal; run it in an interactive "
                           "shell (or edit the file and check it with `pyharness build`)")
    try:
        import menuconfig as kconfiglib_menuconfig
    except ImportError as err:  # curses missing from this Python
        raise HarnessError(f"menuconfig is unavailable: {err}; install a Python "
                           "with the curses module") from None

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / ".config"
        if target.exists():
            work.write_text(kconfig.resolve(target).dotconfig, encoding="utf-8")
        before = work.read_text(encoding="utf-8") if work.exists() else None
        kconf = kconfig.load_kconfig()
        saved_env = os.environ.get("KCONFIG_CONFIG")
        os.environ["KCONFIG_CONFIG"] = str(work)
        try:
            kconfiglib_menuconfig.menuconfig(kconf)
        finally:
            if saved_env is None:
                os.environ.pop("KCONFIG_CONFIG", None)
            else:
                os.environ["KCONFIG_CONFIG"] = saved_env
        if not work.exists() or work.read_text(encoding="utf-8") == before:
            return False
        _save(work, target)
        return True
