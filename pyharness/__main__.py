"""``python -m pyharness`` is the ``pyharness`` command."""

import sys

from .cli import main

sys.exit(main())
