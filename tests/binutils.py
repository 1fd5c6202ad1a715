"""What binutils says about an ELF: the independent side of the symbol tests."""

from __future__ import annotations

import functools
import subprocess

from pyharness.builder.toolchain import cross_prefix


@functools.lru_cache(maxsize=None)
def nm_functions(elf: str) -> dict[str, tuple[int, int]]:
    """name -> (address, st_size) of every sized text symbol, from nm -S."""
    out = subprocess.run([cross_prefix() + "nm", "-S", elf], capture_output=True,
                         text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTwW":
            table[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    return table


def _kallsyms_name(name: str) -> bool:
    bare = name.removeprefix("__kvm_nvhe_")
    return bool(bare) and not bare.startswith(("$", ".L"))


@functools.lru_cache(maxsize=None)
def nm_kallsyms(elf: str) -> dict[str, tuple[int, int]]:
    """name -> (address, size) by the kernel's kallsyms rule, from nm -n -S:
    the code symbols between _text and _etext (mapping symbols and local
    labels dropped), one per address (a sized one, then a global, then the
    smaller name), each as long as the distance to the next, the last to
    _etext."""
    out = subprocess.run([cross_prefix() + "nm", "-n", "-S", elf], capture_output=True,
                         text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    ends = {r[-1]: int(r[0], 16) for r in rows if r[-1] in ("_text", "_etext")}
    best: dict[int, tuple[bool, bool, str]] = {}
    for r in rows:
        address, kind, name = int(r[0], 16), r[-2], r[-1]
        if kind not in "tTwW" or not ends["_text"] <= address < ends["_etext"]:
            continue
        if not _kallsyms_name(name):
            continue
        key = (len(r) != 4, kind.islower(), name)
        if address not in best or key < best[address]:
            best[address] = key
    starts = sorted(best)
    table = {}
    for address, end in zip(starts, starts[1:] + [ends["_etext"]]):
        table[best[address][2]] = (address, end - address)
    return table


@functools.lru_cache(maxsize=None)
def addr2line_function(elf: str, address: int) -> str:
    """The function containing ``address``: with -i, addr2line lists the
    inlined calls innermost first, so the real function is the last one."""
    out = subprocess.run([cross_prefix() + "addr2line", "-f", "-i", "-e", elf,
                          f"{address:#x}"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[-2]
