"""What one run is: a configuration, a runtime mode, a scenario, a CPU, a
KASLR seed and the run's budgets. :class:`RunSpec` is made by the matrix
expansion, the CLI and the pytest plugin, and every report names a run by
:func:`run_id`."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass

# The runtime hypervisor modes (the kernel's kvm-arm.mode=nvhe|protected).
MODES = ("nvhe", "protected")
# A run's budgets unless told otherwise (`pyharness run --max-instructions
# --timeout`); a run out of either is judged on what it printed by then.
DEFAULT_MAX_INSTRUCTIONS = 20_000_000
DEFAULT_TIMEOUT_S = 30.0


def run_id(config_name: str, mode: str, scenario: str, cpu: int) -> str:
    """The one spelling of a run's id: ``pkvm_16k-protected-stack_overflow-cpu1``."""
    return f"{config_name}-{mode}-{scenario}-cpu{cpu}"


@dataclass(frozen=True)
class RunSpec:
    """One run, everything needed to reproduce it."""

    config: str
    config_name: str
    mode: str
    scenario: str
    cpu: int
    kaslr_seed: int
    # The budgets change a verdict (a run cut short fails), so they are part
    # of what reproduces it.
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def id(self) -> str:
        return run_id(self.config_name, self.mode, self.scenario, self.cpu)

    def command(self) -> str:
        """The one-line command that reproduces this run exactly: every option
        that can change its verdict, each quoted for a POSIX shell."""
        argv = ["pyharness", "run", "--config", self.config, "--scenario", self.scenario,
                "--mode", self.mode, "--cpu", str(self.cpu),
                "--kaslr-seed", str(self.kaslr_seed)]
        if self.max_instructions != DEFAULT_MAX_INSTRUCTIONS:
            argv += ["--max-instructions", str(self.max_instructions)]
        if self.timeout_s != DEFAULT_TIMEOUT_S:
            argv += ["--timeout", repr(self.timeout_s)]
        return shlex.join(argv)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
