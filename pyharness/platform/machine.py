"""The emulated platform: one firmware run on one CPU in Unicorn.

docs/platform.md is the contract this implements: RAM and the relocated
image, per-EL address spaces through Unicorn's virtual TLB, the boot
protocol and the run loop. Every way a run can end becomes a
:class:`~pyharness.platform.results.RunResult`; no Python exception
escapes :meth:`Machine.run`. The pieces: ``mmio`` (devices), ``traps`` and
``el2_entry`` (exceptions), ``aborts`` (failed translations, isolation),
``percpu`` (other CPUs' data), ``budget`` (instructions and time).

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

import time
from typing import Callable

from unicorn import (UC_ARCH_ARM64, UC_ERR_EXCEPTION, UC_HOOK_CODE, UC_HOOK_INTR,
                     UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_HOOK_TLB_FILL, UC_MEM_WRITE,
                     UC_MODE_ARM, UC_PROT_ALL, UC_TLB_VIRTUAL, Uc, UcError)
from unicorn import arm64_const as A

from pyharness.elf.image import Image, ImageError
from pyharness.platform import aborts
from pyharness.platform.addrspace import AddressSpaces, build_address_spaces
from pyharness.platform.budget import InstructionCounter
from pyharness.platform import traps
from pyharness.platform.el2_entry import current_el, reset_to_el2
from pyharness.platform.geometry import HYP_STACK_PAGES, StackGeometry, stack_geometry
from pyharness.platform.mmio import MmioDevices
from pyharness.platform.percpu import PerCpuSnapshot
from pyharness.platform.registers import GPR_IDS, RegisterAccess
from pyharness.platform.results import (Breach, MachineError, PerCpuChange, RunOptions,
                                        RunResult, RunStatus)

HYP_INIT_SYMBOL = "__kvm_nvhe___kvm_hyp_init"
HOST_ENTRY_SYMBOL = "host_entry"
REQUIRED_SYMBOLS = (HYP_INIT_SYMBOL, HOST_ENTRY_SYMBOL, "_text", "_end",
                    HYP_STACK_PAGES, "__hyp_percpu_start", "__hyp_percpu_end",
                    "__host_percpu_start", "__host_percpu_end", "__hyp_private_start",
                    "__hyp_private_end")

CodeHook = Callable[["Machine", int], None]
PreRunHook = Callable[["Machine"], None]
WatchHook = Callable[["Machine", int, int, bool], None]


class _Outcome:
    """How the run ended; the first outcome recorded wins."""

    def __init__(self, status: RunStatus, reason: str, exit_code: int | None,
                 breach: Breach | None) -> None:
        self.status, self.reason, self.exit_code, self.breach = status, reason, exit_code, breach


class Machine(RegisterAccess):
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
        if not 0 <= options.scenario_id < 1 << 64:
            raise MachineError(f"scenario_id {options.scenario_id} does not fit in the "
                               "64-bit scenario register")
        self.kaslr_offset = image.kaslr_offset(options.kaslr_seed)
        self.geometry: StackGeometry = stack_geometry(image)
        self.spaces: AddressSpaces = build_address_spaces(image, self.kaslr_offset)
        self._percpu = PerCpuSnapshot(image, options.cpu)
        self._devices = MmioDevices(self, options.scenario_id)

        self._outcome: _Outcome | None = None
        self._failed_fill: aborts.FailedFill | None = None
        self._until = 0
        self._pre_run: list[PreRunHook] = []
        self._ran = False

        self.uc = uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        # The "max" CPU: pointer authentication (and BTI) exist; the
        # default model treats paciasp as a NOP and has no key registers.
        uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self._tlb_page = uc.ctl_get_page_size()
        uc.mem_map(layout.phys_ram_base, layout.phys_ram_size, UC_PROT_ALL)
        uc.mmio_map(layout.mmio_phys, layout.page_size, self._devices.on_read, None,
                    self._devices.on_write, None)
        uc.hook_add(UC_HOOK_TLB_FILL, self._on_tlb_fill)
        uc.hook_add(UC_HOOK_INTR, self._on_exception)
        self._instructions = InstructionCounter(uc)

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
        for pa, chunk in self.spaces.physical_chunks(va, size, el, self.layout.page_size):
            out += self.uc.mem_read(pa, chunk)
        return bytes(out)

    def read_u64(self, va: int, el: int) -> int:
        return int.from_bytes(self.read_va(va, 8, el), "little")

    def write_va(self, va: int, data: bytes, el: int) -> None:
        """Write RAM at ``va`` as EL ``el`` sees it. Code patched this way
        must be written before :meth:`run` (Unicorn keeps translated code)."""
        done = 0
        for pa, chunk in self.spaces.physical_chunks(va, len(data), el, self.layout.page_size):
            self.uc.mem_write(pa, bytes(data[done:done + chunk]))
            done += chunk

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
                self.finish(RunStatus.ERROR,
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
                self.finish(RunStatus.ERROR, f"memory watch at {address:#x} raised "
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
            self.finish(RunStatus.ERROR, f"setting up the run failed: "
                                          f"{type(exc).__name__}: {exc}")
        self._percpu.take(self.uc)
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
            console=self._devices.console.text(),
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
                    self.finish(RunStatus.ERROR, f"internal error at pc {self.pc_text()}: "
                                                  f"{type(exc).__name__}: {exc}")
            if self._outcome is not None:
                break
            if self._failed_fill is not None:
                aborts.deliver(self, self._failed_fill)
            elif error is not None and error.errno != UC_ERR_EXCEPTION:
                self.finish(RunStatus.ERROR, f"Unicorn stopped: {error} at pc "
                                              f"{self.pc_text()}")
            elif self._instructions.count - counted >= budget_left:
                self._did_not_finish(True)
            elif self._instructions.timed_out or time.perf_counter() >= deadline:
                self._did_not_finish(False)
            else:
                # Also a UC_ERR_EXCEPTION without a failed access: Unicorn
                # failing to translate `until` at the EL where it stopped.
                traps.stopped_without_cause(self)

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
        self.finish(RunStatus.DID_NOT_FINISH,
                     f"did not finish after {n} instructions at PC {self.pc_text()} ({cause})")

    def finish(self, status: RunStatus, reason: str, *, exit_code: int | None = None,
               breach: Breach | None = None) -> None:
        """Record the run's outcome (the first one wins) and stop Unicorn."""
        if self._outcome is None:
            self._outcome = _Outcome(status, reason, exit_code, breach)
        self.uc.emu_stop()

    @property
    def finished(self) -> bool:
        return self._outcome is not None

    def complete_exit(self, high_bits: int) -> None:
        """The high half of a 64-bit exit status written as two 32-bit halves."""
        outcome = self._outcome
        assert outcome is not None and outcome.exit_code is not None
        outcome.exit_code |= high_bits
        outcome.reason = f"exited with status {outcome.exit_code}"

    # -- Unicorn callbacks -----------------------------------------------

    def _on_tlb_fill(self, uc: Uc, va: int, access: int, entry, _data: object) -> bool:
        el = current_el(uc.reg_read(A.UC_ARM64_REG_PSTATE))
        pa = self.spaces.translate(va, el)
        if pa is None:
            if va // self._tlb_page == self._until // self._tlb_page:
                return False  # Unicorn probing emu_start's `until`, not an access
            if self._failed_fill is None:
                self._failed_fill = aborts.FailedFill(va, access, el, None)
            return False
        if el < 2 and self.options.protected and self.spaces.is_hyp_private(pa):
            if self._failed_fill is None:
                self._failed_fill = aborts.FailedFill(va, access, el, pa)
            return False
        entry.paddr = pa
        entry.perms = UC_PROT_ALL
        return True

    def _on_exception(self, uc: Uc, number: int, _data: object) -> None:
        if self._outcome is not None:
            uc.emu_stop()
            return
        traps.take_exception(self, number)

    def gpr(self, n: int) -> int:
        """General register n (31 = SP), for instruction decoding."""
        if n == 31:
            return self.uc.reg_read(A.UC_ARM64_REG_SP)
        return self.uc.reg_read(GPR_IDS[n])

    def instruction_at(self, va: int, el: int) -> int | None:
        pa = self.spaces.translate(va, el)
        region = self.spaces.region_of(va, el)
        if pa is None or region is None or region.mmio:
            return None
        return int.from_bytes(self.uc.mem_read(pa, 4), "little")

    def current_el(self) -> int:
        return current_el(self.uc.reg_read(A.UC_ARM64_REG_PSTATE))

    def pc_text(self) -> str:
        pc = self.uc.reg_read(A.UC_ARM64_REG_PC)
        return f"{pc:#x} ({self.describe_va(pc, self.current_el())})"

    # -- per-CPU data ----------------------------------------------------

    def foreign_percpu_changes(self) -> list[PerCpuChange]:
        """Every run of changed bytes in the per-CPU copies (hyp and host) of
        the CPUs other than the one that ran, compared with just before the
        first instruction. Empty when they are byte-identical."""
        if not self._percpu.taken:
            raise MachineError("foreign_percpu_changes() before run()")
        return self._percpu.changes(self.uc)
