"""Where each C function's code is in an image: its out-of-line body and
every copy inlined into another function (DWARF subprogram and
inlined-subroutine entries).

``pyharness mutate`` uses it to skip the runs that never execute a mutated
function. A function whose code cannot be located exactly (an inlined copy
without an address range, a range form this reader does not know) is
reported with ``None``, and one with no code at all is not reported: the
caller must then assume every run executes it.
"""

from __future__ import annotations

import functools
from pathlib import Path

from elftools.dwarf.ranges import BaseAddressEntry, RangeEntry

from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError

Ranges = tuple[tuple[int, int], ...]
_TAGS = ("DW_TAG_subprogram", "DW_TAG_inlined_subroutine")


def _name(die) -> str | None:  # type: ignore[no-untyped-def]
    """A DIE's function name, through abstract origins and specifications."""
    for _ in range(8):
        attributes = die.attributes
        if "DW_AT_name" in attributes:
            value = attributes["DW_AT_name"].value
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        for link in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if link in attributes:
                die = die.get_DIE_from_attribute(link)
                break
        else:
            return None
    return None


def _ranges(die, cu, range_lists) -> list[tuple[int, int]] | None:  # type: ignore[no-untyped-def]
    """The DIE's address ranges; [] when it has no code; None when they
    cannot be read."""
    attributes = die.attributes
    if "DW_AT_low_pc" in attributes and "DW_AT_high_pc" in attributes:
        low = attributes["DW_AT_low_pc"].value
        high = attributes["DW_AT_high_pc"]
        end = high.value if high.form == "DW_FORM_addr" else low + high.value
        return [(low, end)]
    if "DW_AT_ranges" not in attributes:
        return []
    ranges_attr = attributes["DW_AT_ranges"]
    # pyelftools has already turned a DW_FORM_rnglistx index into an offset.
    if range_lists is None or ranges_attr.form not in ("DW_FORM_sec_offset", "DW_FORM_rnglistx"):
        return None
    top = cu.get_top_DIE().attributes.get("DW_AT_low_pc")
    base = top.value if top is not None else 0
    out = []
    for entry in range_lists.get_range_list_at_offset(ranges_attr.value, cu=cu):
        if isinstance(entry, BaseAddressEntry):
            base = entry.base_address
        elif isinstance(entry, RangeEntry):
            if entry.is_absolute:
                out.append((entry.begin_offset, entry.end_offset))
            else:
                out.append((base + entry.begin_offset, base + entry.end_offset))
    return out


def function_instances(elf: Path) -> dict[str, Ranges | None]:
    """Function name -> the link-time address ranges of all its code
    (out-of-line and inlined), or None where some of it cannot be located."""
    st = elf.stat()
    return _function_instances(str(elf), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _function_instances(elf: str, _mtime_ns: int, _size: int) -> dict[str, Ranges | None]:
    reader = ElfReader.open(Path(elf), hint="rebuild it with `pyharness build`")
    found: dict[str, list[tuple[int, int]] | None] = {}
    try:
        dwarf = reader.elf.get_dwarf_info()
        range_lists = dwarf.range_lists()
        for cu in dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag not in _TAGS:
                    continue
                name = _name(die)
                if name is None:
                    continue
                ranges = _ranges(die, cu, range_lists)
                if ranges == [] and die.tag == "DW_TAG_subprogram":
                    continue        # a declaration or an abstract instance: no code
                if not ranges:      # an inlined copy whose code is not located
                    found[name] = None
                elif found.get(name, []) is not None:
                    found.setdefault(name, []).extend(r for r in ranges if r[0] < r[1])  # type: ignore[union-attr]
    except CORRUPT_ELF_ERRORS as err:
        raise ElfReadError(f"{elf}: corrupt DWARF ({err}); rebuild it with -g") from None
    return {name: None if ranges is None else tuple(sorted(set(ranges)))
            for name, ranges in found.items()}
