"""Mutation testing of the unwinding path: how many unwinder bugs does the
matrix catch? (``pyharness mutate``, docs/mutation.md)

The data's path: target files -> ``lexer`` (C tokens, preprocessor
context) -> ``operators``, ``statements``, ``asm`` (edits) -> ``generate``
(mutants: ids, stable keys) -> ``plan`` (which configurations and runs can
see a mutant, in which order) -> ``execute`` (baseline, then the worker
pool; ``worker`` applies, builds and runs one step) -> ``report`` and
``html`` (verdicts, the summary line, JSON, HTML), with ``equivalents``
(mutants/equivalent.txt) and ``session`` (one run, from options).
"""
