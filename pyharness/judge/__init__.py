"""Judging a run: the oracle (what the emulator saw -> what the console
must show), frame-record corruption, bounds watches, the log parser, and
the checker that decides the verdict."""
