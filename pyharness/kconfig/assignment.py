"""One ``CONFIG_X=value`` line of a fragment or .config, and where it came from."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    """One ``CONFIG_X=v`` (or ``# CONFIG_X is not set``) line of a file."""

    name: str
    value: str
    path: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value[1:-1])
