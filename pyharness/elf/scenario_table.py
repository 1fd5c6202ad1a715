"""The firmware's scenario list, read from the image itself.

The firmware's ``csrc/include/scenarios.h`` is the only list: the host
puts each name and description, NUL-separated, in the ``.scenario_names``
section, and a scenario's number is its position there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pyharness.elf.reader import ElfReader, ElfReadError

SECTION = ".scenario_names"
_HINT = "rebuild the image with pyharness build"


@dataclass(frozen=True)
class FirmwareScenario:
    """A scenario the firmware implements: its number (the platform's
    scenario register), name and help."""

    number: int
    name: str
    description: str


def _parse(blob: bytes) -> list[FirmwareScenario]:
    fields = blob.rstrip(b"\0").split(b"\0")
    if len(fields) % 2:
        raise ValueError("odd number of strings")
    return [FirmwareScenario(i // 2, fields[i].decode(), fields[i + 1].decode())
            for i in range(0, len(fields), 2)]


def firmware_scenarios(elf: Path) -> tuple[FirmwareScenario, ...]:
    """Every scenario the image at ``elf`` implements, in number order."""
    try:
        st = elf.stat()
    except OSError as err:
        raise ElfReadError(f"{elf}: cannot read the image: {err.strerror}") from None
    return _scenarios(str(elf), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=32)
def _scenarios(path: str, _size: int, _mtime_ns: int) -> tuple[FirmwareScenario, ...]:
    reader = ElfReader.open(Path(path), hint=_HINT)
    data = reader.section_data(SECTION)
    if data is None:
        raise ElfReadError(f"{path}: no {SECTION} section; this is not an image built by "
                           "pyharness build")
    try:
        return tuple(_parse(data))
    except (ValueError, UnicodeDecodeError) as err:
        raise ElfReadError(f"{path}: cannot read the scenario list ({err}); {_HINT}") from None
