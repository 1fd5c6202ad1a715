"""What the hot hooks record, the same whichever backend ran them
(:mod:`pyharness.platform.native`: C callbacks, or
:mod:`pyharness.platform.pyhooks`: Python ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

CLOCK_EVERY_BLOCKS = 1024             # as NH_CLOCK_EVERY_BLOCKS in native/nvhe_hooks.c
MAX_HITS = 4096                       # as NH_MAX_HITS

READ, WRITE = "read", "write"
STOP_REASONS = {0: None, 1: "budget", 2: "deadline", 3: "console"}   # as enum nh_stop


class Frame(NamedTuple):
    """One execution of a hooked frame-setup instruction."""

    pc: int
    sp: int
    fp: int
    lr: int


class Hit(NamedTuple):
    """One access to a watched range: its first byte is in the range."""

    watch: int
    access: str      # READ or WRITE
    address: int     # physical
    size: int
    pc: int
    sp: int


@dataclass(frozen=True)
class Results:
    """Everything the hooks recorded in one run."""

    backend: str
    instructions: int
    blocks: int
    stop_reason: str | None
    frames: tuple[Frame, ...]
    hits: tuple[Hit, ...]
    hits_dropped: int


def deadline_ns(deadline_s: float | None) -> int:
    """A time.monotonic() deadline as CLOCK_MONOTONIC nanoseconds (the clock
    the C side reads); 0 for none."""
    return 0 if deadline_s is None else max(1, int(deadline_s * 1e9))
