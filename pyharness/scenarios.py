"""The scenarios a firmware image can run, read from the image itself.

The firmware's ``csrc/include/scenarios.h`` is the only list: the host
puts each name and description, NUL-separated, in the ``.scenario_names``
section, and a scenario's number is its position there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from .errors import HarnessError
from .faults import FAULTS

SECTION = ".scenario_names"


@dataclass(frozen=True)
class Scenario:
    """One scenario: its number (the platform's scenario register), name,
    help, and for a fault-injection scenario the fault it adds to the
    firmware scenario of that number."""

    number: int
    name: str
    description: str
    fault: str | None = None


def _parse(blob: bytes) -> list[Scenario]:
    fields = blob.rstrip(b"\0").split(b"\0")
    if len(fields) % 2:
        raise ValueError("odd number of strings")
    return [Scenario(i // 2, fields[i].decode(), fields[i + 1].decode())
            for i in range(0, len(fields), 2)]


@lru_cache(maxsize=32)
def _scenarios(path: str, size: int, mtime_ns: int) -> tuple[Scenario, ...]:
    try:
        with open(path, "rb") as f:
            section = ELFFile(f).get_section_by_name(SECTION)
            if section is None:
                raise HarnessError(f"{path}: no {SECTION} section; this is not an "
                                   "image built by pyharness build")
            return tuple(_parse(section.data()))
    except (ELFError, ValueError, UnicodeDecodeError) as err:
        raise HarnessError(f"{path}: cannot read the scenario list ({err}); "
                           "rebuild the image with pyharness build") from None


def list_scenarios(elf: Path) -> list[Scenario]:
    """Every scenario the image at ``elf`` knows, in number order, then the
    harness's fault-injection scenarios built on them."""
    try:
        st = elf.stat()
    except OSError as err:
        raise HarnessError(f"{elf}: cannot read the image: {err.strerror}") from None
    firmware = list(_scenarios(str(elf), st.st_size, st.st_mtime_ns))
    numbers = {s.name: s.number for s in firmware}
    faults = [Scenario(numbers[f.base], f.name, f"{f.description} (on {f.base})", f.name)
              for f in FAULTS if f.base in numbers]
    return firmware + faults


def find_scenario(elf: Path, name: str) -> Scenario:
    """The scenario called ``name``, or an error listing the known ones."""
    known = list_scenarios(elf)
    for scenario in known:
        if scenario.name == name:
            return scenario
    names = ", ".join(s.name for s in known)
    raise HarnessError(f"unknown scenario {name!r}; known scenarios: {names} "
                       "(`pyharness scenarios` describes them)")
