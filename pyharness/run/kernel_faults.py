"""The words each real-kernel scenario writes into a copy of the Image.

A fault replaces the entry of a hyp function (after its landing pad, a
``paciasp`` or ``bti c``, which stays: an indirect call must still land
on it). The entry becomes a branch to a few words in the *cave* (hyp text
no run reaches, :data:`~pyharness.run.kernel_scenarios.CAVE`) that test
the CPU: the chosen CPU goes back to the word after the branch, which
faults; every other CPU runs the two words the branch and the fault
replaced, then continues where they were. So only CPU N panics, and the
panicking instruction is in the function the scenario names::

    site:     paciasp                 cave:  mrs  x9, mpidr_el1
    site+4:   b    cave                      and  x9, x9, #0xff
    site+8:   <fault>                        cmp  x9, #N
    site+12:  ...                            b.ne 1f      (nop: every CPU)
                                             mov  x9, xzr
                                             b    site+8
                                         1:  <site+4's word>
                                             <site+8's word>
                                             b    site+12

The faults: ``ldr x9, [x9]`` (a data abort at VA 0), ``brk #0x800``,
``udf #0``; the recursions replace the function's body instead
(``sub sp, sp, #32; stp x29, x30, [sp]; mov x29, sp; bl body`` or the
pre-indexed ``stp x29, x30, [sp, #-16]!; mov x29, sp; bl body``), and
the other CPUs return at once. Addresses are link-time; the Image holds
``_text`` at offset 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyharness.elf import a64_code as a64
from pyharness.elf.system_map import SystemMap
from pyharness.errors import HarnessError
from pyharness.run.kernel_scenarios import CAVE, KernelScenario

SCRATCH = 9           # x9: caller-saved, free at any function's entry
BUG_BRK_IMM = 0x800   # the kernel's BUG() immediate


@dataclass(frozen=True)
class Patch:
    """Words written at a link-time address."""

    address: int
    words: tuple[int, ...]
    what: str


@dataclass(frozen=True)
class Injection:
    """What a scenario writes, and what the judge needs to know of it."""

    patches: tuple[Patch, ...]
    fault_address: int                    # the instruction that panics (link-time)
    cpus: int                             # how many CPUs the machine boots
    marks: dict[str, int] = field(default_factory=dict)   # "recursion_return"


class InjectionError(HarnessError):
    """A scenario's fault cannot be placed in this kernel (exit 2)."""


def _word(image: bytes, smap: SystemMap, address: int) -> int:
    offset = smap.image_offset(address)
    if not 0 <= offset <= len(image) - 4:
        raise InjectionError(f"{address:#x} is outside the Image ({len(image)} bytes)")
    return int.from_bytes(image[offset:offset + 4], "little")


def _symbol(smap: SystemMap, name: str, scenario: str) -> int:
    address = smap.hyp(name)
    if address is None:
        raise InjectionError(
            f"scenario {scenario}: this kernel has no hyp symbol {name} "
            f"(__kvm_nvhe_{name} in {smap.path}), so its fault has nowhere to go; "
            "choose another scenario for this tree")
    return address


def _fault_word(fault: str) -> int:
    return {"data_abort": a64.ldr(SCRATCH, SCRATCH), "brk": a64.brk(BUG_BRK_IMM),
            "udf": a64.udf(0)}[fault]


def _cave(smap: SystemMap, scenario: KernelScenario, words: int) -> int:
    cave = _symbol(smap, CAVE, scenario.name)
    sym = smap.kallsyms.containing(cave)
    if sym is None or sym.span < 4 * words:
        raise InjectionError(f"scenario {scenario.name}: __kvm_nvhe_{CAVE} is smaller than "
                             f"the {4 * words} bytes the CPU test needs")
    return cave


def _cpu_test(cave: int, cpu: int | None, faulting: int, others: list[int],
              resume: int | None) -> Patch:
    """The cave's words: CPU ``cpu`` branches to ``faulting`` with x9 = 0;
    the others run ``others`` then branch to ``resume`` (or fall off a
    ``ret`` in ``others``). With ``cpu`` None every CPU faults."""
    if cpu is None:
        words = [a64.NOP]
    else:
        words = [a64.mrs_mpidr_el1(SCRATCH), a64.and_low_byte(SCRATCH, SCRATCH),
                 a64.cmp_imm(SCRATCH, cpu), a64.NOP]      # the b.ne, placed below
    branch_at = cave + 4 * (len(words) - 1)
    words += [a64.mov_zero(SCRATCH), a64.b(cave + 4 * (len(words) + 1), faulting)]
    others_at = cave + 4 * len(words)
    if cpu is not None:
        words[-3] = a64.b_cond(a64.NE, branch_at, others_at)
    words += others
    if resume is not None:
        words.append(a64.b(cave + 4 * len(words), resume))
    return Patch(cave, tuple(words), f"CPU test in __kvm_nvhe_{CAVE}")


def _entry(image: bytes, smap: SystemMap, site: int) -> tuple[int, int | None]:
    """The function's first replaceable word, and its landing pad if it has one."""
    first = _word(image, smap, site)
    return (site + 4, first) if first in a64.LANDING_PADS else (site, None)


def _displaced(image: bytes, smap: SystemMap, entry: int, moved_to: int,
               scenario: str) -> list[int]:
    """The two words the branch and the fault replace, as they must read at
    ``moved_to`` in the cave (a branch among them keeps its target)."""
    words = []
    for offset in (0, 4):
        word = _word(image, smap, entry + offset)
        moved = a64.relocated(word, entry + offset, moved_to + offset)
        if moved is None:
            raise InjectionError(
                f"scenario {scenario}: the word at {entry + offset:#x} ({word:#010x}) "
                "depends on where it sits and cannot be moved into the cave (an adr, adrp "
                "or literal load, or a branch out of reach); this kernel's code does not "
                "suit the scenario")
        words.append(moved)
    return words


def inject(scenario: KernelScenario, smap: SystemMap, image: bytes, cpu: int) -> Injection:
    """The patches that give ``scenario`` on CPU ``cpu`` in this kernel."""
    if scenario.boot_cpu_only and cpu != 0:
        raise InjectionError(f"scenario {scenario.name} faults on the boot CPU only; "
                             "use --cpu 0")
    site = _symbol(smap, scenario.site, scenario.name)
    entry, pad = _entry(image, smap, site)
    chosen = None if scenario.all_cpus else cpu
    cpus = 2 if scenario.all_cpus else cpu + 1
    if scenario.fault.startswith("recursion"):
        return _recursion(scenario, smap, entry, pad, chosen, cpus)
    cave = _cave(smap, scenario, 9)
    # The displaced words sit at the cave's 7th and 8th word (_cpu_test).
    test = _cpu_test(cave, chosen, entry + 4,
                     _displaced(image, smap, entry, cave + 24, scenario.name), entry + 8)
    fault = Patch(entry, (a64.b(entry, cave), _fault_word(scenario.fault)),
                  f"{scenario.fault} at __kvm_nvhe_{scenario.site}")
    return Injection(patches=(fault, test), fault_address=entry + 4, cpus=cpus)


def _recursion(scenario: KernelScenario, smap: SystemMap, entry: int, pad: int | None,
               chosen: int | None, cpus: int) -> Injection:
    body = entry + 4
    if scenario.fault == "recursion_preindexed":
        words = [a64.stp_fp_lr(-16, pre_index=True), a64.mov_fp_sp()]
    else:
        words = [a64.sub_sp(32), a64.stp_fp_lr(0), a64.mov_fp_sp()]
    call_at = body + 4 * len(words)
    words.append(a64.bl(call_at, body))
    # The other CPUs return at once (authenticating what the pad signed).
    others = ([a64.AUTHENTICATE[pad]] if pad in a64.AUTHENTICATE else []) + [a64.RET]
    cave = _cave(smap, scenario, 6 + len(others))
    test = _cpu_test(cave, chosen, body, others, None)
    recursion = Patch(entry, (a64.b(entry, cave), *words),
                      f"{scenario.fault} in __kvm_nvhe_{scenario.site}")
    # The store that faults: the stp (the first body word that touches memory).
    store = body + (0 if scenario.fault == "recursion_preindexed" else 4)
    return Injection(patches=(recursion, test), fault_address=store, cpus=cpus,
                     marks={"recursion_return": call_at + 4, "recursion_frame_bytes":
                            16 if scenario.fault == "recursion_preindexed" else 32})


def apply(image: bytes, smap: SystemMap, injection: Injection) -> bytes:
    """A copy of ``image`` with the injection's patches written in."""
    out = bytearray(image)
    for patch in injection.patches:
        offset = smap.image_offset(patch.address)
        data = b"".join(w.to_bytes(4, "little") for w in patch.words)
        if not 0 <= offset <= len(out) - len(data):
            raise InjectionError(f"{patch.what}: {patch.address:#x} is outside the Image")
        out[offset:offset + len(data)] = data
    return bytes(out)
