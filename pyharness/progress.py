"""Progress of a matrix: a live bar on a terminal, plain lines in CI logs.

Every reporter takes the same four calls: a finished build, the start of
the runs (with their total), a finished run, and the end. Failures are
printed as they happen, above the bar or as their own line, so a long
matrix shows what broke without waiting for the summary.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TextIO

if TYPE_CHECKING:
    from .matrix.builds import BuildOutcome
    from .runner import RunRecord


class MatrixProgress(Protocol):
    def build_finished(self, outcome: BuildOutcome) -> None: ...

    def runs_started(self, total: int) -> None: ...

    def run_finished(self, record: RunRecord) -> None: ...

    def close(self) -> None: ...


def failure_line(record: RunRecord) -> str:
    """``FAIL id: first reason`` for a run that did not pass."""
    id_ = f"{record.config_name}-{record.mode}-{record.scenario}-cpu{record.cpu}"
    reason = record.reasons[0] if record.reasons else "no reason given"
    return f"{record.verdict.upper()} {id_}: {reason}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class QuietProgress:
    """Reports nothing (the library default)."""

    def build_finished(self, outcome: BuildOutcome) -> None:
        pass

    def runs_started(self, total: int) -> None:
        pass

    def run_finished(self, record: RunRecord) -> None:
        pass

    def close(self) -> None:
        pass


class _Counts:
    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.failed = 0
        self.started = time.monotonic()

    def start(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.monotonic()

    def add(self, record: RunRecord) -> None:
        self.done += 1
        self.failed += not record.passed

    def eta_s(self) -> float | None:
        if not self.done:
            return None
        elapsed = time.monotonic() - self.started
        return elapsed / self.done * (self.total - self.done)


class LineProgress:
    """Plain lines for logs: builds, each failure, and a status line every 10%."""

    def __init__(self, stream: TextIO, every_s: float = 30.0) -> None:
        self.stream = stream
        self.every_s = every_s
        self.counts = _Counts()
        self._next_done = 0
        self._last_line = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def build_finished(self, outcome: BuildOutcome) -> None:
        if not outcome.cached or not outcome.ok:
            self._print(f"build {outcome.describe()}")

    def runs_started(self, total: int) -> None:
        self.counts.start(total)
        self._next_done = max(1, total // 10)
        self._last_line = time.monotonic()

    def run_finished(self, record: RunRecord) -> None:
        self.counts.add(record)
        if not record.passed:
            self._print(failure_line(record))
        now = time.monotonic()
        if (self.counts.done >= self._next_done or now - self._last_line >= self.every_s
                or self.counts.done == self.counts.total):
            self._status()
            self._last_line = now
            step = max(1, self.counts.total // 10)
            self._next_done = (self.counts.done // step + 1) * step

    def _status(self) -> None:
        c = self.counts
        eta = c.eta_s()
        eta_text = f", ETA {_duration(eta)}" if eta is not None and c.done < c.total else ""
        self._print(f"[{c.done:>{len(str(c.total))}}/{c.total}] {c.failed} failed, "
                    f"{_duration(time.monotonic() - c.started)} elapsed{eta_text}")

    def close(self) -> None:
        pass


class BarProgress:
    """A live bar (runs done/total, failures so far, ETA) for a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.counts = _Counts()
        self._bar = None

    def build_finished(self, outcome: BuildOutcome) -> None:
        if not outcome.cached or not outcome.ok:
            print(f"build {outcome.describe()}", file=self.stream, flush=True)

    def runs_started(self, total: int) -> None:
        from tqdm import tqdm

        self.counts.start(total)
        self._bar = tqdm(total=total, file=self.stream, unit="run", desc="matrix",
                         dynamic_ncols=True, leave=True, postfix={"failed": 0},
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                    "runs, {postfix} [{elapsed}<{remaining}]")

    def run_finished(self, record: RunRecord) -> None:
        self.counts.add(record)
        if self._bar is None:
            return
        if not record.passed:
            self._bar.write(failure_line(record), file=self.stream)
            self._bar.set_postfix(failed=self.counts.failed, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(stream: TextIO, enabled: bool = True) -> MatrixProgress:
    """A bar when ``stream`` is a terminal, plain lines when not (CI)."""
    if not enabled:
        return QuietProgress()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return BarProgress(stream)
    return LineProgress(stream)
