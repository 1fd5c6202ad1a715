"""The scenarios of a real kernel (``pyharness qemu``): where each fault
goes, how the kernel reaches it, and what its dump must show.

Each scenario patches a copy of the kernel's ``Image`` (never the tree):
:mod:`pyharness.run.kernel_faults` writes the words, at offsets from that
build's own ``System.map``. Every fault sits in hyp code that the host
reaches early in boot, so a run is a boot to KVM's init and no further:

- the function an HVC's handler calls, for an HVC the host makes on every
  CPU during KVM's init (:data:`HVC_SITES`: ``__kvm_get_mdcr_el2`` in
  nVHE mode where the kernel has it, ``__vgic_v3_init_lrs`` where not;
  ``pkvm_cpu_set_vector`` in protected mode), reached through
  ``handle_trap`` and the handler;
- ``handle_host_mem_abort``: the first stage-2 fault of the host once
  protected mode has deprivileged it;
- ``stage2_map_walker``: the host stage-2 page-table walk of
  ``__pkvm_init``'s finalisation, on the boot CPU.

The names the lab has too mean the same fault (``hyp_panic``, ``bug``,
``stack_overflow``): the differential compares them
(:mod:`pyharness.judge.differential`). Each scenario states the frames its
dump must hold, from the panic down to the host's entry, as
:class:`FrameSpec` records the judge resolves against the kernel's code
(:mod:`pyharness.judge.kernel_path`): nothing comes from the dump itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from pyharness.errors import HarnessError
from pyharness.judge.kernel_path import FrameSpec

# Where a CPU test's out-of-line code goes: hyp text no run reaches (no
# vCPU ever runs: there is no userspace to create one).
CAVE = "__kvm_vcpu_run"
# Placeholders in a scenario's sites and frames for the HVC it rides on.
VICTIM = "{victim}"
HANDLER = "{handler}"


@dataclass(frozen=True)
class HvcSite:
    """A host HVC made on every CPU during KVM's init: the hyp handler and
    the function it calls, whose entry a fault replaces."""

    handler: str
    victim: str


# The HVCs each mode makes on every CPU, in the order they are tried: the
# first whose two functions the kernel has is used.
HVC_SITES: dict[str, tuple[HvcSite, ...]] = {
    # kvm_arm_init_debug() (6.1, 6.12); kvm_vgic_init_cpu_hardware() (7.x).
    "nvhe": (HvcSite("handle___kvm_get_mdcr_el2", "__kvm_get_mdcr_el2"),
             HvcSite("handle___vgic_v3_init_lrs", "__vgic_v3_init_lrs")),
    # cpu_set_hyp_vector() asks the pKVM hyp to install the vectors.
    "protected": (HvcSite("handle___pkvm_cpu_set_vector", "pkvm_cpu_set_vector"),),
}


ENTRY = FrameSpec("entry", "handle_trap")
PANIC_FRAME = FrameSpec("in", "hyp_panic")
BAD_STACK_FRAME = FrameSpec("return", "hyp_panic", "hyp_panic_bad_stack")
VIA_HVC = (FrameSpec("return", VICTIM, HANDLER),
           FrameSpec("return", HANDLER, "handle_trap", maybe_between="handle_host_hcall"),
           ENTRY)


@dataclass(frozen=True)
class KernelScenario:
    """One real-kernel scenario."""

    name: str
    description: str
    fault: str                    # kernel_faults: "data_abort", "brk", "udf", "recursion", ...
    site: str                     # the hyp function the fault replaces the entry of
    panic: str                    # the panic line: "panic", "bug-addr", or "none" (no dump)
    frames: tuple[FrameSpec, ...]
    modes: tuple[str, ...] = ("nvhe", "protected")
    shared: bool = False          # the lab has a scenario of this name and meaning
    all_cpus: bool = False        # every CPU faults (two CPUs, each with its trace)
    boot_cpu_only: bool = False   # the fault site only runs on the boot CPU
    # The fault comes after protected mode deprivileged the host: its panic
    # handler can only run where the hyp turns the host's stage 2 off on a
    # panic (NVHE_EL2_DEBUG; 7.x: PKVM_DISABLE_STAGE2_ON_PANIC), else the
    # machine hangs silently, as with a "none" panic.
    after_deprivilege: bool = False
    esr_class: int | None = None  # the ESR EC the panic must report


SCENARIOS: tuple[KernelScenario, ...] = (
    KernelScenario(
        "hyp_panic", "a data abort (a load through a null pointer) at the entry of the "
        "function an HVC's handler calls", "data_abort", VICTIM, "panic",
        (PANIC_FRAME, *VIA_HVC), shared=True, esr_class=0x25),
    KernelScenario(
        "bug", "brk #0x800 (BUG()'s immediate, with no bug-table entry) at the entry "
        "of the function an HVC's handler calls", "brk", VICTIM, "bug-addr", (PANIC_FRAME, *VIA_HVC), shared=True,
        esr_class=0x3C),
    KernelScenario(
        "udf", "a permanently undefined instruction (udf #0) at the entry of the "
        "function an HVC's handler calls",
        "udf", VICTIM, "panic", (PANIC_FRAME, *VIA_HVC), esr_class=0x00),
    KernelScenario(
        "stack_overflow", "the HVC's handler recursing through `sub sp, sp, #32; stp x29, x30, "
        "[sp]` until SP leaves the hyp stack: the vector's check switches to the overflow "
        "stack and calls hyp_panic_bad_stack", "recursion", HANDLER, "panic",
        (PANIC_FRAME, BAD_STACK_FRAME, FrameSpec("recursion", HANDLER),
         FrameSpec("return", HANDLER, "handle_trap", maybe_between="handle_host_hcall"),
         ENTRY), shared=True, esr_class=0x25),
    KernelScenario(
        "stack_overflow_preindexed", "the HVC's handler recursing through a pre-indexed `stp x29, "
        "x30, [sp, #-16]!`: the faulting store does not move SP, so the vector's check "
        "passes and the hyp livelocks on its own exception path, printing nothing (the "
        "kernel's known limit); the run ends once the console stayed silent for 3 s after "
        "KVM's init began",
        "recursion_preindexed", HANDLER, "none", ()),
    KernelScenario(
        "host_mem_abort", "a data abort at the entry of handle_host_mem_abort: the host's "
        "first stage-2 fault after protected mode deprivileged it", "data_abort",
        "handle_host_mem_abort", "panic",
        (PANIC_FRAME, FrameSpec("return", "handle_host_mem_abort", "handle_trap"), ENTRY),
        modes=("protected",), esr_class=0x25, after_deprivilege=True),
    KernelScenario(
        "pkvm_init_walk", "a data abort at the entry of stage2_map_walker, in the host "
        "stage-2 page-table walk of __pkvm_init's finalisation (boot CPU)", "data_abort",
        "stage2_map_walker", "panic",
        (PANIC_FRAME, FrameSpec("chain", "__pkvm_init_finalise"),
         FrameSpec("return", "__pkvm_init_switch_pgd", "__pkvm_init")), modes=("protected",),
        boot_cpu_only=True, esr_class=0x25),
    KernelScenario(
        "two_cpus", "the hyp_panic fault on two CPUs at once: both panic, their lines "
        "interleave; each CPU's trace is told apart by its printk caller id and judged on "
        "its own (the one stopped by the other may be cut short)", "data_abort", VICTIM,
        "panic", (PANIC_FRAME, *VIA_HVC), all_cpus=True, esr_class=0x25),
    KernelScenario(
        "two_cpus_overflow", "the stack_overflow recursion on two CPUs at once: each "
        "overflows its own hyp stack and prints a trace of over a hundred frames, the two "
        "interleaving line by line; each CPU's trace is told apart by its printk stream and "
        "judged on its own (the one the other's stop cut short must be a prefix). nVHE "
        "only: in protected mode the boot CPU makes its HVC alone, in do_pkvm_init(), and "
        "its panic stops the machine before the other CPU makes one", "recursion", HANDLER,
        "panic", (PANIC_FRAME, BAD_STACK_FRAME, FrameSpec("recursion", HANDLER),
                  FrameSpec("return", HANDLER, "handle_trap", maybe_between="handle_host_hcall"),
                  ENTRY), modes=("nvhe",), all_cpus=True, esr_class=0x25),
)

_BY_NAME = {s.name: s for s in SCENARIOS}


def kernel_scenario(name: str) -> KernelScenario:
    scenario = _BY_NAME.get(name)
    if scenario is None:
        raise HarnessError(f"unknown real-kernel scenario {name!r}; use one of: "
                           + ", ".join(_BY_NAME))
    return scenario


def scenarios_for(mode: str) -> list[KernelScenario]:
    return [s for s in SCENARIOS if mode in s.modes]


def _placed(name: str, site: HvcSite) -> str:
    return name.format(handler=site.handler, victim=site.victim) if "{" in name else name


def resolve(scenario: KernelScenario, mode: str, has_symbol: Callable[[str], bool]) \
        -> KernelScenario:
    """The scenario with its HVC placeholders filled for a kernel in
    ``mode`` (``has_symbol(name)``: the kernel has that hyp function), or a
    HarnessError naming the functions none of the mode's HVCs found."""
    if "{" not in scenario.site and not any("{" in f.function + f.caller
                                            for f in scenario.frames):
        return scenario
    for site in HVC_SITES[mode]:
        if has_symbol(site.handler) and has_symbol(site.victim):
            frames = tuple(replace(f, function=_placed(f.function, site),
                                   caller=_placed(f.caller, site)) for f in scenario.frames)
            return replace(scenario, site=_placed(scenario.site, site), frames=frames)
    tried = ", ".join(f"{s.handler}/{s.victim}" for s in HVC_SITES[mode])
    raise HarnessError(f"scenario {scenario.name}: this kernel has none of the hyp functions "
                       f"its {mode}-mode fault rides on ({tried})")
