"""The expected outcome of a run, from what the emulator saw.

Nothing here reads the firmware's output or its unwinder's results. The
hyp call chain comes from the frame records as the CPU made them: a
single-address hook on every hyp instruction that sets up a frame pointer
(``add x29, sp, #N`` / ``mov x29, sp`` after the ``stp x29, x30`` that
fills the record) records ``{address: x29 + N, saved fp: x29, return
address: x30}`` at the moment the record is written. When the hypervisor
hands its unwinder the place to start (the entry of
``kvm_nvhe_prepare_backtrace(fp, pc)``, the kernel's own entry point, in
the lab's firmware and in a kernel tree's alike), a hook takes the start fp
and pc and the exception registers the harness itself delivered, and
follows the recorded links under the unwinder's rules
(:mod:`pyharness.judge.unwind_model`, one row per generation) to get the
pcs the dump must show. Printed forms follow the kernel's rules, computed
from the ELF (:class:`pyharness.elf.symbols.KallsymsTable`).

Cost: one callback per frame set up in the hypervisor, not per
instruction; the frame callbacks are C (:mod:`pyharness.platform.native`)
when the helper library is built, and the records are read from its
buffer when the unwind starts.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass, field
from pathlib import Path

from pyharness.elf.dwarf import source_line
from pyharness.elf.image import Image
from pyharness.elf.symbols import ADDRESS_MASK
from pyharness.judge.codepoints import PREPARE_BACKTRACE, hyp_code_points
from pyharness.judge.corruption import Fault
from pyharness.judge.expectation import (BUFFER_OVERRUN_LINES, ExpectedFrame, ExpectedPanic,
                                         Expectation, ISOLATION_PROBE_LINES, SMOKE_LINES,
                                         UNWIND_SELFTEST_LINES, WalkEnd, WalkRecord)
from pyharness.judge.footprint_check import footprint_problems
from pyharness.judge.host_trace import HostTraceOracle
from pyharness.judge.unwind_model import Stack, Walk, rules_for, walk
from pyharness.judge.vector_model import VectorModel
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.machine import Machine

EC_BRK64 = 0x3C
BUG_BRK_IMM = 0x800
PSR_MODE_MASK = 0xF
PSR_MODE_EL2T = 0x8
PSR_MODE_EL2H = 0x9


@dataclass
class _PanicCapture:
    start_pc: int
    start_fp: int
    registers: dict[str, int]       # the hyp's view when the unwind starts
    chain: list[tuple[int, int]] = field(default_factory=list)  # (record fp, lr)
    end: WalkEnd | None = None      # where and why the walk stopped

    @property
    def elr(self) -> int:
        return self.registers["elr_el2"]

    @property
    def spsr(self) -> int:
        return self.registers.get("spsr_el2", 0)

    @property
    def esr(self) -> int:
        return self.registers["esr_el2"]


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
        self.kallsyms = image.kallsyms
        self._records: dict[int, tuple[int, int]] = {}
        self._setup_imm: dict[int, int] = {}     # runtime VA of a frame setup -> imm
        self._frames_read = 0
        self._unlinked_noted = False
        self._last_end: WalkEnd | None = None
        self.capture: _PanicCapture | None = None
        self.problems: list[str] = []
        rules = rules_for(image.unwinder)
        if rules is None:
            self.problems.append(f"oracle: no rules for the unwinder {image.unwinder!r}")
            rules = rules_for("lab")
        self.rules = rules
        self.host = HostTraceOracle(image, machine, cpu)
        self._install()

    def _install(self) -> None:
        setups = self.code.frame_setups
        vas = self.machine.add_frame_setup_hooks([addr for addr, _ in setups], space="hyp")
        self._setup_imm = {va: imm for va, (_, imm) in zip(vas, setups)}
        start = self.image.find_symbol(PREPARE_BACKTRACE)
        if start is None:
            self.problems.append(f"oracle: the image has no {PREPARE_BACKTRACE}, where the "
                                 "unwind starts")
            return
        self.machine.add_code_hook(start.address, self._on_unwind_start, space="hyp")
        self.vector = VectorModel(self.image, self.machine, self.geometry.overflow_stack_va(self.cpu))

    # -- hooks ------------------------------------------------------------

    def _read_frames(self) -> None:
        """The records made since the last call, in the order they were made:
        ``{sp + imm: (x29, x30)}`` as each frame setup was about to run
        (``add x29, sp, #imm``: the record x29 will point at)."""
        frames = self.machine.frames(self._frames_read)
        self._frames_read += len(frames)
        for frame in frames:
            imm = self._setup_imm.get(frame.pc)
            if imm is not None:   # a reused machine may record elsewhere too
                self._check_link(frame.sp + imm, frame.fp)
                self._records[frame.sp + imm] = (frame.fp, frame.lr)

    def _check_link(self, record: int, saved_fp: int) -> None:
        """A record the hyp makes links to 0 (the end of its chain, made where
        it entered from the host) or to a record it made before: never to a
        frame of the host, whose x29 the hyp must not inherit."""
        if saved_fp == 0 or saved_fp in self._records or self._unlinked_noted:
            return
        self._unlinked_noted = True
        self.problems.append(f"oracle: the hyp's frame record at {record:#x} links to "
                             f"{saved_fp:#x}, where the hyp made no record: its frame chain "
                             "must end with fp 0 where it entered from the host")

    def _on_unwind_start(self, machine: Machine, _link_address: int) -> None:
        """kvm_nvhe_prepare_backtrace(fp, pc) is being entered: x0 and x1 are
        where the hyp asks its unwinder to start."""
        if self.capture is not None:
            return
        self._read_frames()
        regs = machine.registers()
        capture = _PanicCapture(start_pc=regs["x1"], start_fp=regs["x0"], registers=regs)
        self._check_start(capture, regs)
        self.vector.decide()
        capture.chain = self._follow(capture.start_fp)
        if self.fault is not None:
            editor = _Editor(self, capture)
            self.fault.inject(editor)
            editor.flush()
            capture.start_fp = editor.start_fp
            capture.chain = self._follow(capture.start_fp)
        capture.end = self._last_end
        self.capture = capture

    def _check_start(self, capture: _PanicCapture, regs: dict[str, int]) -> None:
        """The start must be the caller's own frame and a pc inside it."""
        if capture.start_fp != regs["x29"]:
            self.problems.append(f"oracle: the unwind starts at fp {capture.start_fp:#x}, "
                                 f"not at its caller's frame {regs['x29']:#x}")
        caller = self.kallsyms.containing(self.link_of_hyp_va(regs["x30"]) - 4)
        here = self.kallsyms.containing(self.link_of_hyp_va(capture.start_pc))
        if caller is None or here is None or caller.name != here.name:
            self.problems.append(f"oracle: the unwind's start pc {capture.start_pc:#x} is "
                                 "not inside the function that starts it")

    # -- the unwinder's rules over the recorded links --------------------------

    def stacks(self) -> list[Stack]:
        hyp = self.geometry.hyp_stack_va(self.cpu)
        overflow = self.geometry.overflow_stack_va(self.cpu)
        return [Stack("hyp", hyp.lo, hyp.hi), Stack("overflow", overflow.lo, overflow.hi)]

    def trace_buffer_va(self) -> tuple[int, int] | None:
        """This CPU's protected-mode trace buffer in hyp VAs, if the image has one."""
        if not self.geometry.has_trace_buffer:
            return None
        pa = self.geometry.trace_buffer_pa(self.cpu)
        offset = self.layout.hyp_va_offset
        return pa.lo + offset, pa.hi + offset

    def _follow(self, fp: int) -> list[tuple[int, int]]:
        """(fp, lr) of every record the unwinder may read, in order."""
        found: Walk = walk(self._records, fp, self.stacks(), self.rules)
        if found.problem:
            self.problems.append(found.problem)
        self._last_end = WalkEnd(found.end_fp, found.end_rule, found.end_why)
        return found.chain

    def _walk_records(self, chain: list[tuple[int, int]]) -> tuple[WalkRecord, ...]:
        """The records of ``chain`` with the stack each lies on."""
        stacks = self.stacks()
        out = []
        for fp, lr in chain:
            stack = next((s for s in stacks if s.holds_record(fp)), Stack("?", 0, 0))
            out.append(WalkRecord(fp, lr, stack.name, stack.lo, stack.hi,
                                  self.link_of_hyp_va(lr)))
        return tuple(out)

    # -- address arithmetic ---------------------------------------------------

    def hyp_va(self, link_address: int) -> int:
        return self.image.phys_address(link_address) + self.layout.hyp_va_offset

    def link_of_hyp_va(self, va: int) -> int:
        """A hyp VA (tag bits masked to VA_BITS) -> the link-time address."""
        va &= (1 << self.layout.va_bits) - 1
        link = va - self.layout.hyp_va_offset - self.layout.image_phys_base + self.image.link_base
        return link & ADDRESS_MASK       # the host's arithmetic wraps at 64 bits

    def buffer_capacity(self) -> int:
        """From the Kconfig formula or the tree's NVHE_STACKTRACE_SIZE, not
        from the firmware's own symbol."""
        return self.image.stack_sizes.trace_capacity

    def hyp_offset(self) -> int:
        """What the host must print as ``Hyp Offset``: hyp VA -> link address."""
        return self.link_of_hyp_va(0) & ADDRESS_MASK

    # -- the expectation --------------------------------------------------

    def expectation(self, scenario: str, elf: Path) -> Expectation:
        """What the run's console must show, with every way the image's
        footprint differs from the series' claim."""
        footprint = tuple(footprint_problems(self.image, self.geometry))
        walked = {}
        if self.capture is not None:
            walked = {"walk": self._walk_records(self.capture.chain),
                      "walk_end": self.capture.end}
        return dataclasses.replace(self._expectation(scenario, elf), footprint=footprint,
                                   elf=str(elf), protected=self.protected, **walked)

    def _expectation(self, scenario: str, elf: Path) -> Expectation:
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
        if self.protected and dump != "cannot-dump":
            # The shared buffer is zero-terminated: a zero return address
            # saved in it reads back as the end of the trace.
            if 0 in pcs:
                pcs, truncated = pcs[:pcs.index(0)], True
            if len(pcs) > self.buffer_capacity():
                pcs, truncated = pcs[:self.buffer_capacity()], True
        frames: tuple[ExpectedFrame, ...] = ()
        if dump != "cannot-dump":
            rendered: dict[int, ExpectedFrame] = {}   # a long trace repeats a few pcs
            frames = tuple(rendered[pc] if pc in rendered else
                           rendered.setdefault(pc, self._frame(pc)) for pc in pcs)
        host_frames = self.host.frames or ()
        if self.host.problem:
            self.problems.append(self.host.problem)
        return Expectation(kind="hyp-panic", exit_status=1, panic=self._panic(capture, elf),
                           dump=dump, cannot_dump_reason=self.rules.cannot_dump_reason,
                           frames=frames, truncated=truncated,
                           notes=tuple(self.problems), registers=self._registers(capture),
                           hyp_offset=self.hyp_offset(), host_frames=host_frames,
                           cpu=self.cpu, findings=tuple(self.vector.findings))

    def _dump_kind(self) -> str:
        if not self.protected:
            return self.rules.header(False)
        if not self.layout.protected_stacktrace:
            return "cannot-dump"
        return self.rules.header(True)

    @staticmethod
    def _registers(capture: _PanicCapture) -> dict[str, int]:
        """The host's panic message, register by register, as the hyp saw them
        when it panicked (no vCPU is ever loaded on this platform)."""
        regs = capture.registers
        return {"PS": capture.spsr, "PC": capture.elr, "ESR": capture.esr,
                "FAR": regs.get("far_el2", 0), "HPFAR": regs.get("hpfar_el2", 0),
                "PAR": regs.get("par_el1", 0), "VCPU": 0}

    def _frame(self, pc: int) -> ExpectedFrame:
        link = self.link_of_hyp_va(pc)
        return ExpectedFrame(link, self.kallsyms.render_backtrace(
            link, self.machine.kaslr_offset))

    def _panic(self, capture: _PanicCapture, elf: Path) -> ExpectedPanic:
        mode = capture.spsr & PSR_MODE_MASK
        if mode not in (PSR_MODE_EL2T, PSR_MODE_EL2H):
            return ExpectedPanic("invalid")
        link = self.link_of_hyp_va(capture.elr)
        symbol = self.kallsyms.render_backtrace(link, self.machine.kaslr_offset)
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
    """The records as a corruption sees them; writes go to the model at
    once and to memory at :meth:`flush` (a run of adjacent records in one
    write: a corruption may write thousands). ``start_fp`` may be moved
    too: the fp the unwinder is handed."""

    def __init__(self, oracle: HypOracle, capture: _PanicCapture) -> None:
        self._oracle = oracle
        self.chain = list(capture.chain)
        self.start_fp = capture.start_fp
        self.start_pc = capture.start_pc
        stacks = {s.name: (s.lo, s.hi) for s in oracle.stacks()}
        self.hyp_stack = stacks["hyp"]
        self.overflow_stack = stacks["overflow"]
        self.trace_buffer = oracle.trace_buffer_va()
        self.va_bits = oracle.layout.va_bits
        self.min_step = oracle.rules.min_step
        self._pending: dict[int, int] = {}     # hyp VA -> the u64 written there

    def write_record(self, address: int, saved_fp: int, lr: int) -> None:
        """Write 16 bytes at ``address``; every modelled record they overlap
        is read back, so the model is what memory holds after the write."""
        if address % 8:
            raise ValueError(f"a record at {address:#x}: records are 8-byte aligned words")
        records = self._oracle._records
        self._pending[address], self._pending[address + 8] = saved_fp, lr
        records[address] = (saved_fp, lr)
        for other in (address - 8, address + 8):
            if other in records:
                records[other] = (self._word(other), self._word(other + 8))

    def write_words(self, address: int, words: list[int]) -> None:
        """Write words that hold no frame record (the model is not told)."""
        for i, word in enumerate(words):
            self._pending[address + 8 * i] = word

    def _word(self, address: int) -> int:
        if address in self._pending:
            return self._pending[address]
        return self._oracle.machine.read_u64(address, 2)

    def flush(self) -> None:
        """Put the written records in memory, each run of adjacent words at once."""
        run: list[int] = []
        for address in sorted(self._pending):
            if run and address != run[-1] + 8:
                self._write_run(run)
                run = []
            run.append(address)
        if run:
            self._write_run(run)
        self._pending.clear()

    def _write_run(self, addresses: list[int]) -> None:
        words = [self._pending[a] for a in addresses]
        self._oracle.machine.write_va(addresses[0], struct.pack(f"<{len(words)}Q", *words), 2)

    def move_start(self, fp: int) -> None:
        """Hand the unwinder another start fp (x0 of prepare_backtrace)."""
        self._oracle.machine.set_register("x0", fp)
        self.start_fp = fp
