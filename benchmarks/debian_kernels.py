"""Debian's own arm64 kernels under QEMU: what fetching costs, what a run costs.

    .venv/bin/python benchmarks/debian_kernels.py [NAME ...] [--cold] [--scenarios S ...]
                                                  [--modes M ...]

NAME is a --kernel-src Debian name (default: debian:6.1 debian:6.12). For
each it prints:

- how the image was had: from the cache, or downloaded (the packages and
  their sizes, download and extraction seconds, from the image's stamp);
  ``--cold`` fetches into a fresh temporary kernel cache, so the download
  is measured, not the cache;
- every real-kernel scenario in each mode the scenario has: the verdict,
  the boot's wall time (QEMU start to exit) and the whole run's (the
  System.map parsed, the fault written, the boot, the judge), and the
  first reason of a run that did not pass.

The runs go one at a time. Boot times follow the machine's load (TCG is
one host thread per guest CPU): run it alone for figures to compare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyharness.builder.debian_images import STAMP
from pyharness.builder.debian_kernel import obtain_debian_kernel
from pyharness.errors import HarnessError
from pyharness.run.kernel_scenarios import SCENARIOS
from pyharness.run.qemu_runner import QemuRequest, run_qemu

DEFAULT_NAMES = ("debian:6.1", "debian:6.12")


def _fetch(name: str, out_dir: str | None):
    started = time.monotonic()
    kernel = obtain_debian_kernel(name, out_dir=out_dir)
    stamp = json.loads((kernel.build_dir / STAMP).read_text(encoding="utf-8"))
    how = "cached" if kernel.cached else "fetched"
    print(f"{name} -> {kernel.given} ({kernel.label}, Linux {kernel.version}, generation "
          f"{kernel.generation}): {how} in {time.monotonic() - started:.1f} s")
    for package, info in stamp["packages"].items():
        print(f"    {package}: {info['size'] / 1e6:.1f} MB")
    print(f"    when fetched: download {stamp['download_s']:.1f} s, extraction "
          f"{stamp['extract_s']:.1f} s; Image {stamp['sizes']['Image'] / 1e6:.1f} MB, "
          f"vmlinux {stamp['sizes']['vmlinux'] / 1e6:.0f} MB")
    return kernel


def _runs(kernel, scenarios: list[str], modes: list[str]) -> list[float]:
    boots = []
    for scenario in SCENARIOS:
        if scenarios and scenario.name not in scenarios:
            continue
        for mode in scenario.modes:
            if modes and mode not in modes:
                continue
            started = time.monotonic()
            try:
                record = run_qemu(QemuRequest(config="pkvm", kernel_src=kernel.given,
                                              scenario=scenario.name, mode=mode, kernel=kernel))
            except HarnessError as err:   # bad input for this kernel: exit 2 from the CLI
                print(f"    {mode:9} {scenario.name:26} exit 2: {err}")
                continue
            total = time.monotonic() - started
            boot = record.elapsed_ms / 1000
            if record.run_status == "exited":
                boots.append(boot)
            reason = f"  {record.reasons[0]}" if record.reasons else ""
            print(f"    {mode:9} {scenario.name:26} {record.verdict:5} boot {boot:5.2f} s, "
                  f"run {total:5.2f} s ({record.run_status}){reason}")
    return boots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT_NAMES))
    parser.add_argument("--cold", action="store_true",
                        help="fetch into a fresh temporary kernel cache")
    parser.add_argument("--scenarios", nargs="*", default=[])
    parser.add_argument("--modes", nargs="*", default=[])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pyharness-debian-bench-") as scratch:
        out_dir = str(Path(scratch)) if args.cold else None
        for name in args.names:
            try:
                kernel = _fetch(name, out_dir)
            except HarnessError as err:
                print(f"{name}: {err}", file=sys.stderr)
                return 2
            boots = _runs(kernel, args.scenarios, args.modes)
            if boots:
                print(f"    boots that exited: {len(boots)}, median {statistics.median(boots):.2f} s, "
                      f"min {min(boots):.2f} s, max {max(boots):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
