"""The hot hooks as Python callbacks: the fallback for
:class:`~pyharness.platform.native.NativeHooks` when the C library is not
built, or with ``PYHARNESS_NATIVE=0``. Same API, same records, same
verdicts; write watches are plain ``UC_HOOK_MEM_WRITE`` hooks here."""

from __future__ import annotations

import ctypes
import time
from typing import Callable, Iterable

from unicorn import (UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE,
                     UC_HOOK_TLB_FILL, Uc)
from unicorn import arm64_const as A

from pyharness.errors import HarnessError
from pyharness.platform import native_lib
from pyharness.platform.hook_records import (CLOCK_EVERY_BLOCKS, MAX_HITS, READ, STOP_REASONS,
                                             WRITE, Frame, Hit, Results, deadline_ns)

# void (*)(uc_engine *, uint64_t address, uint32_t size, void *user)
_CODE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                            ctypes.c_void_p)


class PythonHooks:
    """The same hooks and records as :class:`~pyharness.platform.native.NativeHooks`,
    as Python callbacks."""

    backend = "python"

    def __init__(self, uc: Uc, budget: int = 0, deadline_s: float | None = None) -> None:
        self._uc = uc
        self._exact = False
        self.frozen = False
        self.instructions = 0
        self.blocks = 0
        self.hits_dropped = 0
        self._stop = 0
        self._frames: list[Frame] = []
        self._hits: list[Hit] = []
        self._watches: list[tuple[int, int, str]] = []
        self._deferred: list[int] = []
        self._watch_hooks: list[int] = []
        self.set_limits(budget, deadline_s)
        uc._pyharness_native_hooks = self  # the callbacks live as long as uc
        # Registered with the C API directly, skipping the binding's wrapper
        # layers: about 0.27 us per block instead of 0.75 us.
        self._block_cb = _CODE_CB(self._on_block)
        native_lib.hook_add(uc, UC_HOOK_BLOCK,
                            ctypes.cast(self._block_cb, ctypes.c_void_p).value, None)

    def set_limits(self, budget: int, deadline_s: float | None) -> None:
        self._budget = budget
        self._deadline_ns = deadline_ns(deadline_s)
        self._set_limit()

    @property
    def exact(self) -> bool:
        return self._exact

    @exact.setter
    def exact(self, value: bool) -> None:
        self._exact = bool(value)
        self._set_limit()

    def _set_limit(self) -> None:
        # One comparison per block: the count a block may not take us past.
        budget = getattr(self, "_budget", 0)
        self._limit = budget if budget and not self._exact else float("inf")

    def _on_block(self, _uc: int, _address: int, size: int, _user: int) -> None:
        n = self.instructions + size // 4
        if n > self._limit:
            self._stop = 1
            self._uc.emu_stop()
            return
        self.instructions = n
        self.blocks += 1
        if not self.blocks % CLOCK_EVERY_BLOCKS and self._deadline_ns \
                and time.monotonic_ns() > self._deadline_ns:
            self._stop = 2
            self._uc.emu_stop()

    @property
    def stop_reason(self) -> str | None:
        return STOP_REASONS[self._stop]

    def clear_stop_reason(self) -> None:
        self._stop = 0

    def add_frame_setup_hooks(self, addresses: Iterable[int]) -> None:
        for va in addresses:
            self._uc.hook_add(UC_HOOK_CODE, self._on_frame, begin=va, end=va)

    def _on_frame(self, uc: Uc, address: int, _size: int, _data: object) -> None:
        if not self.frozen:
            self._frames.append(Frame(address, uc.reg_read(A.UC_ARM64_REG_SP),
                                      uc.reg_read(A.UC_ARM64_REG_X29),
                                      uc.reg_read(A.UC_ARM64_REG_X30)))

    def frames(self, start: int = 0) -> list[Frame]:
        return self._frames[start:]

    def set_ram(self, base: int, host_address: int, size: int) -> None:
        """Accepted for the same API; Python write watches are memory hooks."""

    def add_write_watch(self, lo: int, hi: int) -> int:
        return self._add_watch(lo, hi, WRITE, UC_HOOK_MEM_WRITE)

    def add_read_watch(self, lo: int, hi: int, *, deferred: bool = False) -> int:
        watch = self._add_watch(lo, hi, READ)
        self._deferred.append(watch)
        if not deferred:
            self.arm_deferred()
        return watch

    def arm_deferred(self) -> bool:
        for watch in self._deferred:
            self._install(watch, UC_HOOK_MEM_READ)
        armed, self._deferred = bool(self._deferred), []
        return armed

    def clear_watches(self) -> bool:
        hooked = bool(self._watch_hooks)
        for handle in self._watch_hooks:
            self._uc.hook_del(handle)
        self._watch_hooks, self._watches, self._deferred = [], [], []
        return hooked

    def _add_watch(self, lo: int, hi: int, access: str, kind: int | None = None) -> int:
        if hi <= lo:
            raise HarnessError(f"cannot add a watch on [{lo:#x}, {hi:#x}): empty range")
        watch = len(self._watches)
        self._watches.append((lo, hi, access))
        if kind is not None:
            self._install(watch, kind)
        return watch

    def _install(self, watch: int, kind: int) -> None:
        lo, hi, access = self._watches[watch]
        self._watch_hooks.append(self._uc.hook_add(kind, self._access_hook(watch, access),
                                                   begin=lo, end=hi - 1))

    def _access_hook(self, watch: int, access: str) -> Callable[..., None]:
        def on_access(uc: Uc, _kind: int, address: int, size: int, _value: int,
                      _data: object) -> None:
            if self.frozen:
                return
            if len(self._hits) >= MAX_HITS:
                self.hits_dropped += 1
                return
            self._hits.append(Hit(watch, access, address, size,
                                  uc.reg_read(A.UC_ARM64_REG_PC),
                                  uc.reg_read(A.UC_ARM64_REG_SP)))
        return on_access

    def hits(self) -> list[Hit]:
        return list(self._hits)

    def results(self) -> Results:
        return Results(self.backend, self.instructions, self.blocks, self.stop_reason,
                       tuple(self._frames), tuple(self._hits), self.hits_dropped)

    def hook_tlb_fill(self, fill: Callable[..., bool], *, page: int,
                      image_span: tuple[int, int]) -> None:
        """The TLB fill, a Python callback each (the native hooks make the
        plain case in C: native_tlb)."""
        self._uc.hook_add(UC_HOOK_TLB_FILL, fill)

    def map_mmio(self, address: int, size: int, read: Callable[..., int],
                 write: Callable[..., None]) -> None:
        """The MMIO page at ``address``, every access a Python callback (the
        native hooks serve the hot registers themselves: native_mmio)."""
        self._uc.mmio_map(address, size, read, None, write, None)

    def reset(self) -> None:
        self.instructions = self.blocks = self.hits_dropped = self._stop = 0
        self.exact = self.frozen = False
        self._frames.clear()
        self._hits.clear()
