"""The TLB fill's plain case in C (``native/nvhe_tlb.c``).

A VA inside one of the run's regions of its exception level maps to the
region's PA, unless it is a hyp-private page seen from EL1 in protected
mode or a page of a read watch still to arm: those, and every VA outside
the regions, go on to the Python fill
(:meth:`~pyharness.platform.machine.Machine._on_tlb_fill`), which makes the
aborts and arms the watches. A fill used to be a Python callback each,
about 75 a run. The RAM pages outside the image it maps are noted in C
(:meth:`NativeTlb.take_touched`) for the reuse reset.
"""

from __future__ import annotations

import ctypes
from typing import Callable, Iterable, Sequence

from unicorn import UC_HOOK_TLB_FILL, UC_PROT_ALL, Uc
from unicorn import arm64_const as A
from unicorn.unicorn_py3.unicorn import HOOK_TLB_FILL_CFUNC, uccallback

from pyharness.platform import native_lib
from pyharness.platform.native_lib import NativeError, NhRegion, function_address

SlowFill = Callable[[Uc, int, int, object, object], bool]
# (VA, size, PA) of each region of one translation regime.
Regions = Sequence[tuple[int, int, int]]


class NativeTlb:
    """The C fill for the state of a
    :class:`~pyharness.platform.native.NativeHooks`; ``slow_fill`` (the
    binding's TLB-fill callback signature) decides the rest."""

    def __init__(self, uc: Uc, lib: ctypes.CDLL, state: int, slow_fill: SlowFill, *,
                 page: int, image_span: tuple[int, int]) -> None:
        self._lib, self._state = lib, state
        # The binding's guard: an exception in the callback stops the
        # emulation and is raised again by emu_start.
        self._slow = uccallback(uc, HOOK_TLB_FILL_CFUNC)(
            lambda uc_, va, access, entry, _key: slow_fill(uc_, va, access, entry.contents,
                                                           None))
        lib.nh_tlb_set_slow(state, ctypes.cast(self._slow, ctypes.c_void_p),
                            A.UC_ARM64_REG_PSTATE, UC_PROT_ALL, page, *image_span)
        native_lib.hook_add(uc, UC_HOOK_TLB_FILL, function_address(lib, "nh_tlb_fill"), state)

    def set_run(self, el1: Regions, el2: Regions, private: Iterable[tuple[int, int]],
                isolated: bool) -> None:
        """The run's address spaces: each EL's regions, the hyp-private PA
        ranges and whether EL1 must not map them (protected mode)."""
        for index, regions in enumerate((el1, el2)):
            table = (NhRegion * max(1, len(regions)))(*[NhRegion(*r) for r in regions])
            if not self._lib.nh_tlb_setup(self._state, index, table, len(regions)):
                raise NativeError(f"{len(regions)} regions: more than the native fill holds")
        ranges = [bound for span in private for bound in span]
        table64 = (ctypes.c_uint64 * max(1, len(ranges)))(*ranges)
        if not self._lib.nh_tlb_set_private(self._state, isolated, table64, len(ranges) // 2):
            raise NativeError(f"{len(ranges) // 2} private ranges: more than the native "
                              "fill holds")

    def set_watch_pages(self, pages: Iterable[int]) -> None:
        """TLB pages (PA // page) of read watches not armed yet."""
        chosen = sorted(pages)
        table = (ctypes.c_uint64 * max(1, len(chosen)))(*chosen)
        if not self._lib.nh_tlb_set_watch_pages(self._state, table, len(chosen)):
            raise MemoryError("nh_tlb_set_watch_pages")

    def take_touched(self) -> list[int]:
        """The RAM pages outside the image mapped since the last call."""
        pages = ctypes.POINTER(ctypes.c_uint64)()
        count = self._lib.nh_touched(self._state, ctypes.byref(pages))
        touched = list(pages[:count]) if count else []
        self._lib.nh_touched_clear(self._state)
        return touched
