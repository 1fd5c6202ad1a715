"""The decoder's index of an ELF, kept between runs.

Reading a distribution's vmlinux (300 MB, 230 000 symbols, 27 MB of line
table) with pyelftools takes many seconds, and a log is often decoded
again against the same kernel. So :class:`~pyharness.elf.symbolizer.ElfSymbolizer`
keeps what it read, per ELF content (:func:`pyharness.elf.reader.content_key`:
size and build-id, else the file's sha256), in the user's cache directory
(``$PYHARNESS_DECODE_CACHE``, else ``$XDG_CACHE_HOME/pyharness/decode``,
else ``~/.cache/pyharness/decode``):

- ``KEY.symbols.json``: the code ranges, every code symbol (addresses,
  sizes, spans, names) and the line table's compile-unit ranges
  (``.debug_aranges``), written once;
- ``KEY.lines.json``: the rows of each compile unit a lookup needed so far,
  added to as other units are met (a whole kernel's line table would take
  minutes to read).

Each file is written whole or not at all (:func:`pyharness.files.write_atomically`)
and is checked when read (its format, its key, its shape): one that does not
pass is ignored and written again. A cache that cannot be written costs
only the next decode's time.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyharness.files import write_atomically

CACHE_ENV = "PYHARNESS_DECODE_CACHE"
_FORMAT = "pyharness decode index 1"

Row = tuple[int, int, str, int]             # start, end, file, line
Unit = tuple[int, int, int]                 # start, end, compile unit offset


@dataclass
class SymbolIndex:
    """What the symbolizer reads of an ELF once: its code symbols as
    columns, by address (a symbol is an index into them)."""

    code_ranges: list[tuple[int, int, int]]          # start, end, section index
    addresses: list[int]
    sizes: list[int]
    spans: list[int]
    names: list[list[str]]                            # the preferred name first
    has_lines: bool
    units: list[Unit] | None                          # None: no .debug_aranges


@dataclass
class UnitRows:
    """Line rows of the compile units met so far (``changed``: not yet saved)."""

    rows: dict[int, list[Row]] = field(default_factory=dict)
    changed: bool = False


def cache_dir() -> Path:
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "pyharness" / "decode"


def _path(key: str, kind: str) -> Path:
    return cache_dir() / f"{key}.{kind}.json"


def _read(key: str, kind: str) -> dict[str, Any] | None:
    try:
        data = json.loads(_path(key, kind).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("key") != key:
        return None
    return data


def _write(key: str, kind: str, data: dict[str, Any]) -> None:
    try:
        _path(key, kind).parent.mkdir(parents=True, exist_ok=True)
        write_atomically(_path(key, kind), json.dumps({"format": _FORMAT, "key": key, **data},
                                                      separators=(",", ":")))
    except OSError:
        pass


def load_index(key: str) -> SymbolIndex | None:
    """The index kept for ``key``, or None (none, or one that does not check)."""
    data = _read(key, "symbols")
    if data is None:
        return None
    try:
        table = data["symbols"]
        numbers = [table[name] for name in ("address", "size", "span")]
        names = table["names"]
        if len({len(c) for c in (*numbers, names)}) != 1 \
                or not all(type(n) is int for column in numbers for n in column) \
                or not all(type(n) is list and n and all(type(m) is str for m in n)
                           for n in names):
            return None
        code_ranges = [(int(a), int(b), int(c)) for a, b, c in data["code_ranges"]]
        units = data["units"]
        return SymbolIndex(code_ranges=code_ranges, addresses=numbers[0], sizes=numbers[1],
                           spans=numbers[2], names=names, has_lines=bool(data["has_lines"]),
                           units=None if units is None else
                           [(int(a), int(b), int(c)) for a, b, c in units])
    except (KeyError, TypeError, ValueError):
        return None


def save_index(key: str, index: SymbolIndex) -> None:
    _write(key, "symbols", {
        "code_ranges": index.code_ranges,
        "symbols": {"address": index.addresses, "size": index.sizes, "span": index.spans,
                    "names": index.names},
        "has_lines": index.has_lines,
        "units": index.units,
    })


def load_rows(key: str) -> UnitRows:
    """The compile units' rows kept for ``key`` (none: empty)."""
    data = _read(key, "lines")
    if data is None:
        return UnitRows()
    try:
        files = [str(f) for f in data["files"]]
        return UnitRows({int(unit): [(int(a), int(b), files[f], int(n)) for a, b, f, n in rows]
                         for unit, rows in data["units"].items()})
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return UnitRows()


def save_rows(key: str, rows: UnitRows) -> None:
    """Keep the units' rows (with those another process kept meanwhile)."""
    merged = {**load_rows(key).rows, **rows.rows}
    files = sorted({row[2] for unit in merged.values() for row in unit})
    number = {name: i for i, name in enumerate(files)}
    _write(key, "lines", {"files": files, "units": {
        str(unit): [[a, b, number[f], n] for a, b, f, n in unit_rows]
        for unit, unit_rows in merged.items()}})
    rows.changed = False
