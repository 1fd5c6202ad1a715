"""The expected outcome of a run, from what the emulator saw.

Nothing here reads the firmware's output or its unwinder's results. The
hyp call chain comes from the frame records as the CPU made them: a
single-address hook on every hyp instruction that sets up a frame pointer
(``add x29, sp, #N`` right after ``stp x29, x30, [sp...]``) records
``{address: x29 + N, saved fp: x29, return address: x30}`` at the moment
the record is written. When the hypervisor starts its self-unwind (the
``adr xN, .`` in ``hyp_panic``), a hook takes the start pc, the start fp,
and the exception registers the harness itself delivered (ELR, SPSR,
ESR), and follows the recorded links under the unwinder's rules
(DESIGN 2.1) to get the pcs the dump must show. Printed forms follow the
kernel's rules, computed from the ELF (:mod:`pyharness.symbols`).

Cost: one callback per frame set up in the hypervisor, not per
instruction.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .image import Image
from .machine import Machine
from .faults import Fault
from .symbols import ADDRESS_MASK, FunctionTable

HYP_PREFIX = "__kvm_nvhe_"
HYP_PANIC = "__kvm_nvhe_hyp_panic"
OVERFLOW_STACK = "__kvm_nvhe_overflow_stack"
PKVM_STACKTRACE = "__kvm_nvhe_pkvm_stacktrace"

EC_BRK64 = 0x3C
BUG_BRK_IMM = 0x800
PSR_MODE_MASK = 0xF
PSR_MODE_EL2T = 0x8
PSR_MODE_EL2H = 0x9
KVM_PREFIX = "kvm [1]: "

# What each non-panicking scenario prints (the spec, not a recording).
SMOKE_LINES = ("kvm [1]: smoke: hypervisor returned 124",)   # 3 * 41 + 1


def _selftest(name: str, pcs: str, end: int) -> str:
    return f"unwind_selftest: {name} pcs={pcs} end={end}"


ENOENT, EINVAL = -2, -22
# csrc/host/unwind_selftest.c builds these records; the outcome of each is
# what DESIGN 2.1's rules say, worked out by hand.
UNWIND_SELFTEST_LINES = (
    _selftest("chain", "a,b,c,d", ENOENT),             # three records, then fp 0
    _selftest("consumer_stop", "a,b", 0),              # the consumer says stop after 2
    _selftest("misaligned", "a,b,c", EINVAL),          # fp not 8-byte aligned
    _selftest("outside", "a,b,c", EINVAL),             # fp on no stack
    _selftest("straddles_end", "a,b,c", EINVAL),       # record's 2nd word past the end
    _selftest("self_loop", "a,b,c", EINVAL),           # fp == previous fp
    _selftest("downward", "a,b,c", EINVAL),            # fp below previous fp
    _selftest("cross_stack", "a,b,c,d", ENOENT),       # irq -> task, once
    _selftest("return_to_done", "a,b,c,d", EINVAL),    # task -> irq again
    _selftest("translated", "a,b,c,d", ENOENT),        # foreign stack, translated
    _selftest("translate_refused", "a,b", EINVAL),     # translation fails
)


@dataclass(frozen=True)
class ExpectedFrame:
    """One frame line: the link-time address and its ``%pB`` rendering."""

    address: int
    symbol: str

    def to_dict(self) -> dict[str, str]:
        return {"address": f"{self.address:016x}", "symbol": self.symbol}


@dataclass(frozen=True)
class ExpectedPanic:
    """The line naming why the hypervisor panicked (tracelog's kinds)."""

    kind: str                    # "panic" | "bug-file" | "bug-addr" | "invalid"
    address: int | None = None   # link-time, for "panic" and "bug-addr"
    symbol: str | None = None    # %pS, for "panic" and "bug-addr"
    file: str | None = None      # for "bug-file"
    line: int | None = None

    def describe(self) -> str:
        if self.kind == "invalid":
            return "Invalid host exception to nVHE hyp!"
        if self.kind == "bug-file":
            return f"nVHE hyp BUG at: {self.file}:{self.line}!"
        what = "panic" if self.kind == "panic" else "BUG"
        return f"nVHE hyp {what} at: [<{self.address:016x}>] {self.symbol}!"


@dataclass(frozen=True)
class Expectation:
    """Everything the console of a run should show."""

    kind: str                        # "hyp-panic" | "lines" | "breach" | "violation"
    exit_status: int
    lines: tuple[str, ...] = ()                 # "lines": exact text, in order
    panic: ExpectedPanic | None = None
    dump: str | None = None                     # "protected" | "non-protected" | "cannot-dump"
    frames: tuple[ExpectedFrame, ...] = ()
    truncated: bool = False                     # protected: the buffer was full
    notes: tuple[str, ...] = ()
    violation: str | None = None                # "violation": what the watch must report


@dataclass
class _Record:
    saved_fp: int
    lr: int


@dataclass
class _PanicCapture:
    start_pc: int
    start_fp: int
    elr: int
    spsr: int
    esr: int
    chain: list[tuple[int, int]] = field(default_factory=list)  # (record fp, lr)


# -- instruction patterns ------------------------------------------------

def _is_frame_setup(word: int) -> int | None:
    """``add x29, sp, #imm`` (``mov x29, sp`` is imm 0) -> imm, else None."""
    if word & 0xFFC003FF == 0x910003FD:
        return (word >> 10) & 0xFFF
    return None


def _stp_fp_lr(word: int) -> tuple[str, int] | None:
    """``stp x29, x30, [sp, #off]`` ('offset') or ``[sp, #off]!`` ('pre')."""
    forms = {0xA9007BFD: "offset", 0xA9807BFD: "pre"}
    form = forms.get(word & 0xFFC07FFF)
    if form is None:
        return None
    imm7 = (word >> 15) & 0x7F
    if imm7 & 0x40:
        imm7 -= 0x80
    return form, imm7 * 8


def _is_adr_here(word: int) -> bool:
    """``adr xN, .``: the instruction reading its own address."""
    return word & 0xFFFFFFE0 == 0x10000000


@dataclass(frozen=True)
class HypCodePoints:
    """Where the oracle hooks an image's hyp code (static, per image)."""

    functions: FunctionTable
    frame_setups: tuple[tuple[int, int], ...]   # (link address, imm) of each frame setup
    start_points: tuple[int, ...]               # the 'adr xN, .' in hyp_panic


@functools.lru_cache(maxsize=16)
def hyp_code_points(image: Image) -> HypCodePoints:
    """Scan the hyp text once per image (images are cached per process):
    every frame-pointer setup that follows a store of the {x29, x30} pair
    to the record it points at, and the start of hyp_panic's self-unwind."""
    functions = FunctionTable(image)
    text = image.memory_image(0)

    def word(link_address: int) -> int:
        return struct.unpack_from("<I", text, link_address - image.link_base)[0]

    setups = []
    for func in functions:
        if not func.name.startswith(HYP_PREFIX):
            continue
        for addr in range(func.address, func.address + func.size, 4):
            imm = _is_frame_setup(word(addr))
            if imm is None:
                continue
            for back in range(max(func.address, addr - 16), addr, 4):
                stp = _stp_fp_lr(word(back))
                if stp and (stp[0] == "pre" and imm == 0 or
                            stp[0] == "offset" and stp[1] == imm):
                    setups.append((addr, imm))
                    break
    panic = functions.by_name(HYP_PANIC)
    starts = () if panic is None else tuple(
        a for a in range(panic.address, panic.address + panic.size, 4)
        if _is_adr_here(word(a)))
    return HypCodePoints(functions, tuple(setups), starts)


class HypOracle:
    """Watches one run and says what its console must contain."""

    def __init__(self, image: Image, machine: Machine, *, cpu: int,
                 protected: bool, el2_debug: bool, fault: Fault | None = None) -> None:
        self.fault = fault
        self.image = image
        self.machine = machine
        self.layout = image.layout
        self.cpu = cpu
        self.protected = protected
        self.el2_debug = el2_debug
        self.code = hyp_code_points(image)
        self.functions = self.code.functions
        self._records: dict[int, _Record] = {}
        self.capture: _PanicCapture | None = None
        self.problems: list[str] = []
        self._install()

    def _install(self) -> None:
        for addr, imm in self.code.frame_setups:
            self.machine.add_code_hook(addr, self._frame_hook(imm), space="hyp")
        starts = self.code.start_points
        if len(starts) != 1:
            self.problems.append(f"oracle: expected one 'adr xN, .' in hyp_panic, "
                                 f"found {len(starts)}")
            return
        self.machine.add_code_hook(starts[0], self._on_unwind_start, space="hyp")

    # -- hooks ------------------------------------------------------------

    def _frame_hook(self, imm: int):
        records = self._records
        register = self.machine.register

        def on_frame(_machine: Machine, _link_address: int) -> None:
            records[register("sp") + imm] = _Record(saved_fp=register("fp"),
                                                   lr=register("lr"))
        return on_frame

    def _on_unwind_start(self, machine: Machine, _link_address: int) -> None:
        regs = machine.registers()
        capture = _PanicCapture(start_pc=regs["pc"], start_fp=regs["x29"],
                                elr=regs["elr_el2"], spsr=regs.get("spsr_el2", 0),
                                esr=regs["esr_el2"])
        capture.chain = self._follow(capture.start_fp)
        if self.fault is not None and self.capture is None:
            self.fault.inject(_Editor(self, capture.chain))
            capture.chain = self._follow(capture.start_fp)
        if self.capture is None:
            self.capture = capture

    # -- the unwinder's rules over the recorded links --------------------------

    def _stacks(self) -> list[tuple[str, int, int]]:
        layout = self.layout
        hyp = layout.hyp_stack_va(self.cpu)
        _, stride = self.image.percpu_area("hyp")
        overflow = self.image.symbol(OVERFLOW_STACK)
        overflow_va = self.hyp_va(overflow.address) + self.cpu * stride
        return [("hyp", hyp, hyp + layout.page_size),
                ("overflow", overflow_va, overflow_va + overflow.size)]

    def _follow(self, fp: int) -> list[tuple[int, int]]:
        """(fp, lr) of every record the unwinder may read, in order."""
        stacks = self._stacks()
        chain: list[tuple[int, int]] = []
        done: set[str] = set()
        prev_type, prev_fp = None, 0
        while fp:
            if fp & 7:
                break
            stack = next((name for name, lo, hi in stacks if lo <= fp and fp + 16 <= hi), None)
            if stack is None or stack in done:
                break
            if stack == prev_type and fp <= prev_fp:
                break
            if stack != prev_type and prev_type is not None:
                done.add(prev_type)
            prev_type, prev_fp = stack, fp
            record = self._records.get(fp)
            if record is None:
                self.problems.append(f"oracle: no frame record was seen at {fp:#x}")
                break
            chain.append((fp, record.lr))
            fp = record.saved_fp
        return chain

    # -- address arithmetic ---------------------------------------------------

    def hyp_va(self, link_address: int) -> int:
        return self.image.phys_address(link_address) + self.layout.hyp_va_offset

    def link_of_hyp_va(self, va: int) -> int:
        """A hyp VA (tag bits masked to VA_BITS) -> the link-time address."""
        va &= (1 << self.layout.va_bits) - 1
        link = va - self.layout.hyp_va_offset - self.layout.image_phys_base + self.image.link_base
        return link & ADDRESS_MASK       # the host's arithmetic wraps at 64 bits

    def buffer_capacity(self) -> int:
        sym = self.image.symbol(PKVM_STACKTRACE)
        return sym.size // self.layout.nr_cpus // 8 - 1

    # -- the expectation --------------------------------------------------

    def expectation(self, scenario: str, elf: Path) -> Expectation:
        if scenario == "smoke":
            return Expectation(kind="lines", exit_status=0, lines=SMOKE_LINES)
        if scenario == "unwind_selftest":
            return Expectation(kind="lines", exit_status=0, lines=UNWIND_SELFTEST_LINES)
        if scenario == "isolation_probe":
            if self.protected:
                return Expectation(kind="breach", exit_status=0)
            return Expectation(kind="lines", exit_status=0, lines=(
                "kvm [1]: isolation_probe: host read the hyp stack page (0)",))
        if scenario == "buffer_overrun_probe":
            if not self.layout.protected_stacktrace:
                return Expectation(kind="lines", exit_status=0, lines=(
                    "kvm [1]: buffer_overrun_probe: no trace buffer",))
            return Expectation(kind="violation", exit_status=0, lines=(
                "kvm [1]: buffer_overrun_probe: hyp wrote past its trace buffer",),
                violation="write outside this CPU's shared trace buffer")
        capture = self.capture
        if capture is None:
            return Expectation(kind="hyp-panic", exit_status=1,
                               notes=("the hypervisor never started its unwind "
                                      "(hyp_panic was not reached)", *self.problems))
        pcs = [capture.start_pc] + [lr for _, lr in capture.chain]
        dump, truncated = self._dump_kind(), False
        if dump == "protected":
            # The shared buffer is zero-terminated: a zero return address
            # saved in it reads back as the end of the trace.
            if 0 in pcs:
                pcs, truncated = pcs[:pcs.index(0)], True
            if len(pcs) > self.buffer_capacity():
                pcs, truncated = pcs[:self.buffer_capacity()], True
        frames = ()
        if dump != "cannot-dump":
            frames = tuple(self._frame(pc) for pc in pcs)
        return Expectation(kind="hyp-panic", exit_status=1, panic=self._panic(capture, elf),
                           dump=dump, frames=frames, truncated=truncated,
                           notes=tuple(self.problems))

    def _dump_kind(self) -> str:
        if not self.protected:
            return "non-protected"
        return "protected" if self.layout.protected_stacktrace else "cannot-dump"

    def _frame(self, pc: int) -> ExpectedFrame:
        link = self.link_of_hyp_va(pc)
        return ExpectedFrame(link, self.functions.render_backtrace(
            link, self.machine.kaslr_offset))

    def _panic(self, capture: _PanicCapture, elf: Path) -> ExpectedPanic:
        mode = capture.spsr & PSR_MODE_MASK
        if mode not in (PSR_MODE_EL2T, PSR_MODE_EL2H):
            return ExpectedPanic("invalid")
        link = self.link_of_hyp_va(capture.elr)
        symbol = self.functions.render_symbol(link, self.machine.kaslr_offset)
        is_bug = (capture.esr >> 26) & 0x3F == EC_BRK64 and capture.esr & 0xFFFF == BUG_BRK_IMM
        if not is_bug:
            return ExpectedPanic("panic", link, symbol)
        if self.protected and not self.el2_debug:
            return ExpectedPanic("bug-addr", link, symbol)
        where = source_line(elf, link)
        if where is None:
            self.problems.append(f"oracle: no line information for the BUG at {link:#x}")
            return ExpectedPanic("bug-file")
        return ExpectedPanic("bug-file", file=where[0], line=where[1])


class _Editor:
    """The records as a fault sees them; writes go to memory and the model."""

    def __init__(self, oracle: HypOracle, chain: list[tuple[int, int]]) -> None:
        self._oracle = oracle
        self.chain = list(chain)
        stacks = {name: (lo, hi) for name, lo, hi in oracle._stacks()}
        self.hyp_stack = stacks["hyp"]
        self.overflow_stack = stacks["overflow"]
        self.va_bits = oracle.layout.va_bits

    def write_record(self, address: int, saved_fp: int, lr: int) -> None:
        self._oracle.machine.write_va(address, struct.pack("<QQ", saved_fp, lr), 2)
        self._oracle._records[address] = _Record(saved_fp=saved_fp, lr=lr)


def source_line(elf: Path, link_address: int) -> tuple[str, int] | None:
    """file:line of an instruction, from the ELF's DWARF line table
    (parsed once per ELF and address in a process: it costs ~15 ms)."""
    st = elf.stat()
    return _source_line(str(elf), st.st_mtime_ns, st.st_size, link_address)


@functools.lru_cache(maxsize=64)
def _source_line(elf: str, _mtime_ns: int, _size: int,
                 link_address: int) -> tuple[str, int] | None:
    from .decode import ElfSymbolizer

    with ElfSymbolizer(Path(elf)) as symbolizer:
        found = symbolizer.source_line(link_address)
    if found is None:
        return None
    # The build maps its directory to "." in DWARF; the kernel prints the
    # path relative to the source tree, as __FILE__ is.
    return os.path.normpath(found.file), found.line
