"""The platform MMIO page's hot registers in C (``native/nvhe_mmio.c``).

Counter and scenario reads, console bytes and console lines are served by
the native library without a Python callback (one used to cost each
console line two: its counter read and its line write). Every other
access, and every access once the run has its outcome, goes on to the
Python device model (:class:`~pyharness.platform.mmio.MmioDevices`), which
reports the errors and owns the exit register. The console the C side
keeps is :class:`NativeConsole`, with the Python console's interface.
"""

from __future__ import annotations

import ctypes
from typing import Callable

from unicorn import Uc, UcError
from unicorn.unicorn_py3.unicorn import MMIO_READ_CFUNC, MMIO_WRITE_CFUNC, uccallback

from pyharness.platform.native_lib import NhLine, function_address, libraries

SlowRead = Callable[[Uc, int, int, object], int]
SlowWrite = Callable[[Uc, int, int, int, object], None]


class NativeConsole:
    """The console lines the C side collected, as :class:`~pyharness.platform.mmio.Console`."""

    def __init__(self, lib: ctypes.CDLL, state: int) -> None:
        self._lib, self._state = lib, state

    def put(self, byte: int) -> None:
        self._lib.nh_console_put(self._state, byte & 0xFF)

    def add_line(self, text: bytes) -> None:
        self._lib.nh_console_line(self._state, text, len(text))

    def text(self) -> list[str]:
        text, lines, partial = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        partial_len = ctypes.c_size_t()
        count = self._lib.nh_console(self._state, ctypes.byref(text), ctypes.byref(lines),
                                     ctypes.byref(partial), ctypes.byref(partial_len))
        rows = ctypes.cast(lines, ctypes.POINTER(NhLine))[:count] if count else []
        blob = ctypes.string_at(text, rows[-1].start + rows[-1].len) if rows else b""
        out = [blob[row.start:row.start + row.len].decode("utf-8", "backslashreplace")
               for row in rows]
        if partial_len.value:
            out.append(ctypes.string_at(partial, partial_len.value)
                       .decode("utf-8", "backslashreplace"))
        return out


class NativeMmio:
    """The C registers mapped at ``address`` for the state of a
    :class:`~pyharness.platform.native.NativeHooks`; ``slow_read`` and
    ``slow_write`` serve the rest (Unicorn's mmio_map callback signatures)."""

    def __init__(self, uc: Uc, lib: ctypes.CDLL, state: int, address: int, size: int,
                 slow_read: SlowRead, slow_write: SlowWrite) -> None:
        self._lib, self._state = lib, state
        # The binding's guard: an exception in a callback stops the
        # emulation and is raised again by emu_start.
        self._slow_read = uccallback(uc, MMIO_READ_CFUNC)(
            lambda uc_, offset, size_, _key: slow_read(uc_, offset, size_, None))
        self._slow_write = uccallback(uc, MMIO_WRITE_CFUNC)(
            lambda uc_, offset, size_, value, _key: slow_write(uc_, offset, size_, value, None))
        lib.nh_mmio_set_slow(state, ctypes.cast(self._slow_read, ctypes.c_void_p),
                             ctypes.cast(self._slow_write, ctypes.c_void_p))
        status = libraries().unicorn.uc_mmio_map(
            uc._uch, address, size, function_address(lib, "nh_mmio_read"), state,
            function_address(lib, "nh_mmio_write"), state)
        if status != 0:
            raise UcError(status)
        self.console = NativeConsole(lib, state)

    def start(self, scenario_id: int, counter_step: int) -> None:
        """A new run: counter at 0, console empty, no line buffer."""
        self._lib.nh_mmio_start(self._state, scenario_id, counter_step)

    def set_console_bounds(self, lines: int, frames: int, size: int) -> None:
        """Bound the console (platform/runaway.py): the write that passes
        one stops the emulation with the stop reason "console"."""
        self._lib.nh_mmio_set_console_limits(self._state, lines, frames, size)

    def set_chain_memory(self, stacks: list[tuple[int, int]], buffer_pa: int,
                         buffer_entries: int) -> None:
        """The stacks ((PA, size) each) and buffer the frame-line bound from
        memory is worked out from (platform/runaway.py, ChainMemory)."""
        flat = (ctypes.c_uint64 * (2 * len(stacks)))(*(n for pair in stacks for n in pair))
        self._lib.nh_mmio_set_chain_memory(self._state, flat, len(stacks), buffer_pa,
                                           buffer_entries)

    @property
    def chain_bound(self) -> int:
        """The frame-line bound from memory last worked out (0: none yet)."""
        return self._lib.nh_console_chain_bound(self._state)

    def set_line_buffer(self, pa: int, size: int) -> bool:
        """The host's console line buffer is RAM [pa, pa + size)."""
        return bool(self._lib.nh_mmio_set_line_buffer(self._state, pa, size))
