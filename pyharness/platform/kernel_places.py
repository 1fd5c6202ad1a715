"""Where a real kernel's stopped CPUs were, in words: each pc and the calls
its frame records name, as ``0xADDR (symbol+off/size) at file:line``, the
shape of the lab's runaway reason (platform/runaway.py, ``where``).

The CPUs are read through QEMU's monitor (platform/qemu_monitor.py), which
gives each address's offset in the Image; ``_text`` plus it is the
address in vmlinux whatever the KASLR offset. Symbols follow the kernel's
own kallsyms rule (``%pS``, from System.map: elf/system_map.py), file:line
comes from vmlinux's DWARF by addr2line (elf/kernel_lines.py), relative to
the tree it was built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyharness.builder.kernel_image import KernelImage
from pyharness.elf.kernel_lines import call_sites
from pyharness.elf.system_map import SystemMap
from pyharness.platform.qemu_monitor import (MONITOR_TIMEOUT_S, CodeAddress, CpuState,
                                             StoppedCpus)

# A call's return address is the instruction after it.
CALL_SIZE = 4


@dataclass(frozen=True)
class KernelNames:
    """What names a real kernel's code addresses."""

    system_map: SystemMap
    vmlinux: Path
    tree: Path | None           # file:line relative to it (None: as DWARF has it)
    keep_tree_path: bool        # a user's own tree: its path stays in front
    va_bits: int                # where a signed return address's PAC begins


@dataclass(frozen=True)
class RunawayMonitor:
    """A boot's monitor, read before a runaway is killed: the socket goes in
    ``scratch`` (the boot's own directory), the addresses are named by
    ``names``, and the whole read takes at most ``timeout_s``."""

    scratch: Path
    names: KernelNames
    timeout_s: float = MONITOR_TIMEOUT_S


def kernel_names(kernel: KernelImage, system_map: SystemMap) -> KernelNames:
    return KernelNames(system_map=system_map, vmlinux=kernel.vmlinux,
                       tree=kernel.source_root, keep_tree_path=Path(kernel.given).is_dir(),
                       va_bits=int(kernel.options.get("ARM64_VA_BITS", "48")))


def where_cpus_were(stopped: StoppedCpus, names: KernelNames) -> str:
    """``the CPU was at PLACE, called from PLACE, ...`` (one CPU, all read) or
    ``CPU 0 was at ...; CPU 1 was at ...``; what the monitor could not tell
    is said after them (``; then ...``), or instead when it told nothing."""
    if not stopped.cpus:
        return f"where the CPU was is unknown: {stopped.problem}"
    text = names.system_map.text
    pcs = [text + cpu.pc.image_offset for cpu in stopped.cpus
           if cpu.pc.image_offset is not None]
    chains = [_callers(cpu, names.system_map) for cpu in stopped.cpus]
    returns = [text + r.image_offset for chain in chains for r in chain
               if r.image_offset is not None]
    # call_sites asks for the line before each address: a pc's own is pc + 1's.
    lines = call_sites(names.vmlinux, [pc + 1 for pc in pcs] + returns, names.tree,
                       keep_tree_path=names.keep_tree_path)
    places = [_cpu_where(cpu, chain, names.system_map, lines)
              for cpu, chain in zip(stopped.cpus, chains)]
    if len(places) == 1 and not stopped.problem:
        said = f"the CPU was at {places[0]}"
    else:
        said = "; ".join(f"CPU {cpu.index} was at {place}"
                         for cpu, place in zip(stopped.cpus, places))
    return said + (f"; then {stopped.problem}" if stopped.problem else "")


def kaslr_offset(stopped: StoppedCpus, system_map: SystemMap) -> int | None:
    """The kernel's KASLR offset, from a CPU stopped in the kernel at EL1:
    its pc's runtime address less the vmlinux address of the same byte of
    the Image (``_text`` + its offset there); None when no CPU tells. (The
    console's ``Kernel Offset`` line comes from a panic a runaway never
    reaches.)"""
    for cpu in stopped.cpus:
        if cpu.el == 1 and cpu.pc.image_offset is not None:
            return cpu.pc.runtime - (system_map.text + cpu.pc.image_offset)
    return None


def _callers(cpu: CpuState, system_map: SystemMap) -> list[CodeAddress]:
    """The return addresses to name: the frame records', after x30 when it
    is a caller they lack. A leaf function (or one still in its prologue)
    made no frame record, so x30 holds its caller's return address; a
    function past its prologue holds its own in its record (x30 the same,
    or a return into itself from a call it made: then x30 is left out)."""
    lr = cpu.link_register
    if lr is None or lr.image_offset is None or cpu.pc.image_offset is None:
        return list(cpu.returns)
    if cpu.returns and cpu.returns[0].runtime == lr.runtime:
        return list(cpu.returns)
    table = system_map.kallsyms
    caller = table.containing(system_map.text + lr.image_offset - CALL_SIZE)
    if caller is None or caller == table.containing(system_map.text + cpu.pc.image_offset):
        return list(cpu.returns)
    return [lr, *cpu.returns]


def _cpu_where(cpu: CpuState, callers: list[CodeAddress], system_map: SystemMap,
               lines: dict[int, str]) -> str:
    head = _place(cpu.pc, system_map, lines, call=False)
    return head + "".join(f", called from {_place(r, system_map, lines, call=True)}"
                          for r in callers)


def _place(address: CodeAddress, system_map: SystemMap, lines: dict[int, str], *,
           call: bool) -> str:
    """``0xADDR (symbol+off/size) at file:line``; for a return address
    (``call``) the call before it, as the lab's reason names it."""
    back = CALL_SIZE if call else 0
    if address.image_offset is None:
        return f"{address.runtime - back:#x} (not in the kernel's Image)"
    link = system_map.text + address.image_offset
    # %pS: code outside kallsyms' text (init text) prints as the raw pointer.
    symbol = system_map.kallsyms.render_symbol(link - back, address.runtime - link)
    text = f"{address.runtime - back:#x} ({symbol})"
    line = lines.get(link if call else link + 1)
    return text if line is None else f"{text} at {line}"
