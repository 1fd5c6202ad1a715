"""Reading a program's screen through a pty, for the tests that drive
``pyharness menuconfig`` as a user does."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, until: bytes | None, timeout_s: float) -> bytes:
    """What ``fd`` prints until ``until`` has appeared (None: until the
    program closes the pty), the program exits or ``timeout_s`` passes."""
    seen = b""
    deadline = time.monotonic() + timeout_s
    while (until is None or until not in seen) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:             # the program exited: the pty is gone
                break
            if not chunk:
                break
            seen += chunk
    return seen
