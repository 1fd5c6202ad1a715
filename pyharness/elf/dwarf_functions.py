"""Where a function is defined, from an ELF's DWARF (``DW_TAG_subprogram``
with ``DW_AT_decl_file``/``DW_AT_decl_line``), inlined or not.

The unwinder's helpers are ``static inline``: most have no symbol, but
every compile unit that used one describes it. The diagnosis uses this to
name the function (and its ``file:line``, in the kernel tree when the
code came from one) that holds the rule that looks broken.
"""

from __future__ import annotations

import functools
import os
import posixpath
from pathlib import Path

from pyharness.elf.dwarf import SourceLine
from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError
from pyharness.errors import HarnessError


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _decl_file(program, index: int) -> str:
    """File ``index`` of a line program's table (DWARF 5: 0-based, else 1-based)."""
    header = program.header
    files, dirs = header["file_entry"], header["include_directory"]
    entry = files[index] if header["version"] >= 5 else files[index - 1]
    name = _text(entry.name)
    if posixpath.isabs(name):
        return name
    slot = entry.dir_index if header["version"] >= 5 else entry.dir_index - 1
    directory = _text(dirs[slot]) if 0 <= slot < len(dirs) else ""
    return posixpath.join(directory, name) if directory else name


@functools.lru_cache(maxsize=8)
def _definitions(elf: str, _mtime_ns: int, _size: int) -> dict[str, tuple[SourceLine, ...]]:
    reader = ElfReader.open(Path(elf), hint="rebuild it with `pyharness build`")
    if not reader.elf.has_dwarf_info():
        return {}
    found: dict[str, set[SourceLine]] = {}
    dwarf = reader.elf.get_dwarf_info()
    for cu in dwarf.iter_CUs():
        program = dwarf.line_program_for_CU(cu)
        if program is None:
            continue
        for die in cu.get_top_DIE().iter_children():   # functions are the CU's children
            if die.tag != "DW_TAG_subprogram":
                continue
            attrs = die.attributes
            if not {"DW_AT_name", "DW_AT_decl_file", "DW_AT_decl_line"} <= attrs.keys():
                continue
            try:
                path = _decl_file(program, attrs["DW_AT_decl_file"].value)
            except (IndexError, KeyError):
                continue
            where = SourceLine(os.path.normpath(path), attrs["DW_AT_decl_line"].value)
            found.setdefault(_text(attrs["DW_AT_name"].value), set()).add(where)
    return {name: tuple(sorted(places, key=lambda s: (s.file, s.line)))
            for name, places in found.items()}


def function_definitions(elf: Path, name: str) -> tuple[SourceLine, ...]:
    """Every place the image's DWARF says a function ``name`` is defined
    (several for a name two files each define statically); () when none."""
    try:
        st = elf.stat()
        return _definitions(str(elf), st.st_mtime_ns, st.st_size).get(name, ())
    except (OSError, HarnessError):
        return ()
    except CORRUPT_ELF_ERRORS as err:
        raise ElfReadError(f"{elf}: corrupt DWARF ({err}); rebuild it with -g") from None
