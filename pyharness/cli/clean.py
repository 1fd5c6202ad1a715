"""``pyharness clean``: remove old build trees (and only build trees).

Exit 0 (also when there was nothing to remove), 2 for bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyharness.builder.trees import (DEFAULT_KEEP, KEEP_ENV, WORK_DIR, BuildTree, build_trees,
                                   older_than_newest, remove_tree)
from pyharness.errors import EXIT_OK, HarnessError
from pyharness.paths import build_base


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
    # The finished builds, and the work trees they compile in, each kept apart.
    groups = [build_trees(base), build_trees(base / WORK_DIR)]
    trees = [tree for group in groups for tree in group]
    doomed = trees if args.all else [t for group in groups for t in older_than_newest(group, keep)]
    removed: list[tuple[BuildTree, int]] = []
    busy = []
    for tree in doomed:
        size = tree.size()
        if args.dry_run:
            removed.append((tree, size))
        elif remove_tree(tree):
            removed.append((tree, size))
        else:
            busy.append(tree)
    verb = "would remove" if args.dry_run else "removed"
    for tree, size in removed:
        print(f"{verb} {tree.path.relative_to(base)} ({_megabytes(size)})")
    for tree in busy:
        print(f"kept {tree.path.relative_to(base)}: a build of it is running")
    total = sum(size for _, size in removed)
    print(f"{base}: {verb} {len(removed)} build tree{'s' if len(removed) != 1 else ''} "
          f"({_megabytes(total)}), {len(trees) - len(removed)} left")
    return EXIT_OK


def add_clean_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "clean", help="remove old build trees",
        description="Remove build trees (<config>-<hash> directories this tool made, "
                    "recognised by their stamp: the finished builds, and under work/ the "
                    "persistent trees they compile in) from the build base: all but the "
                    "newest of each configuration, the newest N with --keep N, or all "
                    "with --all. Nothing else in the directory is touched.",
        epilog=f"Every build also keeps at most the newest {DEFAULT_KEEP} trees of its "
               f"configuration (${KEEP_ENV}=N to change that, 0 to keep all).")
    p.set_defaults(handler=cmd_clean)
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="keep the newest N trees of each configuration (default 1)")
    p.add_argument("--all", action="store_true", help="remove every build tree")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the build base (default: build/, or $PYHARNESS_BUILD_DIR)")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="say what would be removed, remove nothing")
