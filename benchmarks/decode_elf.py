"""`pyharness decode --elf` on real kernels: the first decode, which reads
the ELF and writes its index, and the ones after, which read the index.

    .venv/bin/python benchmarks/decode_elf.py [VMLINUX LOG ...] [--repeat N]

Default pairs (those present): Debian's 6.12 cloud vmlinux (with debug
info, ~350 MB) with tests/data/real/two_cpus_debian_6.12_seed6.log, and a
6.12 kbuild vmlinux of the kernel cache with tests/data/real/two_cpus_6.12_seed16.log.
Each pair runs the command as a user does (a new process each time, so
Python's start is counted) against a fresh, empty index directory
($PYHARNESS_DECODE_CACHE in a temporary directory): once cold, then
``--repeat`` times warm (median and range). The output of every warm run
must equal the cold one's. Wall times follow the machine's load: run it
alone for figures to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNELS = Path(os.environ.get("PYHARNESS_KERNEL_CACHE")
               or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "pyharness" / "kernels")
REAL = REPO / "tests" / "data" / "real"


def _default_pairs() -> list[tuple[Path, Path]]:
    pairs = []
    debian = sorted(KERNELS.glob("debian/images/debian-6.12*deb13*/vmlinux"))
    if debian:
        pairs.append((debian[0], REAL / "two_cpus_debian_6.12_seed6.log"))
    built = sorted(KERNELS.glob("builds/pkvm-linux-6.12*/vmlinux"))
    if built:
        pairs.append((built[0], REAL / "two_cpus_6.12_seed16.log"))
    return pairs


def _decode(vmlinux: Path, log: Path, cache: Path) -> tuple[float, str]:
    env = dict(os.environ, PYHARNESS_DECODE_CACHE=str(cache))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pyharness", "decode", "--elf", str(vmlinux),
                           str(log)], capture_output=True, text=True, env=env, cwd=REPO)
    seconds = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise SystemExit(f"decode failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds, proc.stdout


def _measure(vmlinux: Path, log: Path, repeat: int) -> None:
    size = vmlinux.stat().st_size / 1e6
    print(f"{vmlinux} ({size:.0f} MB) with {log.name}:")
    with tempfile.TemporaryDirectory(prefix="decode-index-") as tmp:
        cache = Path(tmp)
        cold, expected = _decode(vmlinux, log, cache)
        index = sum(p.stat().st_size for p in cache.iterdir()) / 1e6
        warm = []
        for _ in range(repeat):
            seconds, out = _decode(vmlinux, log, cache)
            if out != expected:
                raise SystemExit("a warm decode printed something else than the cold one")
            warm.append(seconds)
    print(f"    cold (reads the ELF, writes the index): {cold:.2f} s; index {index:.1f} MB")
    print(f"    warm x{repeat}: median {statistics.median(warm):.2f} s "
          f"(min {min(warm):.2f}, max {max(warm):.2f}); {cold / statistics.median(warm):.0f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="*", metavar="VMLINUX LOG")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give VMLINUX LOG pairs")
    pairs = ([(Path(a), Path(b)) for a, b in zip(args.pairs[::2], args.pairs[1::2])]
             or _default_pairs())
    if not pairs:
        print(f"no vmlinux found under {KERNELS}; give VMLINUX LOG pairs")
        return 2
    for vmlinux, log in pairs:
        _measure(vmlinux, log, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
