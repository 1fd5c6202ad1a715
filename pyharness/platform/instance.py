"""A Unicorn instance set up for one image, and its reuse.

:class:`Platform` owns what outlives one run's bookkeeping: the Unicorn
instance (the "max" CPU, the virtual TLB), RAM as host memory the harness
owns, the MMIO page, the TLB-fill and exception hooks, the hot hooks
(:mod:`pyharness.platform.native`) and the code hooks by address. One
:class:`~pyharness.platform.machine.Machine` drives it at a time: the
callbacks go to the callables it attached.

Reuse (on unless ``PYHARNESS_REUSE=0``): a released instance serves
the next Machine of the same image in the process after :meth:`Platform.reset`:
registers from the snapshot taken when it was new, TLB flushed, watches and
the last run's hooks removed, the RAM pages outside the image that the last
run mapped zeroed; :meth:`Platform.load` then rewrites only the image pages
that differ, so the code translated from the others stays valid (the
saving: no Unicorn set-up, warm code). docs/platform.md says more.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from typing import Callable

from unicorn import (UC_ARCH_ARM64, UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_HOOK_CODE,
                     UC_HOOK_INTR, UC_MODE_ARM, UC_PROT_ALL, UC_TLB_VIRTUAL,
                     Uc)
from unicorn import arm64_const as A

from pyharness.elf.image import Image
from pyharness.platform import native

REUSE_ENV = "PYHARNESS_REUSE"
POOL_SIZE = 8       # released instances kept per process (one per image)
RAM_SPLIT = 0x10000   # the image's own RAM region is aligned to 64 KiB

UnicornCallback = Callable[..., object]


def reuse_enabled() -> bool:
    return os.environ.get(REUSE_ENV, "1") != "0"


class Platform:
    """A Unicorn instance set up for ``image``; see the module docstring."""

    def __init__(self, image: Image) -> None:
        layout = image.layout
        self.image = image
        self.runs = 0
        self._tlb_fill = self._exception = self._mmio_read = self._mmio_write = _released
        self.uc = uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        # The "max" CPU: pointer authentication (and BTI) exist; the
        # default model treats paciasp as a NOP and has no key registers.
        uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        self.tlb_page = uc.ctl_get_page_size()
        # RAM is host memory the harness owns (anonymous, zero until touched):
        # the native write watches carry out writes to their pages themselves.
        # The image's pages are a region of their own: making a watched page
        # read-only (uc_mem_protect) copies the region it splits, 12 ms for
        # all of RAM, 0.2 ms for the largest image.
        # Private: a forked worker's copy must not share pages with its parent
        # (Python's anonymous mmap is MAP_SHARED by default).
        self.ram = mmap.mmap(-1, layout.phys_ram_size,
                             flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        ram_address = ctypes.addressof(ctypes.c_char.from_buffer(self.ram))
        self.ram_base = layout.phys_ram_base
        self.ram_end = ram_end = layout.phys_ram_base + layout.phys_ram_size
        self.image_lo = layout.image_phys_base // RAM_SPLIT * RAM_SPLIT
        self.image_hi = -(-image.phys_address(image.link_end) // RAM_SPLIT) * RAM_SPLIT
        bounds = sorted({self.ram_base, ram_end, max(self.ram_base, min(ram_end, self.image_lo)),
                         min(ram_end, self.image_hi)})
        for lo, hi in zip(bounds, bounds[1:]):
            uc.mem_map_ptr(lo, hi - lo, UC_PROT_ALL, ram_address + lo - self.ram_base)
        uc.hook_add(UC_HOOK_INTR, self._on_exception)
        # The per-block instruction count, budget and deadline, the frame
        # records and the watches: C callbacks, or the Python fallback.
        self.hooks = native.make_hooks(uc)
        self.hooks.set_ram(self.ram_base, ram_address, layout.phys_ram_size)
        # The TLB fill and the MMIO page: their plain cases in C with the
        # native hooks (tlb_fast, mmio_fast), else Python callbacks each.
        self.tlb_fast = self.hooks.hook_tlb_fill(self._on_tlb_fill, page=self.tlb_page,
                                                 image_span=(self.image_lo, self.image_hi))
        # The MMIO page: its hot registers in C with the native hooks
        # (mmio_fast), else every access through the callbacks below.
        self.mmio_fast = self.hooks.map_mmio(layout.mmio_phys, layout.page_size,
                                             self._on_mmio_read, self._on_mmio_write)
        self.frame_vas: set[int] = set()
        self.code_callbacks: dict[int, list[UnicornCallback]] = {}
        self.run_hooks: list[int] = []   # Machine.add_memory_watch/add_block_hook hooks of this run
        self.touched: set[int] = set()      # TLB pages outside the image mapped this run
        self.flush_pending = False
        self.pristine = uc.context_save()

    # -- the driving machine's callbacks ----------------------------------

    def attach(self, *, tlb_fill: UnicornCallback, exception: UnicornCallback,
               mmio_read: UnicornCallback, mmio_write: UnicornCallback) -> None:
        """Send Unicorn's callbacks to the machine that now drives the instance."""
        self._tlb_fill, self._exception = tlb_fill, exception
        self._mmio_read, self._mmio_write = mmio_read, mmio_write

    def _on_tlb_fill(self, uc: Uc, va: int, access: int, entry, data: object) -> bool:
        return self._tlb_fill(uc, va, access, entry, data)

    def _on_exception(self, uc: Uc, number: int, data: object) -> None:
        self._exception(uc, number, data)

    def _on_mmio_read(self, uc: Uc, offset: int, size: int, data: object) -> int:
        return self._mmio_read(uc, offset, size, data)

    def _on_mmio_write(self, uc: Uc, offset: int, size: int, value: int,
                       data: object) -> None:
        self._mmio_write(uc, offset, size, value, data)

    # -- hooks -------------------------------------------------------------

    def _on_code(self, uc: Uc, address: int, size: int, data: object) -> None:
        for callback in self.code_callbacks.get(address, ()):
            callback(uc, address, size, data)

    def add_code_hook(self, va: int, callback: UnicornCallback) -> None:
        """One Unicorn hook per address for the instance's life; the run's
        callbacks are a list, emptied by :meth:`reset`."""
        if va not in self.code_callbacks:
            self.code_callbacks[va] = []
            self.uc.hook_add(UC_HOOK_CODE, self._on_code, begin=va, end=va)
            self._retranslate()
        self.code_callbacks[va].append(callback)

    def add_frame_setup_hooks(self, vas: list[int]) -> None:
        new = [va for va in dict.fromkeys(vas) if va not in self.frame_vas]
        self.hooks.add_frame_setup_hooks(new)
        self.frame_vas.update(new)
        if new:
            self._retranslate()

    def _retranslate(self) -> None:
        # Code translated before a code hook was added does not call it.
        # (ctl_remove_cache takes the address as physical: a full flush,
        # once, before the next run; the oracle's addresses are the same
        # every run of an image, so only a test's own hooks cause one.)
        if self.runs:
            self.flush_pending = True

    def flush_if_pending(self) -> None:
        """Before a run: drop translations made without this run's hooks."""
        if self.flush_pending:
            self.flush_pending = False
            self.uc.ctl_flush_tb()

    # -- memory ------------------------------------------------------------

    def note_touched(self, pa: int) -> None:
        """A RAM page outside the image was mapped or written (MMIO is not RAM)."""
        if self.ram_base <= pa < self.ram_end and not self.image_lo <= pa < self.image_hi:
            self.touched.add(pa // self.tlb_page)

    def read_ram(self, pa: int, size: int) -> bytes:
        """RAM as the CPU left it, straight from the host memory behind it."""
        at = pa - self.ram_base
        return self.ram[at:at + size]

    def load(self, pa: int, data: bytes) -> None:
        """Put ``data`` at ``pa``. A used instance writes only the 4 KiB
        chunks that differ: a write invalidates the code translated from
        its pages."""
        if not self.runs:
            self.uc.mem_write(pa, data)
            return
        base = pa - self.ram_base
        if self.ram[base:base + len(data)] == data:   # bytes compares: a memcmp
            return
        for at in range(0, len(data), 4096):
            chunk = data[at:at + 4096]
            if self.ram[base + at:base + at + len(chunk)] != chunk:
                self.uc.mem_write(pa + at, chunk)

    # -- reuse -------------------------------------------------------------

    def reset(self) -> None:
        """Back to the state a new instance of the image is in (see the
        module docstring)."""
        uc = self.uc
        uc.context_restore(self.pristine)
        uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)
        flush = self.hooks.clear_watches()
        for handle in self.run_hooks:
            uc.hook_del(handle)
            flush = True
        self.run_hooks = []
        if flush:  # code translated with these hooks keeps calling out
            self.flush_pending = True
        self.hooks.reset()
        for callbacks in self.code_callbacks.values():
            callbacks.clear()
        if self.tlb_fast is not None:
            self.touched.update(self.tlb_fast.take_touched())
        zero = bytes(self.tlb_page)
        for page in sorted(self.touched):
            uc.mem_write(page * self.tlb_page, zero)
        self.touched.clear()


_POOL: dict[tuple[int, str], Platform] = {}   # (id(image), backend) -> a released instance


def take(image: Image, reuse: bool) -> Platform:
    """A platform for ``image``: a released one of the same image when
    ``reuse`` and this process has one (reset), else a new one."""
    platform = _POOL.pop((id(image), native.backend()), None) if reuse else None
    if platform is not None and platform.image is image:
        platform.reset()
        return platform
    return Platform(image)


def give_back(platform: Platform) -> None:
    """Keep a finished run's platform for the next :func:`take` of its image."""
    platform.attach(tlb_fill=_released, exception=_released, mmio_read=_released,
                    mmio_write=_released)
    key = (id(platform.image), platform.hooks.backend)
    _POOL.pop(key, None)
    while len(_POOL) >= POOL_SIZE:
        del _POOL[next(iter(_POOL))]
    _POOL[key] = platform


def clear_pool() -> None:
    """Forget every released instance (their memory goes with them)."""
    _POOL.clear()


def _released(*_args: object) -> None:
    raise RuntimeError("a released platform ran")
