"""``python -m pyharness.decode``: the same as ``pyharness decode``."""

import sys

from pyharness.cli.main import main

sys.exit(main(["decode", *sys.argv[1:]]))
