"""``pyharness clean``: remove old build trees (and only build trees).

Exit 0 (also when there was nothing to remove, or only trees in use were
kept), 2 for bad input or a tree that could not be removed (a read-only
directory).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pyharness.builder.trees import (DEFAULT_KEEP, IN_USE, KEEP_ENV, WORK_DIR, BuildTree,
                                     build_trees, older_than_newest, try_remove)
from pyharness.errors import EXIT_OK, HarnessError
from pyharness.mutate.session import MUTATE_DIR
from pyharness.paths import build_base

# Under the base besides its own trees: the mutants' images (with their
# own work trees), and the fragments --all/--randconfig generate (--all only).
GENERATED_DIR = "matrix-configs"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def cmd_clean(args: argparse.Namespace) -> int:
    if args.all and args.keep is not None:
        raise HarnessError("clean takes --keep N or --all, not both")
    keep = 0 if args.all else (1 if args.keep is None else args.keep)
    if keep < 0 or (not args.all and keep == 0):
        raise HarnessError(f"--keep {keep}: keep at least 1 per configuration "
                           "(--all removes every build tree)")
    base = build_base(args.out)
    if base.exists() and not base.is_dir():
        raise HarnessError(f"--out {base}: not a directory; give the build directory "
                           "(default: build/)")
    # The finished builds, the work trees they compile in, the mutants'
    # images: each set kept apart.
    groups = [build_trees(directory) for directory in
              (base, base / WORK_DIR, base / MUTATE_DIR, base / MUTATE_DIR / WORK_DIR)]
    trees = [tree for group in groups for tree in group]
    doomed = trees if args.all else [t for group in groups for t in older_than_newest(group, keep)]
    removed: list[tuple[BuildTree, int]] = []
    kept: list[tuple[BuildTree, str]] = []
    for tree in doomed:
        size = tree.size()
        why = None if args.dry_run else try_remove(tree)
        if why is None:
            removed.append((tree, size))
        else:
            kept.append((tree, why))
    verb = "would remove" if args.dry_run else "removed"
    for tree, size in removed:
        print(f"{verb} {tree.path.relative_to(base)} ({_megabytes(size)})")
    for tree, why in kept:
        print(f"kept {tree.path.relative_to(base)}: {why}")
    generated = _generated(base, args.all, args.dry_run, verb)
    total = sum(size for _, size in removed)
    print(f"{base}: {verb} {len(removed)} build tree{'s' if len(removed) != 1 else ''} "
          f"({_megabytes(total)}), {len(trees) - len(removed)} left{generated}")
    failed = [(tree, why) for tree, why in kept if why != IN_USE]
    if failed:
        raise HarnessError(f"{len(failed)} build tree{'s' if len(failed) != 1 else ''} in "
                           f"{base} could not be removed ({failed[0][0].path.name}: "
                           f"{failed[0][1]}); check that the directory is writable")
    return EXIT_OK


def _generated(base: Path, everything: bool, dry_run: bool, verb: str) -> str:
    """--all: the generated configurations too (the runs that name them
    cannot be reproduced after)."""
    directory = base / GENERATED_DIR
    if not everything or not directory.is_dir() or directory.is_symlink():
        return ""
    if not dry_run:
        try:
            shutil.rmtree(directory)
        except OSError as err:
            raise HarnessError(f"cannot remove {directory}: {err.strerror}; check that the "
                               "directory is writable") from None
    return f"; {verb} {GENERATED_DIR}/"


def add_clean_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean", help="remove old build trees",
        description="Remove build trees (<config>-<hash> directories this tool made, "
                    "recognised by their stamp: the finished builds, under work/ the "
                    "persistent trees they compile in, under mutate/ the mutants' images) "
                    "from the build base: all but the newest of each configuration, the "
                    "newest N with --keep N, or all with --all (and then the generated "
                    "configurations, matrix-configs/). A tree in use by a build or a "
                    "run is kept, and said so. Nothing else in the directory is touched.",
        epilog=f"Every build also keeps at most the newest {DEFAULT_KEEP} trees of its "
               f"configuration (${KEEP_ENV}=N to change that, 0 to keep all).")
    p.set_defaults(handler=cmd_clean)
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="keep the newest N trees of each configuration (default 1)")
    p.add_argument("--all", action="store_true", help="remove every build tree")
    p.add_argument("--out", type=str, default=None, metavar="DIR",
                   help="the build base (default: build/, or $PYHARNESS_BUILD_DIR)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="say what would be removed, remove nothing")
