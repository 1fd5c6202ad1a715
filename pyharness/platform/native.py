"""The hot Unicorn callbacks, in C when the helper library is there.

One object per Unicorn instance owns what runs often during emulation:

- a block hook that counts instructions (block size / 4), stops the
  emulation before a block that would run past the instruction budget,
  and every 1024 blocks stops it past a wall-clock deadline;
- single-address code hooks that record ``{pc, sp, x29, x30}`` each time
  a frame-setup instruction runs (the oracle's frame records);
- watches on physical address ranges that record every access whose first
  byte is in the range (``pc`` and ``sp`` with it).

:func:`make_hooks` returns a :class:`NativeHooks` (callbacks in the C
library ``libnvhe_hooks.so``, built from ``native/`` at install time) or,
when the library is missing or ``PYHARNESS_NATIVE=0``, a
:class:`~pyharness.platform.pyhooks.PythonHooks` with the same API and the
same records (:mod:`pyharness.platform.hook_records`): the verdicts do not
depend on which one ran. ``PYHARNESS_NATIVE=1`` makes a missing library an
error instead. ``PYHARNESS_NATIVE_LIB`` names the library file explicitly
(:mod:`pyharness.platform.native_lib` loads it).

The C callbacks are registered with Unicorn's C API (``uc_hook_add``)
through ctypes on the ``libunicorn`` the ``unicorn`` package loaded; the
library itself links against nothing but libc (Python hands it
``uc_emu_stop`` and ``uc_reg_read``). Results are read after the run, or
during it from a rare Python callback (the oracle reads the frames when
the unwind starts).

Write watches, natively, use page protection rather than a memory hook:
any ``UC_HOOK_MEM_WRITE`` or ``UC_HOOK_MEM_READ`` hook sends *every* load
and store of the run through Unicorn's slow path (about 30 % of a long
run), while a read-only page costs only the writes to that page. Call
:meth:`NativeHooks.set_ram` with the host memory behind RAM (RAM mapped
with ``mem_map_ptr``) first: Unicorn drops a write it reports to the
protection hook, so the hook carries it out itself.

Typical use::

    hooks = make_hooks(uc, budget=5_000_000, deadline_s=time.monotonic() + 10)
    hooks.add_frame_setup_hooks([0x800201234, 0x800205678])
    watch = hooks.add_write_watch(0x40a00000, 0x40a00100)
    uc.emu_start(pc, until)            # count=0: the block hook keeps the budget
    hooks.stop_reason                  # None, "budget" or "deadline"
    hooks.frames()                     # [Frame(pc, sp, fp, lr), ...]
    hooks.hits()                       # [Hit(watch, "write", address, size, pc, sp), ...]
"""

from __future__ import annotations

import ctypes
from typing import Iterable

from unicorn import (UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_HOOK_MEM_WRITE_PROT, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, Uc)
from unicorn import arm64_const as A

from pyharness.errors import HarnessError
from pyharness.platform import native_lib
from pyharness.platform.hook_records import (CLOCK_EVERY_BLOCKS, MAX_HITS, READ, STOP_REASONS,
                                             WRITE, Frame, Hit, Results, deadline_ns)
from pyharness.platform.native_lib import (ENV_LIBRARY, ENV_SWITCH, NativeError, NhFrame,
                                           NhHit, backend, function_address, libraries,
                                           requested, unavailable_reason)
from pyharness.platform.native_mmio import NativeMmio, SlowRead, SlowWrite
from pyharness.platform.native_tlb import NativeTlb, SlowFill
from pyharness.platform.pyhooks import PythonHooks

__all__ = ["CLOCK_EVERY_BLOCKS", "ENV_LIBRARY", "ENV_SWITCH", "MAX_HITS", "READ", "WRITE",
           "Frame", "Hit", "NativeError", "NativeHooks", "PythonHooks", "Results", "backend",
           "make_hooks", "requested", "unavailable_reason"]

_ACCESS = {1: READ, 2: WRITE}
_NH_READ, _NH_WRITE = 1, 2


def make_hooks(uc: Uc, budget: int = 0,
               deadline_s: float | None = None) -> NativeHooks | PythonHooks:
    """The hooks for ``uc``: native when the library is there (see
    :func:`~pyharness.platform.native_lib.backend`), else the Python fallback."""
    cls = NativeHooks if backend() == "native" else PythonHooks
    return cls(uc, budget, deadline_s)


def protected_span(lo: int, hi: int, page: int, ram_base: int) -> tuple[int, int]:
    """[lo, hi)'s pages and the page below (as protected_byte in
    nvhe_hooks.c): a store crossing into a watched page from below then
    starts on a protected page and is reported once, whole."""
    return max(ram_base, lo // page * page - page), -(-hi // page) * page


class NativeHooks:
    """The hot callbacks in C (libnvhe_hooks.so). See the module docstring."""

    backend = "native"

    def __init__(self, uc: Uc, budget: int = 0, deadline_s: float | None = None) -> None:
        libs = libraries()
        if libs.hooks is None:
            raise NativeError(libs.reason or "no native hooks library")
        self._lib, self._uc = libs.hooks, uc
        self._state = self._lib.nh_new(
            function_address(libs.unicorn, "uc_emu_stop"),
            function_address(libs.unicorn, "uc_reg_read"),
            A.UC_ARM64_REG_PC, A.UC_ARM64_REG_SP, A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30)
        if not self._state:
            raise MemoryError("nh_new")
        # Unicorn calls into the state for as long as uc lives: tie the two.
        uc._pyharness_native_hooks = self
        self._fn = {name: function_address(self._lib, name)
                    for name in ("nh_block_hook", "nh_frame_hook", "nh_mem_hook",
                                 "nh_write_prot_hook")}
        self._exact = self._frozen = False
        self._ram_base: int | None = None
        self._prot_hook = False
        self._ranges: dict[int, tuple[int, int]] = {}
        self._deferred: list[int] = []
        self._watch_hooks: list[int] = []                 # uc_hook handles
        self._protected: list[tuple[int, int]] = []       # read-only spans
        self._page = uc.ctl_get_page_size()
        self.set_limits(budget, deadline_s)
        native_lib.hook_add(uc, UC_HOOK_BLOCK, self._fn["nh_block_hook"], self._state)

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.nh_free(state)

    # -- budget and deadline ---------------------------------------------

    def set_limits(self, budget: int, deadline_s: float | None) -> None:
        """``budget`` instructions (0: none); ``deadline_s`` in time.monotonic()
        seconds (None: none)."""
        self._lib.nh_set_limits(self._state, budget, deadline_ns(deadline_s))

    @property
    def exact(self) -> bool:
        """On: the block hook no longer stops for the budget (emu_start's own
        count keeps it, for the last stretch)."""
        return self._exact

    @exact.setter
    def exact(self, value: bool) -> None:
        self._exact = bool(value)
        self._lib.nh_set_exact(self._state, self._exact)

    @property
    def frozen(self) -> bool:
        """On: the run has its outcome; nothing more is recorded."""
        return self._frozen

    @frozen.setter
    def frozen(self, value: bool) -> None:
        self._frozen = bool(value)
        self._lib.nh_set_frozen(self._state, self._frozen)

    @property
    def instructions(self) -> int:
        return self._lib.nh_instructions(self._state)

    @property
    def blocks(self) -> int:
        return self._lib.nh_blocks(self._state)

    @property
    def stop_reason(self) -> str | None:
        return STOP_REASONS[self._lib.nh_stop_reason(self._state)]

    def clear_stop_reason(self) -> None:
        self._lib.nh_clear_stop_reason(self._state)

    # -- frames ----------------------------------------------------------

    def add_frame_setup_hooks(self, addresses: Iterable[int]) -> None:
        """Record {pc, sp, x29, x30} each time one of these runtime VAs runs."""
        for va in addresses:
            native_lib.hook_add(self._uc, UC_HOOK_CODE, self._fn["nh_frame_hook"],
                                self._state, va, va)

    def frames(self, start: int = 0) -> list[Frame]:
        ptr = ctypes.POINTER(NhFrame)()
        n = self._lib.nh_frames(self._state, ctypes.byref(ptr))
        return [Frame(f.pc, f.sp, f.fp, f.lr) for f in ptr[start:n]] if n > start else []

    # -- watches ---------------------------------------------------------

    def set_ram(self, base: int, host_address: int, size: int) -> None:
        """Guest RAM [base, base + size) lives at ``host_address`` (RAM mapped
        with ``mem_map_ptr``): write watches then use page protection."""
        self._lib.nh_set_ram(self._state, base, host_address, size, self._page)
        self._ram_base = base

    def add_write_watch(self, lo: int, hi: int) -> int:
        """Watch writes whose first byte is in physical [lo, hi); returns its index."""
        watch = self._add_watch(lo, hi, _NH_WRITE)
        if self._ram_base is not None:
            if not self._prot_hook:
                native_lib.hook_add(self._uc, UC_HOOK_MEM_WRITE_PROT,
                                    self._fn["nh_write_prot_hook"], self._state)
                self._prot_hook = True
            span = protected_span(lo, hi, self._page, self._ram_base)
            native_lib.mem_protect(self._uc, span, UC_PROT_READ | UC_PROT_EXEC)
            self._protected.append(span)
        else:
            self._install(watch, UC_HOOK_MEM_WRITE)
        return watch

    def add_read_watch(self, lo: int, hi: int, *, deferred: bool = False) -> int:
        """Watch reads whose first byte is in physical [lo, hi); returns its
        index. A read hook sends every load of the run through Unicorn's slow
        path, so a ``deferred`` watch is only installed by :meth:`arm_deferred`
        (the machine arms them when a page of theirs is first mapped)."""
        watch = self._add_watch(lo, hi, _NH_READ)
        self._deferred.append(watch)
        if not deferred:
            self.arm_deferred()
        return watch

    def arm_deferred(self) -> bool:
        """Install the deferred read watches; True when there were any. The
        translation cache must be flushed after (code translated before has
        no slow path for loads)."""
        for watch in self._deferred:
            self._install(watch, UC_HOOK_MEM_READ)
        armed, self._deferred = bool(self._deferred), []
        return armed

    def _install(self, watch: int, kind: int) -> None:
        lo, hi = self._ranges[watch]
        self._watch_hooks.append(native_lib.hook_add(
            self._uc, kind, self._fn["nh_mem_hook"],
            self._lib.nh_watch_user_data(self._state, watch), lo, hi - 1))

    def clear_watches(self) -> bool:
        """Remove every watch, its hook or its pages' protection (a reused
        instance). True when memory hooks were removed: code translated
        while they were there goes through the slow path until the
        translation cache is flushed."""
        hooked = bool(self._watch_hooks)
        for handle in self._watch_hooks:
            native_lib.hook_del(self._uc, handle)
        for span in self._protected:
            native_lib.mem_protect(self._uc, span, UC_PROT_ALL)
        self._watch_hooks, self._protected, self._deferred = [], [], []
        self._ranges.clear()
        self._lib.nh_clear_watches(self._state)
        return hooked

    def _add_watch(self, lo: int, hi: int, access: int) -> int:
        watch = self._lib.nh_add_watch(self._state, lo, hi, access)
        if watch < 0:
            raise HarnessError(f"cannot add a watch on [{lo:#x}, {hi:#x}): empty range "
                               "or too many watches")
        self._ranges[watch] = (lo, hi)
        return watch

    def hits(self) -> list[Hit]:
        ptr = ctypes.POINTER(NhHit)()
        n = self._lib.nh_hits(self._state, ctypes.byref(ptr))
        return [Hit(h.watch, _ACCESS[h.access], h.address, h.size, h.pc, h.sp)
                for h in ptr[:n]]

    @property
    def hits_dropped(self) -> int:
        return self._lib.nh_hits_dropped(self._state)

    # -- all of it -------------------------------------------------------

    def results(self) -> Results:
        return Results(self.backend, self.instructions, self.blocks, self.stop_reason,
                       tuple(self.frames()), tuple(self.hits()), self.hits_dropped)

    def map_mmio(self, address: int, size: int, slow_read: SlowRead,
                 slow_write: SlowWrite) -> NativeMmio:
        """The MMIO page at ``address``: its hot registers in C, the rest
        through ``slow_read`` / ``slow_write`` (see native_mmio)."""
        self._mmio = NativeMmio(self._uc, self._lib, self._state, address, size, slow_read,
                                slow_write)
        return self._mmio

    def hook_tlb_fill(self, slow_fill: SlowFill, *, page: int,
                      image_span: tuple[int, int]) -> NativeTlb:
        """The TLB fill: its plain case in C, the rest through ``slow_fill``
        (see native_tlb); ``image_span``: the image's RAM, not "touched"."""
        self._tlb = NativeTlb(self._uc, self._lib, self._state, slow_fill, page=page,
                              image_span=image_span)
        return self._tlb

    def reset(self) -> None:
        """Forget counts, stop reason, frames and hits (a reused instance)."""
        self._lib.nh_reset(self._state)
        self._exact = self._frozen = False
