"""The platform's per-EL address spaces (docs/platform.md, "Virtual address spaces").

Pure bookkeeping, no Unicorn: which VA ranges exist at EL1 and at EL2,
where they land in physical memory, and which physical pages are
hypervisor-private (the pages an EL1 access to is an isolation breach in
protected mode). The machine's TLB-fill hook asks :meth:`AddressSpaces.translate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from pyharness.elf.image import Image, ImageError
from pyharness.elf.layout import Layout
from pyharness.platform.geometry import HYP_STACK_PAGES, stack_geometry
from pyharness.platform.results import MachineError


@dataclass(frozen=True)
class Region:
    """A VA range mapped linearly onto PA ``pa``."""

    name: str
    va: int
    size: int
    pa: int
    mmio: bool = False

    @property
    def end(self) -> int:
        return self.va + self.size

    def __contains__(self, va: int) -> bool:
        return self.va <= va < self.va + self.size


@dataclass(frozen=True)
class AddressSpaces:
    el1: tuple[Region, ...]
    el2: tuple[Region, ...]
    hyp_private: tuple[tuple[int, int], ...]  # PA ranges [start, end), page-rounded

    def regions(self, el: int) -> tuple[Region, ...]:
        return self.el2 if el >= 2 else self.el1

    def region_of(self, va: int, el: int) -> Region | None:
        for region in self.regions(el):
            if va in region:
                return region
        return None

    def translate(self, va: int, el: int) -> int | None:
        """PA of ``va`` at exception level ``el`` (0 and 1 share a regime)."""
        region = self.region_of(va, el)
        return None if region is None else region.pa + (va - region.va)

    def is_hyp_private(self, pa: int) -> bool:
        return any(start <= pa < end for start, end in self.hyp_private)

    def physical_chunks(self, va: int, size: int, el: int,
                        page: int) -> Iterator[tuple[int, int]]:
        """(PA, length) of each page-bounded piece of [va, va + size) at
        ``el``; MachineError if any of it is not RAM."""
        while size > 0:
            region = self.region_of(va, el)
            if region is None or region.mmio:
                what = "MMIO" if region is not None else "not mapped"
                raise MachineError(f"VA {va:#x} is {what} at EL{el}; only RAM can be "
                                   "read or written from the harness")
            chunk = min(size, page - va % page, region.end - va)
            yield region.pa + (va - region.va), chunk
            va += chunk
            size -= chunk


def build_address_spaces(image: Image, kaslr_offset: int) -> AddressSpaces:
    """The address map for ``image`` running at ``kaslr_offset``.

    Needs the contract's symbols (``kvm_arm_hyp_stack_pages``, the
    ``__hyp_private_*`` bounds, optionally ``__hyp_shared_*``); raises
    :class:`ImageError` naming any that is missing.
    """
    layout = image.layout
    page = layout.page_size
    geometry = stack_geometry(image)
    stacks_pa = geometry.hyp_stack_pa(0).lo
    el1 = (
        Region("linear map", layout.page_offset, layout.phys_ram_size, layout.phys_ram_base),
        Region("kernel image", layout.kimage_vaddr + kaslr_offset,
               image.link_end - image.link_base, layout.image_phys_base),
        Region("MMIO", layout.mmio_va_el1, page, layout.mmio_phys, mmio=True),
    )
    el2 = (
        Region("hyp alias of RAM", layout.phys_ram_base + layout.hyp_va_offset,
               layout.phys_ram_size, layout.phys_ram_base),
        *(Region(f"hyp stack of CPU {cpu}", geometry.hyp_stack_va(cpu).lo,
                 geometry.hyp_stack_size, geometry.hyp_stack_pa(cpu).lo)
          for cpu in range(layout.nr_cpus)),
        Region("MMIO", layout.mmio_va_el2, page, layout.mmio_phys, mmio=True),
    )
    for regions, el in ((el1, 1), (el2, 2)):
        _check_disjoint(image, regions, el)
    if stacks_pa % page or not image.contains(geometry.hyp_stack_pages_link.hi - 1):
        raise ImageError(f"{image.path}: {HYP_STACK_PAGES} must be page aligned and "
                         f"hold NR_CPUS ({layout.nr_cpus}) hyp stacks inside the image "
                         "(docs/platform.md); fix the firmware's linker script")
    return AddressSpaces(el1, el2, _hyp_private_ranges(image, layout, stacks_pa,
                                                       geometry.hyp_stack_size))


def _check_disjoint(image: Image, regions: tuple[Region, ...], el: int) -> None:
    ordered = sorted(regions, key=lambda r: r.va)
    for low, high in zip(ordered, ordered[1:]):
        if low.end > high.va:
            raise ImageError(f"{image.path}: at EL{el} the {low.name} "
                             f"[{low.va:#x}, {low.end:#x}) overlaps the {high.name} at "
                             f"{high.va:#x}; the layout record's address map is "
                             "inconsistent, check csrc/include/platform.h")


def _hyp_private_ranges(image: Image, layout: Layout, stacks_pa: int,
                        hyp_stack_size: int) -> tuple[tuple[int, int], ...]:
    """Hyp-private physical pages: the private image range (rounded out to
    pages) minus the shared pages, plus the hyp stacks."""
    page = layout.page_size

    def pages(start_sym: str, end_sym: str) -> tuple[int, int] | None:
        start, end = image.find_symbol(start_sym), image.find_symbol(end_sym)
        if start is None or end is None or end.address <= start.address:
            return None
        lo = image.phys_address(start.address) // page * page
        hi = -(-image.phys_address(end.address) // page) * page
        return lo, hi

    image.symbol("__hyp_private_start")
    image.symbol("__hyp_private_end")
    private = pages("__hyp_private_start", "__hyp_private_end")
    ranges = [private] if private else []
    shared = pages("__hyp_shared_start", "__hyp_shared_end")
    if shared:
        cut = []
        for lo, hi in ranges:
            if shared[1] <= lo or shared[0] >= hi:
                cut.append((lo, hi))
                continue
            if lo < shared[0]:
                cut.append((lo, shared[0]))
            if shared[1] < hi:
                cut.append((shared[1], hi))
        ranges = cut
    ranges.append((stacks_pa, stacks_pa + layout.nr_cpus * hyp_stack_size))
    return tuple(sorted(ranges))
