"""The instruction budget and the wall-clock deadline of a run.

The block hook (:mod:`pyharness.platform.native`, C or Python) counts the
instructions as the sum of translation-block sizes, one callback per
block, stops the emulation before a block that would run past the budget
and, every 1024 blocks, past the deadline (emu_start's own timeout starts
a thread per call that polls every 2 us, a sixth of a core per worker).
The last stretch before the budget runs with emu_start's own instruction
count, so a budget stop is exact. (Counting with emu_start's count all
along costs a callback per instruction.) A block cut short by a fault, a
stop or a read watch being armed still counts whole, so otherwise the
count may run a few instructions ahead.
"""

from __future__ import annotations

import enum
import time

from unicorn import Uc

from pyharness.platform.native import NativeHooks, PythonHooks


class Stop(enum.Enum):
    """Why a stretch of emulation ended, as far as the budget can tell."""

    NOT_THE_BUDGET = "none"      # something else stopped it
    EXACT_STRETCH = "exact"      # just before the budget: go on, counting exactly
    BUDGET = "budget"            # the budget is used up
    DEADLINE = "deadline"        # the wall-clock deadline passed
    CONSOLE = "console"          # the native console passed a bound (platform/runaway.py)


class RunBudget:
    """One run's budget, kept through ``hooks`` between ``emu_start`` calls."""

    def __init__(self, uc: Uc, hooks: NativeHooks | PythonHooks, max_instructions: int,
                 timeout_s: float) -> None:
        self._uc = uc
        self._hooks = hooks
        self.max_instructions = max_instructions
        self.timeout_s = timeout_s
        self.deadline = float("inf")

    def start(self) -> None:
        """The run's first instruction is next: the clock starts."""
        self.deadline = time.monotonic() + self.timeout_s
        self._hooks.set_limits(self.max_instructions, self.deadline)

    @property
    def count(self) -> int:
        """Instructions run so far (whole blocks)."""
        return self._hooks.instructions

    def used_up(self) -> Stop | None:
        """Before a stretch: is there budget and time left?"""
        if self.max_instructions - self.count <= 0:
            return Stop.BUDGET
        if time.monotonic() >= self.deadline:
            return Stop.DEADLINE
        return None

    def begin_stretch(self) -> int:
        """The ``count`` for the next emu_start: 0 (the block hook keeps the
        budget) until the exact last stretch."""
        self._hooks.clear_stop_reason()
        return self.max_instructions - self.count if self._hooks.exact else 0

    def after_stretch(self) -> Stop:
        """After a stretch nothing else explains: what the budget says."""
        hooks = self._hooks
        if hooks.stop_reason == "console":
            return Stop.CONSOLE
        if hooks.stop_reason == "budget":
            # Unicorn 2.1.4 ignores a count given to an instance that
            # already translated code without one: flush, then count.
            hooks.exact = True
            self._uc.ctl_flush_tb()
            return Stop.EXACT_STRETCH
        if hooks.exact and self.count >= self.max_instructions:
            return Stop.BUDGET
        if hooks.stop_reason == "deadline" or time.monotonic() >= self.deadline:
            return Stop.DEADLINE
        return Stop.NOT_THE_BUDGET

    @property
    def ended_exactly(self) -> bool:
        """The run reached its exact last stretch (emu_start's own count)."""
        return self._hooks.exact
