"""What one run is: a configuration, a runtime mode, a scenario, a CPU and a
KASLR seed. :class:`RunSpec` is made by the matrix expansion, the CLI and
the pytest plugin, and every report names a run by :func:`run_id`."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass

# The runtime hypervisor modes (the kernel's kvm-arm.mode=nvhe|protected).
MODES = ("nvhe", "protected")


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

    @property
    def id(self) -> str:
        return run_id(self.config_name, self.mode, self.scenario, self.cpu)

    def command(self) -> str:
        """The one-line command that reproduces this run exactly."""
        return " ".join([
            "pyharness", "run", "--config", shlex.quote(self.config),
            "--scenario", self.scenario, "--mode", self.mode,
            "--cpu", str(self.cpu), "--kaslr-seed", str(self.kaslr_seed)])

    def to_dict(self) -> dict[str, object]:
        return asdict(self)
