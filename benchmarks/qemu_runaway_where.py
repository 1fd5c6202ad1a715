"""What reading a runaway's CPUs through QEMU's monitor costs (issue 25).

    .venv/bin/python benchmarks/qemu_runaway_where.py [--boots N] [--tree DIR]

Boots the runaway kernel (6.12 whose unwind() never ends: the copy
tests/test_qemu_runaway.py builds in the kernel cache's ``test-trees/``;
run that test once first) N times with the monitor and N times without,
each stopped at its frame-line bound, and prints:

- the boot's wall time, median and max, with and without the monitor
  (QEMU's start with a QMP socket, and the read before the kill);
- the read itself (``BootResult.where_ms``: QMP's stop, each CPU's
  registers, the frame records, then the names), median and max;
- addr2line alone on the addresses one read names (part of the read).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pyharness.builder.kbuild import build_kernel
from pyharness.elf.kernel_lines import call_sites
from pyharness.paths import kernel_cache
from pyharness.platform.kernel_places import RunawayMonitor, kernel_names
from pyharness.platform.qemu import BootOptions, boot
from pyharness.run import kernel_faults
from pyharness.run.kernel_scenarios import kernel_scenario, resolve
from pyharness.run.qemu_runner import frame_line_bound, kernel_files


def looping_tree(given: str | None) -> Path:
    if given:
        return Path(given)
    found = sorted((kernel_cache() / "test-trees").glob("*-dump-loop"))
    if not found:
        sys.exit("no runaway tree in the kernel cache: run "
                 "`.venv/bin/python -m pytest -p no:xdist tests/test_qemu_runaway.py` once")
    return found[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=10)
    parser.add_argument("--tree")
    args = parser.parse_args()
    kernel = build_kernel("pkvm", str(looping_tree(args.tree)))
    smap, image = kernel_files(kernel)
    scenario = resolve(kernel_scenario("hyp_panic"), "nvhe",
                       lambda name: smap.hyp(name) is not None)
    patched = kernel_faults.apply(image, smap, kernel_faults.inject(scenario, smap, image, 0))
    most, why = frame_line_bound(kernel, 1)
    walls: dict[str, list[float]] = {"with the monitor": [], "without": []}
    reads: list[float] = []
    for _ in range(args.boots):
        for label in walls:
            with tempfile.TemporaryDirectory(prefix="pyharness-bench-") as scratch:
                path = Path(scratch) / "Image"
                path.write_bytes(patched)
                monitor = (RunawayMonitor(Path(scratch), kernel_names(kernel, smap))
                           if label == "with the monitor" else None)
                result = boot(BootOptions(image=path, mode="nvhe", max_frame_lines=most,
                                          frame_bound_why=why, monitor=monitor))
            if result.status != "runaway":
                print(f"  a boot ended {result.status}, not as a runaway")
                return 1
            walls[label].append(result.elapsed_ms)
            if monitor is not None:
                reads.append(result.where_ms)
    for label, times in walls.items():
        print(f"runaway boot {label}, x{args.boots}: median {statistics.median(times):.0f} ms, "
              f"max {max(times):.0f} ms")
    print(f"the read (stop, registers, frame records, names): median "
          f"{statistics.median(reads):.1f} ms, max {max(reads):.1f} ms")
    addresses = [smap.text + 0x100000 + 4 * k for k in range(17)]
    started = time.monotonic()
    call_sites(kernel.vmlinux, addresses, kernel.source_root)
    print(f"  of which addr2line on 17 addresses: {(time.monotonic() - started) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
