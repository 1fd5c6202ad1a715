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
    diagnosis: Diagnosis | None = None   # where a failing trace departs

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


def _whole(value: object) -> int:
    """A frame number read back from JSON (0 if it is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class ChainEntry:
    """A frame record the oracle read: the frame whose pc it holds, where it
    is, its return address (with the ``file:line`` of the call) and the stack
    it lies on with that stack's bounds ``[lo, hi)``; addresses in hex."""

    frame: int
    fp: str
    lr: str
    stack: str
    lo: str
    hi: str
    source: str = ""

    def describe(self) -> str:
        where = f" ({self.source})" if self.source else ""
        return (f"frame {self.frame}: record at fp {self.fp}, lr {self.lr}{where}, "
                f"on the {self.stack} stack [{self.lo}, {self.hi})")

    def to_json(self) -> dict[str, object]:
        return {"frame": self.frame, "fp": self.fp, "lr": self.lr, "stack": self.stack,
                "lo": self.lo, "hi": self.hi, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ChainEntry:
        return cls(frame=_whole(data.get("frame")),
                   **{name: str(data.get(name, "")) for name in
                      ("fp", "lr", "stack", "lo", "hi", "source")})


@dataclass(frozen=True)
class Diagnosis:
    """Where a failing trace first departs from the oracle's, beside the
    frame records the oracle read there, and the unwinder rule that looks
    broken (``alignment``, ``bounds``, ``stack transition``, ``translation``,
    ``termination``) with why (:mod:`pyharness.judge.diagnosis`)."""

    frame: int                       # the first frame that differs
    rule: str
    why: str
    expected: FrameLine | None       # None: the oracle's trace had ended
    printed: FrameLine | None        # None: the printed trace had ended
    records: tuple[ChainEntry, ...] = ()
    walk_end: str = ""               # why the oracle's walk stopped
    site: str = ""                   # the code that holds the rule: "f() at file:line"

    def lines(self) -> list[str]:
        """The diagnosis as text, one line each."""
        def frame(line: FrameLine | None, none: str) -> str:
            if line is None:
                return none
            where = f" ({line.source})" if line.source else ""
            return f"{line.symbol} at {line.address or '?'}{where}"

        out = [f"diagnosis: rule '{self.rule}' looks broken at frame {self.frame}: {self.why}"]
        if self.site:
            out.append(f"  the rule's code: {self.site}")
        out += [f"  expected {frame(self.expected, '(the trace had ended)')}",
                f"  printed  {frame(self.printed, '(nothing: the printed trace had ended)')}"]
        out += [f"  oracle's {entry.describe()}" for entry in self.records]
        if self.walk_end:
            out.append(f"  oracle's walk stopped: {self.walk_end}")
        return out

    def to_json(self) -> dict[str, object]:
        return {"frame": self.frame, "rule": self.rule, "why": self.why,
                "expected": self.expected.to_json() if self.expected else None,
                "printed": self.printed.to_json() if self.printed else None,
                "records": [entry.to_json() for entry in self.records],
                "walk_end": self.walk_end, "site": self.site}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Diagnosis:
        def line(value: object) -> FrameLine | None:
            return FrameLine.from_json(value) if isinstance(value, dict) else None

        records = data.get("records")
        return cls(frame=_whole(data.get("frame")), rule=str(data.get("rule", "")),
                   why=str(data.get("why", "")), expected=line(data.get("expected")),
                   printed=line(data.get("printed")),
                   records=tuple(ChainEntry.from_json(r) for r in records or ()
                                 if isinstance(r, dict)) if isinstance(records, list) else (),
                   walk_end=str(data.get("walk_end", "")), site=str(data.get("site", "")))
