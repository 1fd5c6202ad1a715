"""The error type every bad input becomes: one message, one exit code."""

from __future__ import annotations

# Exit codes of the command line (README, "Exit codes").
EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_BAD_INPUT = 2


class HarnessError(Exception):
    """A problem with the user's input or environment.

    The message says what went wrong, where, and how to fix it; the CLI
    prints it on one line and exits with ``exit_code``.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(HarnessError):
    """A Kconfig fragment or .config that cannot be resolved as asked."""


class ToolchainError(HarnessError):
    """The aarch64 cross toolchain is missing or unusable."""


class BuildError(HarnessError):
    """The firmware failed to configure, compile or link.

    That is a failure of the code under test, not bad input: exit 1.
    """

    exit_code = EXIT_CHECK_FAILED
