"""The verdict on a run and the records the judge hands to the run record."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    """``pass``; ``fail`` (the firmware did something other than expected: a
    wrong line, a missing footer, a breach, a hang); ``error`` (the harness
    could not judge: the oracle could not model the run, the emulator stopped
    on an unexpected exception, a worker died)."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"


@dataclass(frozen=True)
class FrameLine:
    """One frame of a call trace as printed or expected: the link-time
    address (16 hex digits, empty if the line printed none), what follows
    it (``sym+off/size``, or the raw pointer printed for an unknown address)
    and, when the image has line information, the ``file:line`` of the call
    (``source``; left out of the JSON when empty, so older records read)."""

    address: str
    symbol: str
    source: str = ""

    def to_json(self) -> dict[str, str]:
        data = {"address": self.address, "symbol": self.symbol}
        if self.source:
            data["source"] = self.source
        return data

    @classmethod
    def from_json(cls, data: dict[str, str]) -> FrameLine:
        return cls(address=str(data.get("address", "")), symbol=str(data.get("symbol", "")),
                   source=str(data.get("source", "")))


@dataclass(frozen=True)
class Judgement:
    """The judge's answer on one run: the verdict, every reason, and the
    frames the console printed (for reports to set beside the expected)."""

    verdict: Verdict
    reasons: tuple[str, ...]
    actual_frames: tuple[FrameLine, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS
