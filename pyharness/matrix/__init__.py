"""The matrix: many runs, one cached build per configuration, worker processes.

- :func:`run_matrix` (execute) builds each distinct configuration once,
  then runs every :class:`~pyharness.expand.RunSpec` in a pool of worker
  processes (pool) where a crash or a hang costs only that run;
- :func:`plan` (selection) turns the command line's choices into runs;
- :func:`add_matrix_parser` (cli) registers ``pyharness matrix``.
"""

from __future__ import annotations

from .builds import BuildOutcome, build_all
from .cli import add_matrix_parser, cmd_matrix
from .execute import MatrixResult, default_jobs, run_matrix
from .pool import FAULTS_ENV
from .selection import MatrixPlan, Selection, plan

__all__ = ["FAULTS_ENV", "BuildOutcome", "MatrixPlan", "MatrixResult", "Selection",
           "add_matrix_parser", "build_all", "cmd_matrix", "default_jobs", "plan",
           "run_matrix"]
