"""The emulated platform: one firmware run on one CPU in Unicorn.

docs/platform.md is the contract this implements: RAM and the image at
their physical addresses (relocated for the run's KASLR offset), the MMIO
page (console, exit, counter, scenario), per-EL address spaces through
Unicorn's virtual TLB, the boot protocol, exception entry to EL2 (modelled
here, see :mod:`pyharness.exceptions`), the isolation check of protected
mode, and instruction/wall-clock budgets. Every way a run can end becomes
a :class:`RunResult`; no Python exception escapes :meth:`Machine.run`.

Typical use::

    image = load_image("build/nvhe-.../vmlinux")
    machine = Machine(image, RunOptions(cpu=1, protected=True, scenario_id=3))

    def on_entry(machine: Machine, link_address: int) -> None:
        caller = machine.register("lr")      # runtime hyp VA of the return

    machine.add_code_hook(image.address_of("__kvm_nvhe_hyp_panic"), on_entry)
    result = machine.run()                   # RunResult, never raises
    assert not machine.foreign_percpu_changes()
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Iterator

from unicorn import (UC_ARCH_ARM64, UC_ERR_EXCEPTION, UC_ERR_OK, UC_HOOK_BLOCK, UC_HOOK_CODE,
                     UC_HOOK_INTR, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_HOOK_TLB_FILL, UC_MEM_FETCH, UC_MEM_WRITE, UC_MODE_ARM,
                     UC_PROT_ALL, UC_TLB_VIRTUAL, Uc, UcError)
from unicorn import arm64_const as A

from . import a64
from .addrspace import AddressSpaces, build_address_spaces
from .errors import HarnessError
from .exceptions import (EC_BRK64, EC_HVC64, EXCP_BKPT, EXCP_HLT, EXCP_HVC, EXCP_SMC, EXCP_SWI,
                         SCR_EL3_NS_HCE_RW, SYSREG_HCR_EL2, SYSREG_SCR_EL3, SYSREG_SPSR_EL2,
                         SYSREG_TPIDR_EL2, current_el, data_abort_esr, enter_el2, esr,
                         exception_name, imm16, is_brk, is_hvc, reset_to_el2, sysreg_read,
                         sysreg_write)
from .image import Image, ImageError

# MMIO page register offsets (docs/platform.md, "Platform MMIO page").
MMIO_CONSOLE = 0x00
MMIO_EXIT = 0x08
MMIO_COUNTER = 0x10
MMIO_SCENARIO = 0x18
MMIO_CONSOLE_LINE = 0x20   # write u64: EL1 VA of a NUL-terminated line
CONSOLE_LINE_MAX = 1024

COUNTER_STEP_NS = 1000  # the counter reads 1000, 2000, ... : 1 us per read

BOOT_FLAG_PROTECTED = 1

# SCR_EL3.APK/API: EL3 lets the lower ELs use the pointer authentication
# key registers and instructions (they trap to EL3 otherwise).
SCR_EL3_APK = 1 << 16
SCR_EL3_API = 1 << 17

HYP_INIT_SYMBOL = "__kvm_nvhe___kvm_hyp_init"
HOST_ENTRY_SYMBOL = "host_entry"
REQUIRED_SYMBOLS = (HYP_INIT_SYMBOL, HOST_ENTRY_SYMBOL, "_text", "_end",
                    "kvm_arm_hyp_stack_pages", "__hyp_percpu_start", "__hyp_percpu_end",
                    "__host_percpu_start", "__host_percpu_end", "__hyp_private_start",
                    "__hyp_private_end")

_WFI = 0xD503207F

CodeHook = Callable[["Machine", int], None]
PreRunHook = Callable[["Machine"], None]
WatchHook = Callable[["Machine", int, int, bool], None]


class MachineError(HarnessError):
    """Bad run options or a misuse of the Machine API (exit 2 from the CLI)."""


class RunStatus(str, Enum):
    EXITED = "exited"                       # the firmware wrote the exit register
    ISOLATION_BREACH = "isolation-breach"   # protected mode: EL1 touched hyp memory
    DID_NOT_FINISH = "did-not-finish"       # instruction budget or wall timeout
    ERROR = "error"                         # an unexpected exception or fault


@dataclass(frozen=True)
class RunOptions:
    """How to run: which CPU boots, the boot mode, the value of the scenario
    register, the KASLR seed, and the two budgets. ``timeout_s`` is wall
    time from the first instruction (setup not included)."""

    cpu: int = 0
    protected: bool = False
    scenario_id: int = 0
    kaslr_seed: int = 0
    max_instructions: int = 5_000_000
    timeout_s: float = 10.0

    @property
    def boot_flags(self) -> int:
        return BOOT_FLAG_PROTECTED if self.protected else 0


@dataclass(frozen=True)
class Breach:
    """An EL1 access to a hyp-private page in protected mode."""

    va: int
    pa: int
    pc: int
    access: str         # "read", "write" or "fetch"
    target: str         # what lives at the address (symbol+off, or the region)
    pc_symbol: str

    def __str__(self) -> str:
        return (f"isolation breach: EL1 {self.access} of hyp-private VA {self.va:#x} "
                f"(PA {self.pa:#x}, {self.target}) at pc {self.pc:#x} ({self.pc_symbol})")


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    exit_code: int | None
    console: list[str]
    instructions: int
    elapsed_ms: float
    reason: str
    kaslr_offset: int
    breach: Breach | None
    registers: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.EXITED and self.exit_code == 0

    def register_dump(self) -> str:
        return format_registers(self.registers)


@dataclass(frozen=True)
class PerCpuChange:
    """Bytes of another CPU's per-CPU copy that differ after the run."""

    side: str           # "hyp" or "host"
    cpu: int
    offset: int         # from the start of that CPU's copy
    length: int
    symbol: str         # the template variable at that offset (symbol+off)

    def __str__(self) -> str:
        return (f"{self.side} per-CPU data of CPU {self.cpu} changed: {self.length} bytes "
                f"at +{self.offset:#x} ({self.symbol})")


@dataclass
class _Outcome:
    status: RunStatus
    reason: str
    exit_code: int | None = None
    breach: Breach | None = None


@dataclass
class _FailedFill:
    va: int
    access: int
    el: int
    breach_pa: int | None  # set when the page exists but is hyp-private


@dataclass
class _Console:
    lines: list[str] = field(default_factory=list)
    partial: bytearray = field(default_factory=bytearray)

    def put(self, byte: int) -> None:
        if byte == 0x0A:
            self.lines.append(self.partial.decode("utf-8", "backslashreplace"))
            self.partial.clear()
        elif byte != 0x0D:
            self.partial.append(byte)

    def text(self) -> list[str]:
        if self.partial:
            return [*self.lines, self.partial.decode("utf-8", "backslashreplace")]
        return list(self.lines)


class _InstructionCounter:
    """Counts executed instructions as the sum of translation-block sizes,
    one callback per block. The callback is registered with the C library
    directly, skipping the binding's wrapper layers: about 0.27 us per block
    instead of 0.75 us (Unicorn 2.1.4, measured). A block cut short by a
    fault or a stop still counts whole, so the count may run a few
    instructions ahead.

    It also enforces the wall-clock budget: every 4096 blocks it reads the
    clock and stops Unicorn past the deadline. (emu_start's own timeout
    starts a thread per call that polls every 2 us, which costs a sixth of
    a core per worker and most of the parallel speed-up.)"""

    CLOCK_EVERY_BLOCKS = 4096

    def __init__(self, uc: Uc) -> None:
        self.bytes = 0
        self.blocks = 0
        self.deadline = float("inf")
        self.timed_out = False
        self._uc = uc
        try:
            from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC, uc_hook_h, uclib

            def on_block(_handle: int, _address: int, size: int, _data: int) -> None:
                self.bytes += size
                self.blocks += 1
                if not self.blocks % self.CLOCK_EVERY_BLOCKS:
                    self._check_clock()

            self._callback = HOOK_CODE_CFUNC(on_block)
            handle = uc_hook_h()
            status = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK,
                                       ctypes.cast(self._callback, ctypes.c_void_p), None,
                                       ctypes.c_uint64(1), ctypes.c_uint64(0))
            if status != UC_ERR_OK:
                raise UcError(status)
        except (ImportError, AttributeError):
            uc.hook_add(UC_HOOK_BLOCK, self._on_block)

    def _on_block(self, _uc: Uc, _address: int, size: int, _data: object) -> None:
        self.bytes += size
        self.blocks += 1
        if not self.blocks % self.CLOCK_EVERY_BLOCKS:
            self._check_clock()

    def _check_clock(self) -> None:
        if time.perf_counter() > self.deadline:
            self.timed_out = True
            self._uc.emu_stop()

    @property
    def count(self) -> int:
        return self.bytes // 4


class Machine:
    """One run of ``image`` with ``options``. Add hooks, then :meth:`run` once."""

    def __init__(self, image: Image, options: RunOptions | None = None) -> None:
        self.image = image
        self.options = options = options or RunOptions()
        self.layout = layout = image.layout
        missing = [name for name in REQUIRED_SYMBOLS if image.find_symbol(name) is None]
        if missing:
            raise ImageError(f"{image.path}: missing symbols the platform contract requires "
                             f"(docs/platform.md): {', '.join(missing)}; build the image from "
                             "this project's sources with `pyharness build`")
        if not 0 <= options.cpu < layout.nr_cpus:
            raise MachineError(f"CPU {options.cpu} does not exist: the image was built with "
                               f"NR_CPUS={layout.nr_cpus}, pick a CPU in 0..{layout.nr_cpus - 1}")
        if options.max_instructions < 1:
            raise MachineError(f"max_instructions must be positive, not "
                               f"{options.max_instructions}")
        if not options.timeout_s > 0:
            raise MachineError(f"timeout_s must be positive, not {options.timeout_s}")
        if not 0 <= options.scenario_id < 1 << 64:
            raise MachineError(f"scenario_id {options.scenario_id} does not fit in the "
                               "64-bit scenario register")
        self.kaslr_offset = image.kaslr_offset(options.kaslr_seed)
        self.spaces: AddressSpaces = build_address_spaces(image, self.kaslr_offset)
        self._percpu = self._percpu_areas()

        self._console = _Console()
        self._outcome: _Outcome | None = None
        self._failed_fill: _FailedFill | None = None
        self._until = 0
        self._counter_reads = 0
        self._read_latch: dict[int, int] = {}
        self._exit_high_pending = False
        self._line_latch = 0
        self._pre_run: list[PreRunHook] = []
        self._percpu_before: dict[tuple[str, int], bytes] | None = None
        self._ran = False

        self.uc = uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        # The "max" CPU: pointer authentication (and BTI) exist; the
        # default model treats paciasp as a NOP and has no key registers.
        uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self._tlb_page = uc.ctl_get_page_size()
        uc.mem_map(layout.phys_ram_base, layout.phys_ram_size, UC_PROT_ALL)
        uc.mmio_map(layout.mmio_phys, layout.page_size, self._on_mmio_read, None,
                    self._on_mmio_write, None)
        uc.hook_add(UC_HOOK_TLB_FILL, self._on_tlb_fill)
        uc.hook_add(UC_HOOK_INTR, self._on_exception)
        self._instructions = _InstructionCounter(uc)

    # -- addresses -------------------------------------------------------

    def runtime_address(self, link_address: int, space: str | None = None) -> int:
        """The VA at which the code or data at ``link_address`` is reached at
        run time: the kernel image VA (link + KASLR offset) for ``space`` =
        "kernel", the hyp alias (PA + HYP_VA_OFFSET) for "hyp". Without
        ``space``, symbols named ``__kvm_nvhe_*`` are hyp, the rest kernel."""
        if not self.image.contains(link_address):
            raise MachineError(f"{link_address:#x} is not inside the image "
                               f"[{self.image.link_base:#x}, {self.image.link_end:#x})")
        if space is None:
            hit = self.image.lookup(link_address)
            space = "hyp" if hit is not None and hit.symbol.is_hyp else "kernel"
        if space == "hyp":
            return self.image.phys_address(link_address) + self.layout.hyp_va_offset
        if space == "kernel":
            return link_address + self.kaslr_offset
        raise MachineError(f"unknown address space {space!r}: use 'hyp' or 'kernel'")

    def link_address(self, va: int, el: int) -> int | None:
        """The link-time image address behind a VA at ``el``, if it maps the image."""
        pa = self.spaces.translate(va, el)
        if pa is None:
            return None
        link = pa - self.layout.image_phys_base + self.image.link_base
        return link if self.image.contains(link) else None

    def describe_va(self, va: int, el: int) -> str:
        link = self.link_address(va, el)
        if link is not None:
            hit = self.image.lookup(link)
            if hit is not None:
                return str(hit)
        region = self.spaces.region_of(va, el)
        return region.name if region is not None else f"unmapped at EL{el}"

    # -- memory ----------------------------------------------------------

    def read_va(self, va: int, size: int, el: int) -> bytes:
        """``size`` bytes at ``va`` as EL ``el`` sees them (RAM only)."""
        out = bytearray()
        for pa, chunk in self._physical_chunks(va, size, el):
            out += self.uc.mem_read(pa, chunk)
        return bytes(out)

    def read_u64(self, va: int, el: int) -> int:
        return int.from_bytes(self.read_va(va, 8, el), "little")

    def write_va(self, va: int, data: bytes, el: int) -> None:
        """Write RAM at ``va`` as EL ``el`` sees it. Code patched this way
        must be written before :meth:`run` (Unicorn keeps translated code)."""
        done = 0
        for pa, chunk in self._physical_chunks(va, len(data), el):
            self.uc.mem_write(pa, bytes(data[done:done + chunk]))
            done += chunk

    def _physical_chunks(self, va: int, size: int, el: int) -> Iterator[tuple[int, int]]:
        page = self.layout.page_size
        while size > 0:
            region = self.spaces.region_of(va, el)
            if region is None or region.mmio:
                what = "MMIO" if region is not None else "not mapped"
                raise MachineError(f"VA {va:#x} is {what} at EL{el}; only RAM can be "
                                   "read or written from the harness")
            chunk = min(size, page - va % page, region.end - va)
            yield region.pa + (va - region.va), chunk
            va += chunk
            size -= chunk

    # -- hooks -----------------------------------------------------------

    def add_code_hook(self, link_address: int, callback: CodeHook, *,
                      space: str | None = None) -> int:
        """Call ``callback(machine, link_address)`` each time the instruction
        at ``link_address`` (translated as in :meth:`runtime_address`) is
        about to run. Costs one callback per execution of that address only.
        Returns the runtime VA hooked. Add hooks before :meth:`run`."""
        self._before_run("add_code_hook")
        va = self.runtime_address(link_address, space)

        def on_code(uc: Uc, _address: int, _size: int, _data: object) -> None:
            if self._outcome is not None:
                return
            try:
                callback(self, link_address)
            except Exception as exc:  # a hook's bug ends this run, not the process
                self._finish(RunStatus.ERROR,
                             f"code hook at {self.image.describe(link_address)} raised "
                             f"{type(exc).__name__}: {exc}")

        self.uc.hook_add(UC_HOOK_CODE, on_code, begin=va, end=va)
        return va

    def add_memory_watch(self, pa: int, size: int, callback: WatchHook, *,
                         reads: bool = False, writes: bool = True) -> None:
        """Call ``callback(machine, pa, size, is_write)`` on each data access
        to the *physical* range [pa, pa + size), through any mapping at any
        EL (under the virtual TLB Unicorn reports data accesses by physical
        address). Costs a callback only when that range is touched. Add
        watches before :meth:`run`."""
        self._before_run("add_memory_watch")
        kinds = (UC_HOOK_MEM_READ if reads else 0) | (UC_HOOK_MEM_WRITE if writes else 0)

        def on_access(uc: Uc, access: int, address: int, length: int, _value: int,
                      _data: object) -> None:
            if self._outcome is not None:
                return
            try:
                callback(self, address, length, access == UC_MEM_WRITE)
            except Exception as exc:  # a watch's bug ends this run, not the process
                self._finish(RunStatus.ERROR, f"memory watch at {address:#x} raised "
                                              f"{type(exc).__name__}: {exc}")

        self.uc.hook_add(kinds, on_access, begin=pa, end=pa + size - 1)

    def add_pre_run(self, callback: PreRunHook) -> None:
        """Call ``callback(machine)`` after the image is loaded and the boot
        registers are set, just before the first instruction."""
        self._before_run("add_pre_run")
        self._pre_run.append(callback)

    def _before_run(self, what: str) -> None:
        if self._ran:
            raise MachineError(f"{what}() after run(): Unicorn only sees hooks added before "
                               "translation starts; create a new Machine")

    # -- the run ---------------------------------------------------------

    def run(self) -> RunResult:
        """Boot the image on the chosen CPU and run it to an outcome."""
        self._before_run("run")
        self._ran = True
        started = time.perf_counter()
        try:
            self._boot()
            for callback in self._pre_run:
                callback(self)
        except Exception as exc:
            self._finish(RunStatus.ERROR, f"setting up the run failed: "
                                          f"{type(exc).__name__}: {exc}")
        self._percpu_before = self._snapshot_percpu()
        if self._outcome is None:
            self._execute()
        assert self._outcome is not None
        outcome = self._outcome
        instructions = self._instructions.count
        if outcome.status is RunStatus.DID_NOT_FINISH:
            instructions = min(instructions, self.options.max_instructions)
        return RunResult(
            status=outcome.status,
            exit_code=outcome.exit_code,
            console=self._console.text(),
            instructions=instructions,
            elapsed_ms=(time.perf_counter() - started) * 1e3,
            reason=outcome.reason,
            kaslr_offset=self.kaslr_offset,
            breach=outcome.breach,
            registers=self.registers(),
        )

    def _boot(self) -> None:
        image, layout, uc = self.image, self.layout, self.uc
        uc.mem_write(layout.image_phys_base, image.memory_image(self.kaslr_offset))
        reset_to_el2(uc)
        sysreg_write(uc, SYSREG_SCR_EL3, SCR_EL3_NS_HCE_RW | SCR_EL3_API | SCR_EL3_APK)
        uc.reg_write(A.UC_ARM64_REG_X0, self.options.cpu)
        uc.reg_write(A.UC_ARM64_REG_X1, self.options.boot_flags)
        uc.reg_write(A.UC_ARM64_REG_X2,
                     self.runtime_address(image.address_of(HOST_ENTRY_SYMBOL), "kernel"))
        uc.reg_write(A.UC_ARM64_REG_X3, image.phys_address(image.address_of("_text")))
        uc.reg_write(A.UC_ARM64_REG_PC,
                     self.runtime_address(image.address_of(HYP_INIT_SYMBOL), "hyp"))

    def _execute(self) -> None:
        uc, options = self.uc, self.options
        deadline = time.perf_counter() + options.timeout_s
        self._instructions.deadline = deadline
        while self._outcome is None:
            budget_left = options.max_instructions - self._instructions.count
            time_left = deadline - time.perf_counter()
            if budget_left <= 0 or time_left <= 0:
                self._did_not_finish(budget_left <= 0)
                break
            pc = uc.reg_read(A.UC_ARM64_REG_PC)
            counted = self._instructions.count
            self._failed_fill = None
            self._until = self._unreachable_exit()
            error: UcError | None = None
            try:
                # Always with a count: a Unicorn instance that once ran
                # without one ignores later counts (2.1.4).
                uc.emu_start(pc, self._until, count=budget_left)
            except UcError as exc:
                error = exc
            except Exception as exc:  # raised by a hook, re-raised by the binding
                if self._outcome is None:
                    self._finish(RunStatus.ERROR, f"internal error at pc {self._pc_text()}: "
                                                  f"{type(exc).__name__}: {exc}")
            if self._outcome is not None:
                break
            if self._failed_fill is not None:
                self._handle_failed_fill(self._failed_fill)
            elif error is not None and error.errno != UC_ERR_EXCEPTION:
                self._finish(RunStatus.ERROR, f"Unicorn stopped: {error} at pc "
                                              f"{self._pc_text()}")
            elif self._instructions.count - counted >= budget_left:
                self._did_not_finish(True)
            elif self._instructions.timed_out or time.perf_counter() >= deadline:
                self._did_not_finish(False)
            else:
                # Also a UC_ERR_EXCEPTION without a failed access: Unicorn
                # failing to translate `until` at the EL where it stopped.
                self._stopped_without_cause()

    def _unreachable_exit(self) -> int:
        """emu_start's ``until``: the last word of RAM, which nothing runs.
        Unicorn translates it at start, so it must be mapped at the current
        EL, or the run ends in a spurious exception."""
        el = current_el(self.uc.reg_read(A.UC_ARM64_REG_PSTATE))
        last = self.layout.phys_ram_size - 4
        if el >= 2:
            return self.layout.phys_ram_base + self.layout.hyp_va_offset + last
        return self.layout.page_offset + last

    def _did_not_finish(self, budget: bool) -> None:
        n = min(self._instructions.count, self.options.max_instructions)
        cause = (f"instruction budget of {self.options.max_instructions} used up" if budget
                 else f"wall timeout of {self.options.timeout_s:g} s")
        self._finish(RunStatus.DID_NOT_FINISH,
                     f"did not finish after {n} instructions at PC {self._pc_text()} ({cause})")

    def _stopped_without_cause(self) -> None:
        pc = self.uc.reg_read(A.UC_ARM64_REG_PC)
        el = self._el()
        for where in (pc - 4, pc):
            if self._instruction_at(where, el) == _WFI:
                self._halted_in_wfi(where, el)
                return
        self._finish(RunStatus.ERROR, f"emulation stopped unexpectedly at pc {self._pc_text()}")

    def _halted_in_wfi(self, pc: int, el: int) -> None:
        self._finish(RunStatus.ERROR, f"the CPU halted in WFI at EL{el}, pc {pc:#x} "
                                      f"({self.describe_va(pc, el)}), without writing the "
                                      "exit register")

    def _finish(self, status: RunStatus, reason: str, *, exit_code: int | None = None,
                breach: Breach | None = None) -> None:
        """Record the run's outcome (the first one wins) and stop Unicorn."""
        if self._outcome is None:
            self._outcome = _Outcome(status, reason, exit_code, breach)
        self.uc.emu_stop()

    # -- Unicorn callbacks -----------------------------------------------

    def _on_tlb_fill(self, uc: Uc, va: int, access: int, entry, _data: object) -> bool:
        el = current_el(uc.reg_read(A.UC_ARM64_REG_PSTATE))
        pa = self.spaces.translate(va, el)
        if pa is None:
            if va // self._tlb_page == self._until // self._tlb_page:
                return False  # Unicorn probing emu_start's `until`, not an access
            if self._failed_fill is None:
                self._failed_fill = _FailedFill(va, access, el, None)
            return False
        if el < 2 and self.options.protected and self.spaces.is_hyp_private(pa):
            if self._failed_fill is None:
                self._failed_fill = _FailedFill(va, access, el, pa)
            return False
        entry.paddr = pa
        entry.perms = UC_PROT_ALL
        return True

    def _on_exception(self, uc: Uc, number: int, _data: object) -> None:
        if self._outcome is not None:
            uc.emu_stop()
            return
        try:
            pc = uc.reg_read(A.UC_ARM64_REG_PC)
            el = self._el()
            if number == EXCP_HVC and el == 1:
                insn = self._instruction_at(pc - 4, el)
                if insn is not None and is_hvc(insn):
                    enter_el2(uc, esr_value=esr(EC_HVC64, imm16(insn)), elr=pc)
                    return
            elif number == EXCP_BKPT and el == 2:
                insn = self._instruction_at(pc, el)
                if insn is not None and is_brk(insn):
                    enter_el2(uc, esr_value=esr(EC_BRK64, imm16(insn)), elr=pc)
                    return
            if number == EXCP_HLT:
                self._halted_in_wfi(pc - 4 if self._instruction_at(pc - 4, el) == _WFI else pc,
                                    el)
                return
            # HVC, SVC and SMC report the pc after the instruction.
            where = pc - 4 if number in (EXCP_HVC, EXCP_SWI, EXCP_SMC) else pc
            self._finish(RunStatus.ERROR, f"unexpected exception at EL{el}: "
                                          f"{exception_name(number)} at "
                                          f"pc {where:#x} ({self.describe_va(where, el)})")
        except Exception as exc:
            self._finish(RunStatus.ERROR, f"internal error modelling {exception_name(number)}:"
                                          f" {type(exc).__name__}: {exc}")

    # The MMIO registers are 64-bit. Unicorn splits an 8-byte access into
    # two 4-byte ones, low half first; a read latches the whole value at the
    # low half (so the counter advances once) and the high half reads the
    # latch; an exit value is taken at the low half and completed by the high.

    def _on_mmio_read(self, uc: Uc, offset: int, size: int, _data: object) -> int:
        if self._outcome is not None:
            return 0
        reg, half = offset & ~7, offset & 7
        if half == 0 and reg in (MMIO_COUNTER, MMIO_SCENARIO):
            if reg == MMIO_COUNTER:
                self._counter_reads += 1
                value = self._counter_reads * COUNTER_STEP_NS
            else:
                value = self.options.scenario_id
            self._read_latch[reg] = value
            return value & ((1 << 8 * size) - 1)
        if half == 4 and size == 4 and reg in self._read_latch:
            return self._read_latch[reg] >> 32
        self._finish(RunStatus.ERROR, f"read of {size} bytes at MMIO offset {offset:#x}, "
                                      "which is not a readable register, at pc "
                                      f"{self._pc_text()}")
        return 0

    def _on_mmio_write(self, uc: Uc, offset: int, size: int, value: int,
                       _data: object) -> None:
        reg, half = offset & ~7, offset & 7
        outcome = self._outcome
        if reg == MMIO_EXIT and half == 4 and size == 4 and self._exit_high_pending:
            assert outcome is not None and outcome.exit_code is not None
            outcome.exit_code |= value << 32
            outcome.reason = f"exited with status {outcome.exit_code}"
            self._exit_high_pending = False
            return
        if outcome is not None:
            return
        if reg == MMIO_CONSOLE and half in (0, 4):
            if half == 0:
                self._console.put(value & 0xFF)
        elif reg == MMIO_CONSOLE_LINE and half == 0:
            if size == 8:
                self._console_line(value)
            else:
                self._line_latch = value
        elif reg == MMIO_CONSOLE_LINE and half == 4 and size == 4:
            self._console_line(self._line_latch | value << 32)
        elif reg == MMIO_EXIT and half == 0:
            self._finish(RunStatus.EXITED, f"exited with status {value}", exit_code=value)
            self._exit_high_pending = size == 4
        else:
            self._finish(RunStatus.ERROR, f"write of {size} bytes at MMIO offset {offset:#x}, "
                                          "which is not a writable register, at pc "
                                          f"{self._pc_text()}")

    def _console_line(self, va: int) -> None:
        """One whole console line, read from the host's memory at ``va``:
        one MMIO exit per line rather than per character."""
        text = bytearray()
        while len(text) < CONSOLE_LINE_MAX:
            chunk_len = min(256, 0x400 - (va + len(text)) % 0x400)
            try:
                chunk = self.read_va(va + len(text), chunk_len, 1)
            except HarnessError as err:
                self._finish(RunStatus.ERROR, f"console line at {va:#x} is not readable "
                                              f"at EL1 ({err})")
                return
            end = chunk.find(0)
            if end >= 0:
                text += chunk[:end]
                break
            text += chunk
        self._console.lines.append(text.decode("utf-8", "backslashreplace"))

    # -- faults ----------------------------------------------------------

    def _handle_failed_fill(self, fault: _FailedFill) -> None:
        """A translation failed and Unicorn stopped at the faulting
        instruction with the registers as before it."""
        uc = self.uc
        pc = uc.reg_read(A.UC_ARM64_REG_PC)
        el = fault.el
        access = {UC_MEM_WRITE: "write", UC_MEM_FETCH: "fetch"}.get(fault.access, "read")
        span = None
        if fault.access != UC_MEM_FETCH:
            insn = self._instruction_at(pc, el)
            if insn is not None:
                span = a64.data_access(insn, self._register_for_decode, pc)
        if fault.breach_pa is not None:
            va = self._first_byte(span, el, self._is_private_va) if span else fault.va
            pa = self.spaces.translate(va, el)
            breach = Breach(va, pa if pa is not None else fault.breach_pa, pc, access,
                            self._describe_target(va, el), self.describe_va(pc, el))
            self._finish(RunStatus.ISOLATION_BREACH, str(breach), breach=breach)
        elif fault.access == UC_MEM_FETCH:
            self._finish(RunStatus.ERROR, f"EL{el} instruction fetch from unmapped VA "
                                          f"{fault.va:#x} (pc {pc:#x})")
        elif el >= 2:
            far = self._first_byte(span, el, self._is_unmapped_va) if span else fault.va
            enter_el2(uc, esr_value=data_abort_esr(fault.access == UC_MEM_WRITE), elr=pc,
                      far=far)
        else:
            va = self._first_byte(span, el, self._is_unmapped_va) if span else fault.va
            self._finish(RunStatus.ERROR, f"EL{el} data abort: {access} of unmapped VA {va:#x} "
                                          f"at pc {pc:#x} ({self.describe_va(pc, el)})")

    def _first_byte(self, span: tuple[int, int], el: int,
                    faulting: Callable[[int, int], bool]) -> int:
        address, size = span
        page = self.layout.page_size
        probe = address
        while probe < address + size:
            if faulting(probe, el):
                return probe
            probe = (probe // page + 1) * page
        return address

    def _is_unmapped_va(self, va: int, el: int) -> bool:
        return self.spaces.translate(va, el) is None

    def _is_private_va(self, va: int, el: int) -> bool:
        pa = self.spaces.translate(va, el)
        return pa is not None and self.spaces.is_hyp_private(pa)

    def _describe_target(self, va: int, el: int) -> str:
        pa = self.spaces.translate(va, el)
        if pa is not None:
            stacks = self.image.phys_address(self.image.address_of("kvm_arm_hyp_stack_pages"))
            page = self.layout.page_size
            if stacks <= pa < stacks + self.layout.nr_cpus * page:
                return f"hyp stack page of CPU {(pa - stacks) // page}"
        return self.describe_va(va, el)

    def _register_for_decode(self, n: int) -> int:
        if n == 31:
            return self.uc.reg_read(A.UC_ARM64_REG_SP)
        return self.uc.reg_read(_GPR_IDS[n])

    def _instruction_at(self, va: int, el: int) -> int | None:
        pa = self.spaces.translate(va, el)
        region = self.spaces.region_of(va, el)
        if pa is None or region is None or region.mmio:
            return None
        return int.from_bytes(self.uc.mem_read(pa, 4), "little")

    def _el(self) -> int:
        return current_el(self.uc.reg_read(A.UC_ARM64_REG_PSTATE))

    def _pc_text(self) -> str:
        pc = self.uc.reg_read(A.UC_ARM64_REG_PC)
        return f"{pc:#x} ({self.describe_va(pc, self._el())})"

    # -- per-CPU data ----------------------------------------------------

    def _percpu_areas(self) -> list[tuple[str, int, int]]:
        """(side, start, stride) of the hyp and host per-CPU areas."""
        return [(side, *self.image.percpu_area(side)) for side in ("hyp", "host")]

    def _snapshot_percpu(self) -> dict[tuple[str, int], bytes]:
        snapshot = {}
        for side, start, stride in self._percpu:
            for cpu in range(self.layout.nr_cpus):
                if cpu != self.options.cpu:
                    pa = self.image.phys_address(start + cpu * stride)
                    snapshot[side, cpu] = bytes(self.uc.mem_read(pa, stride))
        return snapshot

    def foreign_percpu_changes(self) -> list[PerCpuChange]:
        """Every run of changed bytes in the per-CPU copies (hyp and host) of
        the CPUs other than the one that ran, compared with just before the
        first instruction. Empty when they are byte-identical."""
        if self._percpu_before is None:
            raise MachineError("foreign_percpu_changes() before run()")
        changes = []
        after = self._snapshot_percpu()
        starts = {side: start for side, start, _ in self._percpu}
        for (side, cpu), before in self._percpu_before.items():
            now = after[side, cpu]
            i = 0
            while i < len(before):
                if before[i] == now[i]:
                    i += 1
                    continue
                j = i
                while j < len(before) and before[j] != now[j]:
                    j += 1
                changes.append(PerCpuChange(side, cpu, i, j - i,
                                            self.image.describe(starts[side] + i)))
                i = j
        return changes

    # -- registers -------------------------------------------------------

    def register(self, name: str) -> int:
        """One register now, cheaply: ``x0``..``x30``, ``fp``, ``lr``, ``sp``,
        ``pc`` or ``pstate`` (for hooks; :meth:`registers` reads them all)."""
        reg = _REGISTER_IDS.get(name)
        if reg is None:
            raise MachineError(f"unknown register {name!r}; use x0..x30, fp, lr, sp, pc "
                               "or pstate")
        return self.uc.reg_read(reg)

    def registers(self) -> dict[str, int]:
        """The CPU's registers now: x0..x30, sp, pc, pstate, el and the EL1/EL2
        system registers a post-mortem needs. Banked SPs are shown as the
        CPU would (the live SP in its own bank)."""
        uc = self.uc
        regs = {f"x{n}": uc.reg_read(reg) for n, reg in enumerate(_GPR_IDS)}
        pstate = uc.reg_read(A.UC_ARM64_REG_PSTATE)
        regs.update(sp=uc.reg_read(A.UC_ARM64_REG_SP), pc=uc.reg_read(A.UC_ARM64_REG_PC),
                    pstate=pstate, el=current_el(pstate))
        for name, reg in _SYSREG_IDS.items():
            regs[name] = uc.reg_read(reg)
        for name, encoding in (("spsr_el2", SYSREG_SPSR_EL2), ("hcr_el2", SYSREG_HCR_EL2),
                               ("tpidr_el2", SYSREG_TPIDR_EL2)):
            try:
                regs[name] = sysreg_read(uc, encoding)
            except UcError:
                pass
        live_bank = (f"sp_el{current_el(pstate)}" if pstate & 1 else "sp_el0")
        regs[live_bank] = regs["sp"]
        return regs


_GPR_IDS = tuple([A.UC_ARM64_REG_X0 + n for n in range(29)]
                 + [A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30])

_REGISTER_IDS = {
    **{f"x{n}": reg for n, reg in enumerate(_GPR_IDS)},
    "fp": A.UC_ARM64_REG_X29, "lr": A.UC_ARM64_REG_X30, "sp": A.UC_ARM64_REG_SP,
    "pc": A.UC_ARM64_REG_PC, "pstate": A.UC_ARM64_REG_PSTATE,
}

_SYSREG_IDS = {
    "elr_el2": A.UC_ARM64_REG_ELR_EL2, "esr_el2": A.UC_ARM64_REG_ESR_EL2,
    "far_el2": A.UC_ARM64_REG_FAR_EL2, "vbar_el2": A.UC_ARM64_REG_VBAR_EL2,
    "sp_el0": A.UC_ARM64_REG_SP_EL0, "sp_el1": A.UC_ARM64_REG_SP_EL1,
    "sp_el2": A.UC_ARM64_REG_SP_EL2, "elr_el1": A.UC_ARM64_REG_ELR_EL1,
    "esr_el1": A.UC_ARM64_REG_ESR_EL1, "far_el1": A.UC_ARM64_REG_FAR_EL1,
    "vbar_el1": A.UC_ARM64_REG_VBAR_EL1, "tpidr_el1": A.UC_ARM64_REG_TPIDR_EL1,
}


def format_registers(regs: dict[str, int]) -> str:
    """A register dump, four registers a line."""
    names = [f"x{n}" for n in range(31)] + ["sp", "pc", "pstate", "el"]
    names += [name for name in regs if name not in names]
    cells = [f"{name:>9} {regs[name]:016x}" for name in names if name in regs]
    return "\n".join("".join(cells[i:i + 4]) for i in range(0, len(cells), 4))
