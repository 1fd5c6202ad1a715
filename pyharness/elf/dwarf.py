"""Address -> file:line from an ELF's DWARF line table (.debug_line).

Like addr2line: each row covers up to the next row's address, and of
several rows at one address the last one counts. Used by the log decoder
(file:line of every frame) and by the oracle (the file:line a BUG line must
name, and each frame's file:line in a run's record); :func:`source_line`
keeps each ELF version's line table and caches per address, because a
parse costs about 15 ms.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError
from pyharness.files import write_atomically


@dataclass(frozen=True)
class SourceLine:
    file: str
    line: int


class LineTable:
    """Address -> file:line from .debug_line, one compile unit at a time.

    Like addr2line: each row covers up to the next row's address, and of
    several rows at one address the last one counts.
    """

    def __init__(self, elf: ELFFile) -> None:
        self._dwarf = elf.get_dwarf_info()
        self._aranges = self._dwarf.get_aranges()
        self._by_cu: dict[int, tuple[list[int], list[tuple[int, str, int]]]] = {}
        self._all_cus: list[int] | None = None

    def lookup(self, address: int) -> SourceLine | None:
        cu_offset = self._aranges.cu_offset_at_addr(address) if self._aranges else None
        candidates = [cu_offset] if cu_offset is not None else self._every_cu()
        for offset in candidates:
            starts, rows = self._ranges_of(offset)
            i = bisect.bisect_right(starts, address) - 1
            if i >= 0 and address < rows[i][0]:
                _, file, line = rows[i]
                return SourceLine(file=file, line=line)
        return None

    def units(self) -> list[tuple[int, int, int]] | None:
        """(start, end, compile unit offset) of each range .debug_aranges
        gives, by address; None without .debug_aranges (``lookup`` then
        searches every unit)."""
        if not self._aranges:
            return None
        return [(e.begin_addr, e.begin_addr + e.length, e.info_offset)
                for e in self._aranges.entries]

    def unit_rows(self, cu_offset: int) -> list[tuple[int, int, str, int]]:
        """The rows of one compile unit, by address: (start, end, file, line)."""
        starts, ends = self._ranges_of(cu_offset)
        return [(start, *end) for start, end in zip(starts, ends)]

    def rows(self) -> list[tuple[int, int, str, int]]:
        """Every row of every compile unit: (start, end, file, line)."""
        rows = []
        for offset in self._every_cu():
            starts, ends = self._ranges_of(offset)
            rows += [(start, *end) for start, end in zip(starts, ends)]
        return rows

    def _every_cu(self) -> list[int]:
        if self._all_cus is None:
            self._all_cus = [cu.cu_offset for cu in self._dwarf.iter_CUs()]
        return self._all_cus

    def _ranges_of(self, cu_offset: int) -> tuple[list[int], list[tuple[int, str, int]]]:
        cached = self._by_cu.get(cu_offset)
        if cached is not None:
            return cached
        cu = self._dwarf.get_CU_at(cu_offset)
        program = self._dwarf.line_program_for_CU(cu)
        comp_dir_attr = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
        comp_dir = _text(comp_dir_attr.value) if comp_dir_attr else ""
        ranges: list[tuple[int, int, str, int]] = []
        if program is not None:
            names: dict[int, str] = {}
            sequence: list[Any] = []
            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                if sequence and sequence[-1].address == state.address and not state.end_sequence:
                    sequence[-1] = state           # the last row at an address wins
                else:
                    sequence.append(state)
                if state.end_sequence:
                    for row, following in zip(sequence, sequence[1:]):
                        if row.address < following.address:
                            if row.file not in names:
                                names[row.file] = _file_name(program, row.file, comp_dir)
                            ranges.append((row.address, following.address,
                                           names[row.file], row.line))
                    sequence = []
        ranges.sort()
        result = ([r[0] for r in ranges], [(r[1], r[2], r[3]) for r in ranges])
        self._by_cu[cu_offset] = result
        return result


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _file_name(program: Any, index: int, comp_dir: str) -> str:
    """The full path of file ``index`` of a line program, as addr2line prints it."""
    header = program.header
    files, dirs = header["file_entry"], header["include_directory"]
    if header["version"] >= 5:           # 0-based; directory 0 is the compile dir
        entry = files[index]
        directory = _text(dirs[entry.dir_index]) if entry.dir_index < len(dirs) else comp_dir
    else:                                # 1-based; directory 0 is the compile dir
        entry = files[index - 1]
        directory = comp_dir if entry.dir_index == 0 else _text(dirs[entry.dir_index - 1])
    name = _text(entry.name)
    if posixpath.isabs(name):
        return name
    if not posixpath.isabs(directory):
        directory = posixpath.join(comp_dir, directory)
    return posixpath.join(directory, name)


def source_line(elf: Path, link_address: int) -> tuple[str, int] | None:
    """file:line of an instruction of ``elf``, as ``__FILE__`` would say it
    (relative to the source tree), or None without line information."""
    st = elf.stat()
    return _source_line(str(elf), st.st_mtime_ns, st.st_size, link_address)


# A build directory's line index: every row of the ELF's line table, as
# :class:`LineIndex` reads it. Parsing .debug_line with pyelftools costs
# 50-150 ms an image, and every matrix worker needs each image's; the
# index loads in about a millisecond. Only a build directory (the one
# holding build.json) gets one: nothing is written next to another ELF.
LINE_INDEX_NAME = "lines.json"
BUILD_MARKER = "build.json"


class LineIndex:
    """file:line rows of a whole ELF, sorted by address (the compile units
    of a build do not overlap, so one sorted list is the line table)."""

    def __init__(self, rows: list[tuple[int, int, str, int]]) -> None:
        rows = sorted(rows)
        self._starts = [row[0] for row in rows]
        self._rows = rows

    @classmethod
    def of(cls, table: LineTable) -> "LineIndex":
        return cls(table.rows())

    def lookup(self, address: int) -> SourceLine | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._rows[i][1]:
            return SourceLine(file=self._rows[i][2], line=self._rows[i][3])
        return None

    def to_json(self, key: list[int]) -> str:
        files = sorted({row[2] for row in self._rows})
        number = {name: i for i, name in enumerate(files)}
        return json.dumps({"elf": key, "files": files,
                           "rows": [[a, b, number[f], n] for a, b, f, n in self._rows]})

    @classmethod
    def from_json(cls, text: str, key: list[int]) -> "LineIndex | None":
        """The index in ``text`` if it is of the ELF version ``key``."""
        try:
            data = json.loads(text)
            if data["elf"] != key:
                return None
            files = data["files"]
            return cls([(a, b, files[f], n) for a, b, f, n in data["rows"]])
        except (ValueError, KeyError, TypeError, IndexError):
            return None


@functools.lru_cache(maxsize=8)
def _line_table(elf: str, _mtime_ns: int, _size: int) -> LineIndex | LineTable | None:
    """One ELF version's line table, kept: from the build directory's line
    index when it has an up-to-date one, else parsed (and, in a build
    directory, the index written for the next process)."""
    path = Path(elf)
    key = [_mtime_ns, _size]
    index_file = path.parent / LINE_INDEX_NAME
    in_build = (path.parent / BUILD_MARKER).is_file()
    if in_build:
        try:
            index = LineIndex.from_json(index_file.read_text(), key)
        except OSError:
            index = None
        if index is not None:
            return index
    reader = ElfReader.open(path, hint="rebuild it with `pyharness build`")
    if not reader.has_debug_line():
        return None
    table = LineTable(reader.elf)
    if not in_build:
        return table
    try:
        index = LineIndex.of(table)
    except CORRUPT_ELF_ERRORS:
        return table   # source_line reports it at the first lookup
    # Whole or not at all (matrix workers may race to it); a build
    # directory that cannot be written only costs the next parse.
    try:
        write_atomically(index_file, index.to_json(key))
    except OSError:
        pass
    return index


@functools.lru_cache(maxsize=1024)
def _source_line(elf: str, _mtime_ns: int, _size: int,
                 link_address: int) -> tuple[str, int] | None:
    table = _line_table(elf, _mtime_ns, _size)
    if table is None:
        return None
    try:
        found = table.lookup(link_address)
    except CORRUPT_ELF_ERRORS as err:
        raise ElfReadError(f"{elf}: corrupt DWARF line table ({err}); "
                           "rebuild it with -g") from None
    if found is None:
        return None
    # The build maps its directory to "." in DWARF; the kernel prints the
    # path relative to the source tree, as __FILE__ is.
    return os.path.normpath(found.file), found.line
