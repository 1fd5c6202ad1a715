"""The two C libraries the native hooks use, loaded with ctypes: the hooks
library ``libnvhe_hooks.so`` (built from ``native/`` at install time) and
the ``libunicorn`` the ``unicorn`` package loaded, whose ``uc_hook_add``
registers C callbacks directly. Also which backend a process uses
(``PYHARNESS_NATIVE``, ``PYHARNESS_NATIVE_LIB``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from unicorn import Uc, UcError

from pyharness.errors import HarnessError

ENV_SWITCH = "PYHARNESS_NATIVE"       # "0": Python callbacks; "1": native or an error
ENV_LIBRARY = "PYHARNESS_NATIVE_LIB"  # an explicit path to libnvhe_hooks.so
LIBRARY_NAME = "libnvhe_hooks.so"
LIBRARY_DIR = "_lib"                  # inside the top-level pyharness package
ABI_VERSION = 5


class NativeError(HarnessError):
    """The native hooks were required (PYHARNESS_NATIVE=1) but cannot be used."""


# -- the C types (written from Unicorn's documented API and nvhe_hooks.h) ------

u64, i64, u32 = ctypes.c_uint64, ctypes.c_int64, ctypes.c_uint32
_uc_engine = ctypes.c_void_p
_uc_hook = ctypes.c_size_t


class NhFrame(ctypes.Structure):
    """struct nh_frame"""
    _fields_ = [("pc", u64), ("sp", u64), ("fp", u64), ("lr", u64)]


class NhRegion(ctypes.Structure):
    """struct nh_region"""
    _fields_ = [("va", u64), ("size", u64), ("pa", u64)]


class NhLine(ctypes.Structure):
    """struct nh_line"""
    _fields_ = [("start", u64), ("len", u64)]


class NhHit(ctypes.Structure):
    """struct nh_hit"""
    _fields_ = [("watch", u32), ("access", u32), ("address", u64), ("size", u64),
                ("pc", u64), ("sp", u64)]


@dataclass(frozen=True)
class Libraries:
    unicorn: ctypes.CDLL
    hooks: ctypes.CDLL | None
    hooks_path: Path | None
    reason: str | None        # why hooks is None


def _unicorn_library() -> ctypes.CDLL:
    """The libunicorn the ``unicorn`` package loaded (one instance per
    process: dlopen of the same file returns the same handle)."""
    try:
        from unicorn.unicorn_py3.unicorn import uclib
        path = uclib._name
    except (ImportError, AttributeError):
        import unicorn
        found = sorted((Path(unicorn.__file__).parent / "lib").glob("libunicorn.so*"))
        if not found:
            raise NativeError("cannot find libunicorn inside the unicorn package")
        path = str(found[0])
    lib = ctypes.CDLL(path)
    lib.uc_hook_add.restype = ctypes.c_int
    lib.uc_hook_add.argtypes = [_uc_engine, ctypes.POINTER(_uc_hook), ctypes.c_int,
                                ctypes.c_void_p, ctypes.c_void_p, u64, u64]
    lib.uc_hook_del.restype = ctypes.c_int
    lib.uc_hook_del.argtypes = [_uc_engine, _uc_hook]
    lib.uc_mmio_map.restype = ctypes.c_int
    lib.uc_mmio_map.argtypes = [_uc_engine, u64, ctypes.c_size_t, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.uc_mem_protect.restype = ctypes.c_int
    lib.uc_mem_protect.argtypes = [_uc_engine, u64, ctypes.c_size_t, u32]
    return lib


def library_candidates() -> list[Path]:
    """Where the helper library is looked for, in order."""
    override = os.environ.get(ENV_LIBRARY)
    if override:
        return [Path(override)]
    top = (__package__ or "pyharness").partition(".")[0]
    package = sys.modules.get(top)
    # An editable install's package path holds the source tree and the
    # install tree (where CMake put the library); a wheel install, one dir.
    dirs = list(getattr(package, "__path__", None) or [Path(__file__).parents[1]])
    return [Path(d) / LIBRARY_DIR / LIBRARY_NAME for d in dirs]


def _load_hooks_library() -> tuple[ctypes.CDLL | None, Path | None, str | None]:
    tried = library_candidates()
    path = next((p for p in tried if p.is_file()), None)
    if path is None:
        return None, None, ("the native hooks library is not built (looked for "
                            f"{', '.join(map(str, tried))}); reinstall with "
                            "`pip install -e .` (scripts/setup.sh) to build it")
    try:
        lib = ctypes.CDLL(str(path))
        if lib.nh_abi_version() != ABI_VERSION:
            return None, path, (f"{path} has ABI version {lib.nh_abi_version()}, "
                                f"this pyharness needs {ABI_VERSION}: reinstall")
    except (OSError, AttributeError) as err:
        return None, path, f"cannot load {path}: {err}"
    vp = ctypes.c_void_p
    lib.nh_new.restype = vp
    lib.nh_new.argtypes = [vp, vp, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.nh_free.argtypes = [vp]
    lib.nh_reset.argtypes = [vp]
    lib.nh_clear_watches.argtypes = [vp]
    lib.nh_set_limits.argtypes = [vp, u64, i64]
    lib.nh_set_exact.argtypes = [vp, ctypes.c_bool]
    lib.nh_set_frozen.argtypes = [vp, ctypes.c_bool]
    for name in ("nh_instructions", "nh_blocks", "nh_hits_dropped"):
        getattr(lib, name).restype = u64
        getattr(lib, name).argtypes = [vp]
    lib.nh_mmio_set_slow.argtypes = [vp, vp, vp]
    lib.nh_mmio_start.argtypes = [vp, u64, u64]
    lib.nh_mmio_set_console_limits.argtypes = [vp, u64, u64, u64]
    lib.nh_mmio_set_chain_memory.argtypes = [vp, ctypes.POINTER(u64), u32, u64, u64]
    lib.nh_console_chain_bound.restype = u64
    lib.nh_console_chain_bound.argtypes = [vp]
    lib.nh_mmio_set_line_buffer.restype = ctypes.c_bool
    lib.nh_mmio_set_line_buffer.argtypes = [vp, u64, u64]
    lib.nh_console_put.argtypes = [vp, ctypes.c_uint8]
    lib.nh_console_line.restype = ctypes.c_bool
    lib.nh_console_line.argtypes = [vp, ctypes.c_char_p, u64]
    lib.nh_console.restype = ctypes.c_size_t
    lib.nh_console.argtypes = [vp, ctypes.POINTER(vp), ctypes.POINTER(vp), ctypes.POINTER(vp),
                               ctypes.POINTER(ctypes.c_size_t)]
    lib.nh_tlb_set_slow.argtypes = [vp, vp, ctypes.c_int, u32, u64, u64, u64]
    for name in ("nh_tlb_setup", "nh_tlb_set_private", "nh_tlb_set_watch_pages"):
        getattr(lib, name).restype = ctypes.c_bool
    lib.nh_tlb_setup.argtypes = [vp, ctypes.c_int, vp, u32]
    lib.nh_tlb_set_private.argtypes = [vp, ctypes.c_bool, vp, u32]
    lib.nh_tlb_set_watch_pages.argtypes = [vp, vp, u32]
    lib.nh_touched.restype = ctypes.c_size_t
    lib.nh_touched.argtypes = [vp, ctypes.POINTER(ctypes.POINTER(u64))]
    lib.nh_touched_clear.argtypes = [vp]
    lib.nh_stop_reason.argtypes = [vp]
    lib.nh_clear_stop_reason.argtypes = [vp]
    lib.nh_frames.restype = ctypes.c_size_t
    lib.nh_frames.argtypes = [vp, ctypes.POINTER(ctypes.POINTER(NhFrame))]
    lib.nh_hits.restype = ctypes.c_size_t
    lib.nh_hits.argtypes = [vp, ctypes.POINTER(ctypes.POINTER(NhHit))]
    lib.nh_set_ram.argtypes = [vp, u64, vp, u64, u64]
    lib.nh_add_watch.restype = ctypes.c_int
    lib.nh_add_watch.argtypes = [vp, u64, u64, u32]
    lib.nh_watch_user_data.restype = vp
    lib.nh_watch_user_data.argtypes = [vp, ctypes.c_int]
    return lib, path, None


_LIBS: Libraries | None = None


def libraries() -> Libraries:
    """Both libraries, loaded once per process (the hooks one may be missing)."""
    global _LIBS
    if _LIBS is None:
        hooks, path, reason = _load_hooks_library()
        _LIBS = Libraries(_unicorn_library(), hooks, path, reason)
    return _LIBS


def requested() -> bool | None:
    """``PYHARNESS_NATIVE``: False ("0"), True ("1"), or None (use it if built)."""
    value = os.environ.get(ENV_SWITCH, "").strip().lower()
    if value in ("0", "no", "off", "false", "python"):
        return False
    if value in ("1", "yes", "on", "true", "native"):
        return True
    return None


def unavailable_reason() -> str | None:
    """Why :func:`~pyharness.platform.native.make_hooks` would not give native
    hooks (None: it would)."""
    if requested() is False:
        return f"{ENV_SWITCH}=0"
    return libraries().reason


def backend() -> str:
    """"native" or "python": what ``make_hooks`` gives in this process."""
    reason = unavailable_reason()
    if reason is not None and requested() is True:
        raise NativeError(f"{ENV_SWITCH}=1 but {reason}")
    return "native" if reason is None else "python"


# -- Unicorn's C API, for callbacks that are C function pointers ---------------

def hook_add(uc: Uc, kind: int, callback: int, user: int | None,
             begin: int = 1, end: int = 0) -> int:
    """uc_hook_add with a C function pointer; returns the hook handle."""
    handle = _uc_hook()
    status = libraries().unicorn.uc_hook_add(uc._uch, ctypes.byref(handle), kind, callback,
                                             user, begin, end)
    if status != 0:
        raise UcError(status)
    return handle.value


def hook_del(uc: Uc, handle: int) -> None:
    status = libraries().unicorn.uc_hook_del(uc._uch, handle)
    if status != 0:
        raise UcError(status)


def mem_protect(uc: Uc, span: tuple[int, int], perms: int) -> None:
    """uc_mem_protect of [span[0], span[1])."""
    status = libraries().unicorn.uc_mem_protect(uc._uch, span[0], span[1] - span[0], perms)
    if status != 0:
        raise UcError(status)


class _CpReg(ctypes.Structure):
    """struct uc_arm64_cp_reg"""
    _fields_ = [("crn", u32), ("crm", u32), ("op0", u32), ("op1", u32), ("op2", u32),
                ("val", u64)]


class RegisterBatch:
    """A fixed list of 64-bit registers and system registers (as (op0, op1,
    CRn, CRm, op2)) read by one uc_reg_read_batch into buffers made once.
    The binding's reg_read_batch builds ctypes objects for every register
    of every call: about 0.2 ms for fifty, where this takes microseconds."""

    def __init__(self, reg_ids: Sequence[int], sysregs: Sequence[tuple[int, int, int, int, int]],
                 cp_reg_id: int) -> None:
        count = len(reg_ids) + len(sysregs)
        self._count = ctypes.c_int(count)
        self._ids = (ctypes.c_int * count)(*reg_ids, *[cp_reg_id] * len(sysregs))
        self._values = (u64 * len(reg_ids))()
        self._cp = (_CpReg * len(sysregs))(*[_CpReg(crn, crm, op0, op1, op2, 0)
                                             for op0, op1, crn, crm, op2 in sysregs])
        pointers = [ctypes.addressof(self._values) + 8 * i for i in range(len(reg_ids))]
        pointers += [ctypes.addressof(cp) for cp in self._cp]
        self._pointers = (ctypes.c_void_p * count)(*pointers)
        lib = libraries().unicorn
        lib.uc_reg_read_batch.restype = ctypes.c_int
        lib.uc_reg_read_batch.argtypes = [_uc_engine, ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_int]
        self._read = lib.uc_reg_read_batch

    def read(self, uc: Uc) -> list[int]:
        """The registers' values now, in the order given (registers, then
        system registers); UcError if Unicorn refuses one."""
        status = self._read(uc._uch, self._ids, self._pointers, self._count)
        if status != 0:
            raise UcError(status)
        return [*self._values, *(cp.val for cp in self._cp)]


def function_address(lib: ctypes.CDLL, name: str) -> int:
    """The address of a C function, to hand to uc_hook_add or to C code."""
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
