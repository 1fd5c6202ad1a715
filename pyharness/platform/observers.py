"""What observers attach to a run (mixed into the machine): code hooks,
the frame-setup records the oracle reads, bounds watches and memory hooks.

The frequent ones (frame setups, watches) are kept by the hot hooks
(:mod:`pyharness.platform.native`: C when the helper library is built,
else Python callbacks with the same records); a code hook or a memory
watch added here is a Python callback, for the rare events and for tests.
"""

from __future__ import annotations

from typing import Callable

from unicorn import UC_HOOK_BLOCK, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE, Uc

from pyharness.elf.image import Image
from pyharness.platform.hook_records import Frame, Hit
from pyharness.platform.instance import Platform
from pyharness.platform.native import NativeHooks, PythonHooks
from pyharness.platform.results import MachineError, RunStatus

# The machine is passed as the first argument.
CodeHook = Callable[["ObserverHooks", int], None]
WatchHook = Callable[["ObserverHooks", int, int, bool], None]
BlockHook = Callable[[int, int], None]   # (VA, size in bytes)


class ObserverHooks:
    """Hooks by address and watches by physical range, added before the run.
    The machine provides ``runtime_address``, ``finished`` and ``finish``."""

    uc: Uc
    image: Image
    _platform: Platform
    _hooks: NativeHooks | PythonHooks
    _ran: bool
    _read_watch_pages: set[int]   # TLB pages of read watches not armed yet

    def _before_run(self, what: str) -> None:
        if self._ran:
            raise MachineError(f"{what}() after run(): Unicorn only sees hooks added before "
                               "translation starts; create a new Machine")

    def add_code_hook(self, link_address: int, callback: CodeHook, *,
                      space: str | None = None) -> int:
        """Call ``callback(machine, link_address)`` each time the instruction
        at ``link_address`` (translated as in :meth:`runtime_address`) is
        about to run. Costs one callback per execution of that address only.
        Returns the runtime VA hooked. Add hooks before :meth:`run`."""
        self._before_run("add_code_hook")
        va = self.runtime_address(link_address, space)

        def on_code(uc: Uc, _address: int, _size: int, _data: object) -> None:
            if self.finished:
                return
            try:
                callback(self, link_address)
            except Exception as exc:  # a hook's bug ends this run, not the process
                self.finish(RunStatus.ERROR,
                            f"code hook at {self.image.describe(link_address)} raised "
                            f"{type(exc).__name__}: {exc}")

        self._platform.add_code_hook(va, on_code)
        return va

    def add_memory_watch(self, pa: int, size: int, callback: WatchHook, *,
                         reads: bool = False, writes: bool = True) -> None:
        """Call ``callback(machine, pa, size, is_write)`` on each data access
        to the *physical* range [pa, pa + size), through any mapping at any
        EL (under the virtual TLB Unicorn reports data accesses by physical
        address). A Python memory hook, which sends every load and store of
        the run through Unicorn's slow path: the bounds watches use
        :meth:`watch_writes` and :meth:`watch_reads`. Add watches before
        :meth:`run`."""
        self._before_run("add_memory_watch")
        kinds = (UC_HOOK_MEM_READ if reads else 0) | (UC_HOOK_MEM_WRITE if writes else 0)

        def on_access(uc: Uc, access: int, address: int, length: int, _value: int,
                      _data: object) -> None:
            if self.finished:
                return
            try:
                callback(self, address, length, access == UC_MEM_WRITE)
            except Exception as exc:  # a watch's bug ends this run, not the process
                self.finish(RunStatus.ERROR, f"memory watch at {address:#x} raised "
                                             f"{type(exc).__name__}: {exc}")

        self._platform.run_hooks.append(
            self.uc.hook_add(kinds, on_access, begin=pa, end=pa + size - 1))

    def add_block_hook(self, callback: BlockHook) -> None:
        """Call ``callback(va, size)`` as the CPU enters each translation
        block, for this run only (a reused instance drops it: hooks added
        straight to ``machine.uc`` would stay for every later run of the
        image in the process). A Python callback per block: slow, for
        tools (the mutation baseline's coverage), not for every run."""
        self._before_run("add_block_hook")

        def on_block(_uc: Uc, address: int, size: int, _data: object) -> None:
            callback(address, size)

        self._platform.run_hooks.append(self.uc.hook_add(UC_HOOK_BLOCK, on_block))

    @property
    def hooks_backend(self) -> str:
        """"native" (C callbacks) or "python" (see :mod:`pyharness.platform.native`)."""
        return self._hooks.backend

    def add_frame_setup_hooks(self, link_addresses: list[int], *,
                              space: str | None = None) -> list[int]:
        """Record ``{pc, sp, x29, x30}`` (:meth:`frames`) each time one of
        these instructions is about to run, in the hooks' backend (C when
        built). Returns the runtime VAs hooked, in order."""
        self._before_run("add_frame_setup_hooks")
        vas = [self.runtime_address(link, space) for link in link_addresses]
        self._platform.add_frame_setup_hooks(vas)
        return vas

    def frames(self, start: int = 0) -> list[Frame]:
        """The frame-setup executions recorded so far, from index ``start``
        (readable during the run, from a code hook), until the run's
        outcome. A reused instance may also record at addresses an earlier
        run asked for."""
        return self._hooks.frames(start)

    def watch_writes(self, pa: int, size: int) -> int:
        """Record each write whose first byte is in the physical range
        [pa, pa + size) (:meth:`watch_hits`). Natively the range's pages are
        made read-only, so only writes to them cost. Returns the watch id."""
        self._before_run("watch_writes")
        return self._hooks.add_write_watch(pa, pa + size)

    def watch_reads(self, pa: int, size: int) -> int:
        """Record each read whose first byte is in [pa, pa + size). A read
        hook slows every load, so it is installed only when the first page
        of the range is mapped (a TLB fill): a run that never goes near the
        range pays nothing. Returns the watch id."""
        self._before_run("watch_reads")
        watch = self._hooks.add_read_watch(pa, pa + size, deferred=True)
        page = self._platform.tlb_page
        self._read_watch_pages.update(range(pa // page, (pa + size - 1) // page + 1))
        return watch

    def watch_hits(self) -> list[Hit]:
        """Every access seen by :meth:`watch_writes` / :meth:`watch_reads`
        watches until the run's outcome, in order (at most
        :data:`~pyharness.platform.hook_records.MAX_HITS`)."""
        return self._hooks.hits()

    @property
    def watch_hits_dropped(self) -> int:
        """Accesses past MAX_HITS, counted but not recorded."""
        return self._hooks.hits_dropped
