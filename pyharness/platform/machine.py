"""The emulated platform: one firmware run on one CPU in Unicorn.

docs/platform.md is the contract this implements: RAM and the relocated
image, per-EL address spaces through Unicorn's virtual TLB, the boot
protocol and the run loop. Every way a run can end becomes a
:class:`~pyharness.platform.results.RunResult`; no Python exception
escapes :meth:`Machine.run`. The pieces: ``mmio`` (devices), ``traps`` and
``el2_entry`` (exceptions), ``aborts`` (failed translations, isolation),
``percpu`` (other CPUs' data), ``budget`` (instructions and time),
``instance`` (the Unicorn instance, RAM and its reuse), ``observers``
(code hooks, frame records, watches) over ``native`` (the hot callbacks,
in C when the helper library is built).

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

from unicorn import UC_ERR_EXCEPTION, UC_PROT_ALL, Uc, UcError
from unicorn import arm64_const as A

from pyharness.elf.image import Image, ImageError
from pyharness.platform import aborts, instance
from pyharness.platform.addrspace import AddressSpaces, build_address_spaces
from pyharness.platform.budget import RunBudget, Stop
from pyharness.platform import traps
from pyharness.platform.el2_entry import current_el, reset_to_el2
from pyharness.platform.geometry import HYP_STACK_PAGES, StackGeometry, stack_geometry
from pyharness.platform.mmio import MmioDevices
from pyharness.platform.observers import ObserverHooks
from pyharness.platform.percpu import PerCpuSnapshot
from pyharness.platform.registers import RegisterAccess
from pyharness.platform.results import (Breach, MachineError, PerCpuChange, RunOptions,
                                        RunResult, RunStatus)
from pyharness.platform.runaway import chain_memory, console_bounds, runaway_reason, stopped_at

# Far more exceptions than any scenario takes (two, across `matrix --all`):
# the firmware loops through its vectors (a fault in a handler faulting
# again), a hang. Ended here, not by the wall timeout: a loop of aborts,
# each a trip out of the emulator, runs at about 300K instructions/s.
EXCEPTION_LOOP_LIMIT = 1000

HYP_INIT_SYMBOL = "__kvm_nvhe___kvm_hyp_init"
HOST_ENTRY_SYMBOL = "host_entry"
REQUIRED_SYMBOLS = (HYP_INIT_SYMBOL, HOST_ENTRY_SYMBOL, "_text", "_end",
                    HYP_STACK_PAGES, "__hyp_percpu_start", "__hyp_percpu_end",
                    "__host_percpu_start", "__host_percpu_end", "__hyp_private_start",
                    "__hyp_private_end")

PreRunHook = Callable[["Machine"], None]


class _Outcome:
    """How the run ended; the first outcome recorded wins."""

    def __init__(self, status: RunStatus, reason: str, exit_code: int | None,
                 breach: Breach | None) -> None:
        self.status, self.reason, self.exit_code, self.breach = status, reason, exit_code, breach


class Machine(ObserverHooks, RegisterAccess):
    """One run of ``image`` with ``options``. Add hooks, then :meth:`run` once."""

    def __init__(self, image: Image, options: RunOptions | None = None, *,
                 reuse: bool | None = None) -> None:
        """``reuse``: take a released Unicorn instance of the same image, if
        this process has one, and give it back with :meth:`release` (default:
        on unless ``$PYHARNESS_REUSE=0``). Without reuse each Machine has its own."""
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

        self._outcome: _Outcome | None = None
        self._failed_fill: aborts.FailedFill | None = None
        self._exceptions = 0   # delivered (or about to be) this run
        self._until = 0
        self._pre_run: list[PreRunHook] = []
        self._ran = False
        self._read_watch_pages: set[int] = set()   # see ObserverHooks.watch_reads
        self._arm_reads = False

        self._reusable = instance.reuse_enabled() if reuse is None else reuse
        self._platform = platform = instance.take(image, self._reusable)
        self.console_bounds = console_bounds(self.geometry)
        self._devices = MmioDevices(self, options.scenario_id, platform.mmio_fast,
                                    self.console_bounds, chain_memory(
                                        self.geometry, options.cpu, options.protected))
        platform.attach(tlb_fill=self._on_tlb_fill, exception=self._on_exception,
                        mmio_read=self._devices.on_read, mmio_write=self._devices.on_write)
        self.uc = platform.uc
        self._tlb_page = platform.tlb_page
        self._hooks = platform.hooks
        self._budget = RunBudget(self.uc, self._hooks, options.max_instructions,
                                 options.timeout_s)

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

    def ram_span(self, va: int, size: int, el: int) -> tuple[int, int]:
        """For a buffer read many times (the console's): ``va`` translated
        once. Returns its PA and how many bytes from ``va``, up to ``size``,
        its RAM region holds."""
        region = self.spaces.region_of(va, el)
        if region is None or region.mmio:
            raise MachineError(f"VA {va:#x} is {'MMIO' if region else 'not mapped'} at EL{el}")
        return region.pa + (va - region.va), min(size, region.end - va)

    def read_ram(self, pa: int, size: int) -> bytes:
        """RAM at ``pa`` as the CPU left it."""
        return self._platform.read_ram(pa, size)

    def read_u64(self, va: int, el: int) -> int:
        return int.from_bytes(self.read_va(va, 8, el), "little")

    def write_va(self, va: int, data: bytes, el: int) -> None:
        """Write RAM at ``va`` as EL ``el`` sees it. Code patched this way
        must be written before :meth:`run` (Unicorn keeps translated code)."""
        done = 0
        for pa, chunk in self.spaces.physical_chunks(va, len(data), el, self.layout.page_size):
            self._platform.note_touched(pa)
            self.uc.mem_write(pa, bytes(data[done:done + chunk]))
            done += chunk

    # -- hooks -----------------------------------------------------------

    def add_pre_run(self, callback: PreRunHook) -> None:
        """Call ``callback(machine)`` after the image is loaded and the boot
        registers are set, just before the first instruction."""
        self._before_run("add_pre_run")
        self._pre_run.append(callback)

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
        self._platform.flush_if_pending()   # a reused instance's hooks changed
        tlb_fast = self._platform.tlb_fast
        if tlb_fast is not None:
            tlb_fast.set_run([(r.va, r.size, r.pa) for r in self.spaces.el1],
                             [(r.va, r.size, r.pa) for r in self.spaces.el2],
                             self.spaces.hyp_private, self.options.protected)
            tlb_fast.set_watch_pages(self._read_watch_pages)
        if self._outcome is None:
            self._execute()
        assert self._outcome is not None
        outcome = self._outcome
        instructions = self._budget.count
        self._platform.runs += 1
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

    def release(self) -> None:
        """Done with this machine: with reuse, its Unicorn instance goes back
        to the process's pool for the next Machine of the same image. The
        machine must not be used after."""
        platform, self._platform = self._platform, None
        self.uc = None
        # Not after a budget stop: Unicorn 2.1.4 deletes the instruction-count
        # hook of the exact last stretch at the next emu_start, and a reused
        # instance with Python hooks then resumed at the old pc (test_reuse).
        if platform is not None and self._reusable and self._ran \
                and not self._budget.ended_exactly:
            instance.give_back(platform)

    def _boot(self) -> None:
        image, layout, uc = self.image, self.layout, self.uc
        self._platform.load(layout.image_phys_base, image.memory_image(self.kaslr_offset))
        reset_to_el2(uc)
        uc.reg_write(A.UC_ARM64_REG_X0, self.options.cpu)
        uc.reg_write(A.UC_ARM64_REG_X1, self.options.boot_flags)
        uc.reg_write(A.UC_ARM64_REG_X2,
                     self.runtime_address(image.address_of(HOST_ENTRY_SYMBOL), "kernel"))
        uc.reg_write(A.UC_ARM64_REG_X3, image.phys_address(image.address_of("_text")))
        uc.reg_write(A.UC_ARM64_REG_PC,
                     self.runtime_address(image.address_of(HYP_INIT_SYMBOL), "hyp"))

    def _execute(self) -> None:
        """Run to an outcome, in stretches of emu_start: the budget is kept
        by the block hook and, at the end, exactly (platform/budget.py)."""
        uc, budget = self.uc, self._budget
        budget.start()
        while self._outcome is None:
            used_up = budget.used_up()
            if used_up is not None:
                self._did_not_finish(used_up is Stop.BUDGET)
                break
            pc = uc.reg_read(A.UC_ARM64_REG_PC)
            self._failed_fill = None
            self._arm_reads = False
            self._until = self._unreachable_exit()
            error: UcError | None = None
            try:
                uc.emu_start(pc, self._until, count=budget.begin_stretch())
            except UcError as exc:
                error = exc
            except Exception as exc:  # raised by a hook, re-raised by the binding
                if self._outcome is None:
                    self.finish(RunStatus.ERROR, f"internal error at pc {self.pc_text()}: "
                                                  f"{type(exc).__name__}: {exc}")
            if self._outcome is not None:
                break
            if self._arm_reads:
                # A page of a read watch was about to be mapped: install the
                # watches, retranslate, and run the access again.
                self._read_watch_pages.clear()
                if self._platform.tlb_fast is not None:
                    self._platform.tlb_fast.set_watch_pages(())
                self._hooks.arm_deferred()
                uc.ctl_flush_tb()
            elif self._failed_fill is not None:
                if not self._exception_loop():
                    aborts.deliver(self, self._failed_fill)
            elif error is not None and error.errno != UC_ERR_EXCEPTION:
                self.finish(RunStatus.ERROR, f"Unicorn stopped: {error} at pc "
                                              f"{self.pc_text()}")
            else:
                stop = budget.after_stretch()
                if stop in (Stop.BUDGET, Stop.DEADLINE):
                    self._did_not_finish(stop is Stop.BUDGET)
                elif stop is Stop.CONSOLE:
                    self.console_runaway()
                elif stop is Stop.NOT_THE_BUDGET:
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

    def _exception_loop(self) -> bool:
        """Count one more exception for the platform to model; past
        EXCEPTION_LOOP_LIMIT end the run as a hang instead, and say so."""
        self._exceptions += 1
        if self._exceptions <= EXCEPTION_LOOP_LIMIT:
            return False
        self.finish(RunStatus.DID_NOT_FINISH,
                    f"did not finish: {EXCEPTION_LOOP_LIMIT} exceptions taken, the last at "
                    f"PC {self.pc_text()} (an exception loop: no scenario takes more "
                    "than two)")
        return True

    def _did_not_finish(self, budget: bool) -> None:
        n = min(self._budget.count, self.options.max_instructions)
        cause = (f"instruction budget of {self.options.max_instructions} used up" if budget
                 else f"wall timeout of {self.options.timeout_s:g} s")
        self.finish(RunStatus.DID_NOT_FINISH,
                     f"did not finish after {n} instructions at PC {self.pc_text()} ({cause})")

    def console_runaway(self) -> None:
        """The console passed a bound (platform/runaway.py): end the run, saying where."""
        self.finish(RunStatus.DID_NOT_FINISH, runaway_reason(
            self, self.console_bounds, self._devices.console.text(), self._devices.chain_bound))

    def finish(self, status: RunStatus, reason: str, *, exit_code: int | None = None,
               breach: Breach | None = None) -> None:
        """Record the run's outcome (the first one wins) and stop Unicorn."""
        if self._outcome is None:
            self._outcome = _Outcome(status, reason, exit_code, breach)
            self._hooks.frozen = True
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
        if self._read_watch_pages and pa // self._tlb_page in self._read_watch_pages:
            self._arm_reads = True   # see _execute
            return False
        self._platform.note_touched(pa)
        entry.paddr = pa
        entry.perms = UC_PROT_ALL
        return True

    def _on_exception(self, uc: Uc, number: int, _data: object) -> None:
        if self._outcome is not None:
            uc.emu_stop()
            return
        if not self._exception_loop():
            traps.take_exception(self, number)

    def instruction_at(self, va: int, el: int) -> int | None:
        pa = self.spaces.translate(va, el)
        region = self.spaces.region_of(va, el)
        if pa is None or region is None or region.mmio:
            return None
        return int.from_bytes(self.uc.mem_read(pa, 4), "little")

    def pc_text(self) -> str:
        """The pc, its symbol and file:line (platform/runaway.py)."""
        return stopped_at(self)

    # -- per-CPU data ----------------------------------------------------

    def foreign_percpu_changes(self) -> list[PerCpuChange]:
        """Every run of changed bytes in the per-CPU copies (hyp and host) of
        the CPUs other than the one that ran, compared with just before the
        first instruction. Empty when they are byte-identical."""
        if not self._percpu.taken:
            raise MachineError("foreign_percpu_changes() before run()")
        return self._percpu.changes(self.uc)
