"""file:line of a real kernel's frames, from its vmlinux's DWARF, by
binutils' ``addr2line``.

A real kernel's vmlinux is tens of megabytes of DWARF; parsing its line
table with pyelftools (as :mod:`pyharness.elf.dwarf` does for the lab's
small images) would cost seconds per build, while ``addr2line`` answers a
handful of addresses in under 0.1 s. A frame's address is a return
address, so the call is the instruction before it: the line asked for is
``address - 1``'s, as ``%pB`` does. Paths under the tree a kernel was built
from are given relative to it (``arch/arm64/kvm/hyp/nvhe/hyp-main.c:320``),
the way the kernel's own messages name them; for a user's own tree the
tree's path is in front, so the location opens in an editor as it is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterable

from pyharness.builder.toolchain import find_toolchain
from pyharness.errors import HarnessError


def call_sites(vmlinux: Path, return_addresses: Iterable[int],
               tree: Path | None = None, keep_tree_path: bool = False) -> dict[int, str]:
    """``{return address: "file:line"}`` of each call, for the addresses
    addr2line knows (none, quietly, when it or the DWARF is missing)."""
    addresses = sorted(set(return_addresses))
    if not addresses:
        return {}
    try:
        addr2line = find_toolchain().tool("addr2line")
    except HarnessError:
        return {}
    try:
        proc = subprocess.run([addr2line, "-e", str(vmlinux),
                               *(f"{a - 1:#x}" for a in addresses)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return {}
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != len(addresses):
        return {}
    prefix = f"{tree}/" if tree is not None and not keep_tree_path else None
    found = {}
    for address, line in zip(addresses, lines):
        line = line.split(" (discriminator", 1)[0].strip()
        if line.startswith("??") or line.endswith(":0") or line.endswith(":?"):
            continue
        found[address] = line.removeprefix(prefix) if prefix else line
    return found
