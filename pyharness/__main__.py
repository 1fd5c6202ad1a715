"""``python -m pyharness`` is the ``pyharness`` command."""

import sys

from pyharness.cli.main import main

sys.exit(main())
