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
(docs/oracle.md) to get the pcs the dump must show. Printed forms follow the
kernel's rules, computed from the ELF (:mod:`pyharness.elf.symbols`).

Cost: one callback per frame set up in the hypervisor, not per
instruction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyharness.elf.dwarf import source_line
from pyharness.elf.image import Image
from pyharness.elf.symbols import ADDRESS_MASK
from pyharness.judge.codepoints import hyp_code_points
from pyharness.judge.corruption import Fault
from pyharness.judge.expectation import (BUFFER_OVERRUN_LINES, ExpectedFrame, ExpectedPanic,
                                         Expectation, ISOLATION_PROBE_LINES, SMOKE_LINES,
                                         UNWIND_SELFTEST_LINES)
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.machine import Machine

EC_BRK64 = 0x3C
BUG_BRK_IMM = 0x800
PSR_MODE_MASK = 0xF
PSR_MODE_EL2T = 0x8
PSR_MODE_EL2H = 0x9


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
        self.geometry = stack_geometry(image)
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
        hyp = self.geometry.hyp_stack_va(self.cpu)
        overflow = self.geometry.overflow_stack_va(self.cpu)
        return [("hyp", hyp.lo, hyp.hi), ("overflow", overflow.lo, overflow.hi)]

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
        return self.geometry.trace_buffer_pa(self.cpu).size // 8 - 1

    # -- the expectation --------------------------------------------------

    def expectation(self, scenario: str, elf: Path) -> Expectation:
        if scenario == "smoke":
            return Expectation(kind="lines", exit_status=0, lines=SMOKE_LINES)
        if scenario == "unwind_selftest":
            return Expectation(kind="lines", exit_status=0, lines=UNWIND_SELFTEST_LINES)
        if scenario == "isolation_probe":
            if self.protected:
                return Expectation(kind="breach", exit_status=0)
            return Expectation(kind="lines", exit_status=0, lines=ISOLATION_PROBE_LINES)
        if scenario == "buffer_overrun_probe":
            if not self.layout.protected_stacktrace:
                return Expectation(kind="lines", exit_status=0,
                                   lines=BUFFER_OVERRUN_LINES[False])
            return Expectation(kind="violation", exit_status=0, lines=BUFFER_OVERRUN_LINES[True],
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
