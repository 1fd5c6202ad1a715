"""The ``pyharness`` command line: a thin layer over the library.

- :mod:`pyharness.cli.main`: the parser, ``configs``, ``build``, ``run``,
  ``scenarios``, ``menuconfig``, and the one place errors become exit codes;
- :mod:`pyharness.cli.matrix`: ``pyharness matrix``;
- :mod:`pyharness.cli.mutate`: ``pyharness mutate``;
- :mod:`pyharness.cli.decode`: ``pyharness decode``.
"""
