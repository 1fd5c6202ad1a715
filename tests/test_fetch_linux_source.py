"""scripts/fetch-linux-source.sh (run by `scripts/setup.sh --tests` for
linux-source-7.2) where it needs no network: a tarball already in place is
kept and nothing is fetched, and a wrong call is exit 2 with its usage.
The fetch itself talks to a Debian mirror: docs/kernel-src.md says how it
was checked."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fetch-linux-source.sh"


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


def test_a_tarball_already_there_is_kept(tmp_path):
    tarball = tmp_path / "linux-source-7.2.tar.xz"
    tarball.write_bytes(b"already here")
    proc = fetch("linux-source-7.2", "sid", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (f"setup: {tarball} is already there; not fetching "
                           "linux-source-7.2\n")
    assert tarball.read_bytes() == b"already here"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linux-source-7.2.tar.xz"]


def test_a_wrong_call_is_exit_2_with_the_usage():
    proc = fetch("linux-source-7.2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("fetch-linux-source: usage: sh scripts/fetch-linux-source.sh "
                                  "PACKAGE SUITE [DEST]")
