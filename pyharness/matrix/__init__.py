"""The matrix: many runs, one cached build per configuration, worker processes.

- :func:`run_matrix` (execute) builds each distinct configuration once,
  then runs every :class:`~pyharness.matrix.expand.RunSpec` in a pool of worker
  processes (pool, worker) where a crash or a hang costs only that run;
- :func:`plan` (selection) turns the command line's choices into runs.

The command line is :mod:`pyharness.cli.matrix`.
"""

from __future__ import annotations

from pyharness.matrix.builds import BuildOutcome, build_all
from pyharness.matrix.execute import MatrixResult, default_jobs, run_matrix
from pyharness.matrix.worker import FAULTS_ENV
from pyharness.matrix.selection import MatrixPlan, Selection, plan

__all__ = ["FAULTS_ENV", "BuildOutcome", "MatrixPlan", "MatrixResult", "Selection",
           "build_all", "default_jobs", "plan", "run_matrix"]
