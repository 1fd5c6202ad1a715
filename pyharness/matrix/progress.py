"""Progress of a matrix: a live bar on a terminal, plain lines in CI logs.

Every reporter takes the same four calls: a finished build, the start of
the runs (with their total), a finished run, and the end. The first run
of each new cause of failure (:mod:`pyharness.reports.causes`) is printed
as it happens, above the bar or as its own line, so a long matrix shows
what broke without waiting for the summary; verbose prints every failure.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Mapping, Protocol, TextIO

from pyharness.reports.causes import cause_key
from pyharness.terminal import visible

if TYPE_CHECKING:
    from pyharness.matrix.builds import BuildOutcome
    from pyharness.run.record import RunRecord


class MatrixProgress(Protocol):
    def build_finished(self, outcome: BuildOutcome) -> None: ...

    def runs_started(self, total: int,
                     expected_ms: Mapping[str, float | None] | None = None) -> None: ...

    def run_finished(self, record: RunRecord) -> None: ...

    def close(self) -> None: ...


def failure_line(record: RunRecord) -> str:
    """``FAIL id: first reason`` for a run that did not pass."""
    reason = record.reasons[0] if record.reasons else "no reason given"
    return visible(f"{record.verdict.upper()} {record.id}: {reason}")


class _NewCauses:
    """Which failures to print as they happen: each new cause's first run
    (the summary groups the rest), or every failure when verbose."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.seen: set[object] = set()

    def line(self, record: RunRecord) -> str | None:
        if record.passed:
            return None
        if self.verbose:
            return failure_line(record)
        key = cause_key(record)
        if key in self.seen:
            return None
        self.seen.add(key)
        return "new cause: " + failure_line(record)


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class QuietProgress:
    """Reports nothing (the library default)."""

    def build_finished(self, outcome: BuildOutcome) -> None:
        pass

    def runs_started(self, total: int,
                     expected_ms: Mapping[str, float | None] | None = None) -> None:
        pass

    def run_finished(self, record: RunRecord) -> None:
        pass

    def close(self) -> None:
        pass


class _Counts:
    """Runs done and failed, and an ETA weighted by each run's expected time.

    The matrix starts its longest runs first, so a plain runs-per-second
    ETA would be far too long at the start; weighting each run by what it
    took last time (``expected_ms``; unknown runs count as the median)
    measures progress in work rather than in runs.
    """

    def __init__(self) -> None:
        self.start(0)

    def start(self, total: int, expected_ms: Mapping[str, float | None] | None = None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.monotonic()
        known = [v for v in (expected_ms or {}).values() if v is not None]
        self._default = statistics.median(known) if known else 1.0
        self._expected = {k: (v if v is not None else self._default)
                          for k, v in (expected_ms or {}).items()}
        self._total_weight = (sum(self._expected.values())
                              + self._default * max(0, total - len(self._expected)))
        self._done_weight = 0.0

    def add(self, record: RunRecord) -> None:
        self.done += 1
        self.failed += not record.passed
        self._done_weight += self._expected.get(record.id, self._default)

    def eta_s(self) -> float | None:
        if not self.done or self._done_weight <= 0:
            return None
        elapsed = time.monotonic() - self.started
        remaining = max(0.0, self._total_weight - self._done_weight)
        return elapsed / self._done_weight * remaining


class LineProgress:
    """Plain lines for logs: builds, each new cause of failure (each failure
    when verbose), and a status line every 10%."""

    def __init__(self, stream: TextIO, every_s: float = 30.0, verbose: bool = False) -> None:
        self.stream = stream
        self.every_s = every_s
        self.counts = _Counts()
        self.causes = _NewCauses(verbose)
        self._next_done = 0
        self._last_line = 0.0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def build_finished(self, outcome: BuildOutcome) -> None:
        if not outcome.cached or not outcome.ok:
            self._print(visible(f"build {outcome.describe()}"))

    def runs_started(self, total: int,
                     expected_ms: Mapping[str, float | None] | None = None) -> None:
        self.counts.start(total, expected_ms)
        self._next_done = max(1, total // 10)
        self._last_line = time.monotonic()

    def run_finished(self, record: RunRecord) -> None:
        self.counts.add(record)
        line = self.causes.line(record)
        if line is not None:
            self._print(line)
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

    def __init__(self, stream: TextIO, verbose: bool = False) -> None:
        self.stream = stream
        self.counts = _Counts()
        self.causes = _NewCauses(verbose)
        self._bar = None

    def build_finished(self, outcome: BuildOutcome) -> None:
        if not outcome.cached or not outcome.ok:
            print(visible(f"build {outcome.describe()}"), file=self.stream, flush=True)

    def runs_started(self, total: int,
                     expected_ms: Mapping[str, float | None] | None = None) -> None:
        from tqdm import tqdm

        self.counts.start(total, expected_ms)
        self._bar = tqdm(total=total, file=self.stream, unit="run", desc="matrix",
                         dynamic_ncols=True, leave=True, postfix=self._postfix(),
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                    "runs{postfix} [{elapsed}]")

    def _postfix(self) -> str:
        eta = self.counts.eta_s()
        return f"failed={self.counts.failed}, ETA {_duration(eta) if eta is not None else '?'}"

    def run_finished(self, record: RunRecord) -> None:
        self.counts.add(record)
        if self._bar is None:
            return
        line = self.causes.line(record)
        if line is not None:
            self._bar.write(line, file=self.stream)
        self._bar.set_postfix_str(self._postfix(), refresh=False)
        self._bar.update(1)
        if line is not None:
            self._bar.refresh()  # a new failure shows at once, whatever the rate limit

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(stream: TextIO, enabled: bool = True,
                  verbose: bool = False) -> MatrixProgress:
    """A bar when ``stream`` is a terminal, plain lines when not (CI)."""
    if not enabled:
        return QuietProgress()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return BarProgress(stream, verbose)
    return LineProgress(stream, verbose=verbose)
