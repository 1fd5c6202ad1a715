"""The image's layout record: ``struct platform_layout`` (csrc/include/platform.h).

The firmware emits the platform's numbers (page size, VA bits, address map,
KASLR range, ...) into its ``.platform_layout`` section, so the harness never
keeps a copy of its own (docs/platform.md, "Layout record"). This module
turns the section's bytes into a frozen :class:`Layout`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

LAYOUT_SECTION = ".platform_layout"
LAYOUT_MAGIC = 0x3142414C4548564E  # "NVHELAB1" as a little-endian u64
LAYOUT_VERSION = 2

SUPPORTED_PAGE_SHIFTS = (12, 14, 16)


class LayoutError(ValueError):
    """The layout record is malformed; the message says which field and why."""


@dataclass(frozen=True)
class Layout:
    """One field per u64 of ``struct platform_layout``, in struct order."""

    magic: int
    version: int
    page_shift: int
    va_bits: int
    nr_cpus: int
    kimage_vaddr: int
    page_offset: int
    phys_ram_base: int
    phys_ram_size: int
    image_phys_offset: int
    mmio_phys: int
    mmio_va_el1: int
    mmio_va_el2: int
    hyp_va_offset: int
    hyp_stack_va_base: int
    kaslr_align: int
    kaslr_max: int
    protected_stacktrace: bool
    randomize_base: bool

    @classmethod
    def from_bytes(cls, data: bytes) -> Layout:
        """Decode and sanity-check a record; raises :class:`LayoutError`."""
        names = [f.name for f in fields(cls)]
        if len(data) < 16:
            raise LayoutError(f"the record is {len(data)} bytes, too short for a magic "
                              "and a version")
        magic, version = struct.unpack_from("<QQ", data)
        if magic != LAYOUT_MAGIC:
            raise LayoutError(f"bad magic {magic:#018x} (expected {LAYOUT_MAGIC:#018x}, "
                              "\"NVHELAB1\")")
        if version != LAYOUT_VERSION:
            raise LayoutError(f"record version {version}, this harness reads version "
                              f"{LAYOUT_VERSION}")
        need = 8 * len(names)
        if len(data) < need:
            raise LayoutError(f"the record is {len(data)} bytes, version {version} "
                              f"has {need}")
        values = dict(zip(names, struct.unpack_from(f"<{len(names)}Q", data)))
        values["protected_stacktrace"] = bool(values["protected_stacktrace"])
        values["randomize_base"] = bool(values["randomize_base"])
        layout = cls(**values)
        layout._check()
        return layout

    def _check(self) -> None:
        if self.page_shift not in SUPPORTED_PAGE_SHIFTS:
            raise LayoutError(f"page_shift {self.page_shift} is not one of "
                              f"{SUPPORTED_PAGE_SHIFTS}")
        if not 36 <= self.va_bits <= 52:
            raise LayoutError(f"va_bits {self.va_bits} is out of range 36..52")
        if not 1 <= self.nr_cpus <= 64:
            raise LayoutError(f"nr_cpus {self.nr_cpus} is out of range 1..64")
        page_mask = self.page_size - 1
        for name in ("kimage_vaddr", "phys_ram_base", "phys_ram_size", "image_phys_offset",
                     "mmio_phys", "mmio_va_el1", "mmio_va_el2", "hyp_va_offset",
                     "hyp_stack_va_base"):
            if getattr(self, name) & page_mask:
                raise LayoutError(f"{name} {getattr(self, name):#x} is not aligned to "
                                  f"the {self.page_size:#x}-byte page")
        if self.kaslr_align == 0 or self.kaslr_align & page_mask:
            raise LayoutError(f"kaslr_align {self.kaslr_align:#x} is not a non-zero "
                              "multiple of the page size")
        if self.kaslr_max < self.kaslr_align:
            raise LayoutError(f"kaslr_max {self.kaslr_max:#x} is below kaslr_align "
                              f"{self.kaslr_align:#x}")

    @property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @property
    def image_phys_base(self) -> int:
        """PA of ``_text``."""
        return self.phys_ram_base + self.image_phys_offset

    @property
    def phys_ram_end(self) -> int:
        return self.phys_ram_base + self.phys_ram_size

    def hyp_stack_va(self, cpu: int, size: int | None = None) -> int:
        """Bottom of CPU ``cpu``'s hyp stack of ``size`` bytes (a page by
        default), at an odd multiple of its size; its guard is just below."""
        size = size or self.page_size
        return self.hyp_stack_va_base + (2 * cpu + 1) * size


def strip_pac(address: int, va_bits: int, *, upper: bool = True) -> int:
    """A return address without its pointer-authentication code, as the
    kernel's unwinders strip it: every bit above VA_BITS set for an
    upper-half (TTBR1, the EL1 kernel's) address, cleared for a lower-half
    one (TTBR0_EL2, the nVHE hypervisor's)."""
    above = ((1 << 64) - 1) ^ ((1 << va_bits) - 1)
    return address | above if upper else address & ~above
