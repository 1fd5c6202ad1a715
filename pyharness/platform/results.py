"""What the platform hands back: run options, how a run ended, and what it saw.

Records only, no Unicorn: the judge and the reports read these without
touching the emulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from pyharness.errors import HarnessError

BOOT_FLAG_PROTECTED = 1
# The largest budgets a run may be given: a day of wall time, and an
# instruction count that still fits Unicorn's 64-bit count.
MAX_TIMEOUT_S = 86_400.0
MAX_INSTRUCTIONS = 1 << 62


class MachineError(HarnessError):
    """Bad run options or a misuse of the Machine API (exit 2 from the CLI)."""


def check_budgets(max_instructions: object = None, timeout_s: object = None) -> None:
    """The one check of a run's budgets, for every command and the library
    (``None``: not given, nothing to check): a whole number of instructions
    from 1 to 2**62, a number of seconds above 0 and at most a day. NaN,
    infinity, zero, negatives and non-numbers are a MachineError (exit 2)."""
    if max_instructions is not None and (
            not isinstance(max_instructions, int) or isinstance(max_instructions, bool)
            or not 1 <= max_instructions <= MAX_INSTRUCTIONS):
        raise MachineError(f"--max-instructions {max_instructions!r}: the instruction "
                           "budget must be a whole number from 1 to 2**62")
    if timeout_s is not None and (
            not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool)
            or not math.isfinite(timeout_s) or not 0 < timeout_s <= MAX_TIMEOUT_S):
        raise MachineError(f"--timeout {timeout_s!r}: the wall-clock budget must be a "
                           f"number of seconds above 0 and at most {MAX_TIMEOUT_S:g}")


class RunStatus(str, Enum):
    EXITED = "exited"                       # the firmware wrote the exit register
    ISOLATION_BREACH = "isolation-breach"   # protected mode: EL1 touched hyp memory
    DID_NOT_FINISH = "did-not-finish"       # instruction budget or wall timeout
    ERROR = "error"                         # an unexpected exception or fault


@dataclass(frozen=True)
class RunOptions:
    """How to run: which CPU boots, the boot mode, the value of the scenario
    register, the KASLR seed, and the two budgets. ``timeout_s`` is wall
    time from the first instruction (setup not included)."""

    cpu: int = 0
    protected: bool = False
    scenario_id: int = 0
    kaslr_seed: int = 0
    max_instructions: int = 5_000_000
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        check_budgets(self.max_instructions, self.timeout_s)

    @property
    def boot_flags(self) -> int:
        return BOOT_FLAG_PROTECTED if self.protected else 0


@dataclass(frozen=True)
class Breach:
    """An EL1 access to a hyp-private page in protected mode."""

    va: int
    pa: int
    pc: int
    access: str         # "read", "write" or "fetch"
    target: str         # what lives at the address (symbol+off, or the region)
    pc_symbol: str

    def __str__(self) -> str:
        return (f"isolation breach: EL1 {self.access} of hyp-private VA {self.va:#x} "
                f"(PA {self.pa:#x}, {self.target}) at pc {self.pc:#x} ({self.pc_symbol})")


@dataclass(frozen=True)
class RunResult:
    status: RunStatus
    exit_code: int | None
    console: list[str]
    instructions: int
    elapsed_ms: float
    reason: str
    kaslr_offset: int
    breach: Breach | None
    registers: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.EXITED and self.exit_code == 0

    def register_dump(self) -> str:
        return format_registers(self.registers)


@dataclass(frozen=True)
class PerCpuChange:
    """Bytes of another CPU's per-CPU copy that differ after the run."""

    side: str           # "hyp" or "host"
    cpu: int
    offset: int         # from the start of that CPU's copy
    length: int
    symbol: str         # the template variable at that offset (symbol+off)

    def __str__(self) -> str:
        return (f"{self.side} per-CPU data of CPU {self.cpu} changed: {self.length} bytes "
                f"at +{self.offset:#x} ({self.symbol})")


def format_registers(regs: dict[str, int]) -> str:
    """A register dump, four registers a line."""
    names = [f"x{n}" for n in range(31)] + ["sp", "pc", "pstate", "el"]
    names += [name for name in regs if name not in names]
    cells = [f"{name:>9} {regs[name]:016x}" for name in names if name in regs]
    return "\n".join("".join(cells[i:i + 4]) for i in range(0, len(cells), 4))
