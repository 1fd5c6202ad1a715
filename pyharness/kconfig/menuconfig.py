"""``pyharness menuconfig``: kconfiglib's terminal menuconfig on one file.

menuconfig names, loads and saves the file ``$KCONFIG_CONFIG`` says, so
that is the user's file: its save dialog, its quit prompt and its messages
show the user's path. What it loads is the file resolved first (checked,
every symbol written out, so a minimal defconfig is not "outdated" before
any change), and what it saves goes through :class:`_UserFileKconfig`:
a ``*_defconfig`` in minimal (savedefconfig) form, any other file as a
full resolved ``.config``.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

import kconfiglib

from pyharness.errors import HarnessError
from pyharness.files import write_atomically
from pyharness.kconfig import resolve as kconfig
from pyharness.paths import kconfig_file


def saved_form(full_config: Path, target: Path) -> str:
    """What to write to ``target`` for a full .config: minimal for *_defconfig files."""
    if target.name.endswith("_defconfig"):
        return kconfig.savedefconfig(full_config)
    return kconfig.resolve(full_config).dotconfig


def save(full_config: Path, target: Path) -> None:
    """Write ``target`` in its saved form, in one step: a failed write
    (a full disk) leaves the old file whole."""
    write_atomically(target, saved_form(full_config, target))


class _UserFileKconfig(kconfiglib.Kconfig):
    """The Kconfig tree, loading the resolved work file and saving the user's
    files in their own form."""

    def __init__(self, work: Path, target: Path) -> None:
        super().__init__(str(kconfig_file()), warn_to_stderr=False)
        self.warn_assign_undef = self.warn_assign_override = self.warn_assign_redun = False
        self.work, self.target = work, target
        self.saved: list[Path] = []

    def load_config(self, filename=None, replace=True, verbose=None):  # type: ignore[override]
        if filename is not None or not self.work.exists():
            return super().load_config(filename, replace)
        super().load_config(str(self.work), replace)
        return f"Loaded configuration '{self.target}'"

    def write_config(self, filename=None, header=None, save_old=True,  # type: ignore[override]
                     verbose=None):
        path = Path(filename) if filename is not None else self.target
        with tempfile.TemporaryDirectory() as tmp:
            full = Path(tmp) / ".config"
            # No `verbose`: kconfiglib prints a deprecation note for any
            # value of it, straight onto the curses screen.
            super().write_config(str(full), header="", save_old=False)
            try:
                save(full, path)
            except HarnessError as err:
                raise OSError(errno.EINVAL, str(err), str(path)) from None
        self.saved.append(path)
        form = " (minimal form)" if path.name.endswith("_defconfig") else ""
        return f"Configuration saved to '{path}'{form}"


def run_menuconfig(target: Path) -> list[Path]:
    """Edit ``target`` interactively; the files the user saved (none: no change).

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
        kconf = _UserFileKconfig(work, target)
        saved_env = os.environ.get("KCONFIG_CONFIG")
        os.environ["KCONFIG_CONFIG"] = str(target)
        try:
            kconfiglib_menuconfig.menuconfig(kconf)
        finally:
            if saved_env is None:
                os.environ.pop("KCONFIG_CONFIG", None)
            else:
                os.environ["KCONFIG_CONFIG"] = saved_env
        return list(dict.fromkeys(kconf.saved))
