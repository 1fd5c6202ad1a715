"""Which tree was tested: git's commit, dirtiness and diff hash of a
`--kernel-src` tree (real git on small repositories), a tree's NAME, and
how both reach the records and every report (docs/kernel-src.md, "Which
tree was tested").

The hashes are checked against git run here with the command the docs
give, never against what the harness computed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from test_kernel_src_runs import copy_tree
from test_kernelsrc import synthetic_files, write_tree

from pyharness.builder import kernelsrc, provenance
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.builder.provenance import TreeProvenance, tree_provenance
from pyharness.errors import HarnessError
from pyharness.judge.verdict import Verdict
from pyharness.matrix.expand import unwinder_axis
from pyharness.reports import html_report, junit_tree
from pyharness.reports.merge import merge_reports
from pyharness.reports.records import load_records, write_json
from pyharness.reports.triage import terminal_report
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

# The command docs/kernel-src.md gives for the diff hash, as a user types it.
DOCUMENTED_DIFF = ("git diff HEAD --binary --full-index --no-renames --no-color --no-ext-diff "
                   "--no-textconv --diff-algorithm=myers --src-prefix=a/ --dst-prefix=b/ "
                   "--ignore-submodules=none -O/dev/null --")
ESC = "\x1b"


def git(root: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def documented_hash(root: Path) -> str:
    diff = subprocess.run(DOCUMENTED_DIFF.split(), cwd=root, check=True,
                          capture_output=True).stdout
    return hashlib.sha256(diff).hexdigest()


@pytest.fixture
def repo(tmp_path) -> Path:
    """A synthetic 6.12 tree, committed."""
    root = write_tree(tmp_path / "linux", synthetic_files("6.12"))
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


# -- what git says -------------------------------------------------------------

def test_a_clean_work_tree_has_its_commit_and_no_diff(repo):
    state = tree_provenance(repo)
    assert state == TreeProvenance(commit=git(repo, "rev-parse", "HEAD").strip(), dirty=False)
    assert state.describe() == f"commit {state.commit[:12]}, clean"


def test_a_dirty_tree_has_the_hash_of_its_diff_staged_or_not(repo):
    head = git(repo, "rev-parse", "HEAD").strip()
    c_file = repo / kernelsrc.HOST_STACKTRACE_C
    c_file.write_text(c_file.read_text() + "/* an edit */\n")
    unstaged = tree_provenance(repo)
    assert (unstaged.commit, unstaged.dirty) == (head, True)
    assert unstaged.diff_sha256 == documented_hash(repo)
    git(repo, "add", "-A")                  # staged: the same working tree, the same diff
    assert tree_provenance(repo) == unstaged
    (repo / kernelsrc.MAKEFILE).chmod(0o755)          # a mode change is a change
    assert tree_provenance(repo).diff_sha256 not in (None, unstaged.diff_sha256)
    git(repo, "reset", "-q", "--hard")
    assert tree_provenance(repo).dirty is False


def test_untracked_files_leave_a_tree_clean(repo):
    (repo / "arch/arm64/kvm/new.o").write_bytes(b"\0object")
    assert tree_provenance(repo).dirty is False


def test_the_hash_does_not_follow_the_users_git_configuration(repo):
    c_file = repo / kernelsrc.HOST_STACKTRACE_C
    c_file.write_text("moved\n" + c_file.read_text())
    plain = tree_provenance(repo).diff_sha256
    for key, value in (("diff.noprefix", "true"), ("diff.mnemonicPrefix", "true"),
                       ("color.ui", "always"), ("diff.external", "false"),
                       ("diff.algorithm", "histogram"), ("diff.context", "9"),
                       ("core.quotePath", "false"), ("core.pager", "false")):
        git(repo, "config", key, value)
    assert tree_provenance(repo).diff_sha256 == plain


def test_the_callers_git_variables_are_not_followed(repo, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "commit", "-q", "--allow-empty", "-m", "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", "'diff.noprefix'='true'")
    assert tree_provenance(repo).commit == git(repo, "rev-parse", "HEAD").strip()


@pytest.mark.parametrize("kind", ["plain", "inside another work tree", "no commit yet"])
def test_a_tree_that_is_no_work_tree_of_its_own_has_no_commit(tmp_path, kind):
    root = write_tree(tmp_path / "linux", synthetic_files("6.12"))
    if kind == "inside another work tree":      # the build cache inside the lab's clone
        git(tmp_path, "init", "-q")
        git(tmp_path, "add", "-A")
        git(tmp_path, "commit", "-qm", "outer")
    if kind == "no commit yet":
        git(root, "init", "-q")
    state = tree_provenance(root)
    assert state.commit is None and state.dirty is None and state.diff_sha256 is None
    assert state.why_no_commit == ("a git work tree with no commit yet" if kind == "no commit yet"
                                   else "not a git work tree")


def test_git_missing_is_an_absence_not_an_error(repo, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    state = tree_provenance(repo)
    assert state.commit is None and "git is not installed" in state.why_no_commit


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the tree to another user")
def test_a_tree_owned_by_another_user_is_not_read(repo):
    subprocess.run(["chown", "-R", "65534:65534", str(repo)], check=True)
    state = tree_provenance(repo)
    assert state.commit is None
    assert state.why_no_commit.startswith("a git work tree owned by another user")
    assert "safe.directory" in state.why_no_commit


def test_a_broken_repository_says_what_git_said(tmp_path):
    root = write_tree(tmp_path / f"bad{ESC}]0;title\a", synthetic_files("6.12"))
    (root / ".git").write_text("gitdir: /nonexistent/place\n")
    state = tree_provenance(root)
    assert state.commit is None
    assert state.why_no_commit.startswith("git could not read the repository: ")
    corrupt = write_tree(tmp_path / "corrupt", synthetic_files("6.12"))
    git(corrupt, "init", "-q")
    (corrupt / ".git/HEAD").write_text("garbage\n")
    assert tree_provenance(corrupt).commit is None


def test_a_git_that_does_not_answer_is_given_up(repo, tmp_path, monkeypatch):
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "git").write_text("#!/bin/sh\nexec /bin/sleep 10\n")
    (slow / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(slow))
    monkeypatch.setattr(provenance, "GIT_TIMEOUT_S", 0.3)
    assert "did not answer within 0.3 s" in tree_provenance(repo).why_no_commit


def test_the_json_form_round_trips_and_refuses_wrong_types():
    state = TreeProvenance(commit="a" * 40, dirty=True, diff_sha256="b" * 64)
    assert TreeProvenance.from_json(json.loads(json.dumps(state.to_json()))) == state
    for bad in ([], {"dirty": "yes"}, {"commit": 5}):
        with pytest.raises(ValueError):
            TreeProvenance.from_json(bad)


# -- NAME=PATH ---------------------------------------------------------------------

def test_a_name_labels_the_tree(repo, tmp_path):
    source = kernelsrc.open_source(f"fix={repo}", tmp_path / "build")
    assert (source.name, source.label, source.unwinder) == ("fix", "fix", "linux-6.12")
    assert source.given == str(repo) and source.provenance.dirty is False
    assert kernelsrc.split_name("/a=b/linux") == (None, "/a=b/linux")
    assert kernelsrc.split_name("./a=b") == (None, "./a=b")
    assert kernelsrc.split_name("v6.12-rc1+fix=~/linux") == ("v6.12-rc1+fix", "~/linux")


@pytest.mark.parametrize("value, message", [
    ("-x=/t", "is not a tree name"), ("a b=/t", "is not a tree name"),
    ("lab=/t", "the lab's own unwinder; give the tree another name"),
    ("mine=lab", "takes no name")])
def test_a_bad_name_is_bad_input(tmp_path, value, message):
    with pytest.raises(KernelSourceError, match=message):
        kernelsrc.open_source(value, tmp_path)


def test_the_axis_keeps_names_and_refuses_ambiguity(tmp_path):
    a = write_tree(tmp_path / "a", synthetic_files("6.12"))
    b = write_tree(tmp_path / "b", synthetic_files("6.12"))
    axis = unwinder_axis([f"linux-6.12={a}", str(b), "lab"], tmp_path / "out")
    assert [u.label for u in axis] == ["linux-6.12", "linux-6.12-2", "lab"]
    assert [u.label for u in unwinder_axis([f"one={a}", f"two={b}"], tmp_path)] == ["one",
                                                                                       "two"]
    with pytest.raises(HarnessError, match="the name one is given to 2 trees"):
        unwinder_axis([f"one={a}", f"one={b}"], tmp_path)
    with pytest.raises(HarnessError, match="is given twice, as one and as two"):
        unwinder_axis([f"one={a}", f"two={a}"], tmp_path)


def test_a_reproduce_command_keeps_the_label():
    spec = RunSpec(config="c", config_name="pkvm", mode="nvhe", scenario="bug", cpu=0,
                   kaslr_seed=1, kernel_src="/src/linux", generation="6.12", unwinder="fix")
    assert "--kernel-src fix=/src/linux" in spec.command()
    assert kernelsrc.split_name(spec.kernel_src_argument) == ("fix", "/src/linux")
    plain = replace(spec, unwinder="linux-6.12")
    assert "--kernel-src /src/linux " in plain.command()


# -- records and reports -------------------------------------------------------------

def record(label: str, tree: TreeProvenance | None, *, kernel_src: str = "/src/linux",
           scenario: str = "bug", verdict: Verdict = Verdict.PASS) -> RunRecord:
    spec = RunSpec(config="configs/pkvm_defconfig", config_name="pkvm", mode="nvhe",
                   scenario=scenario, cpu=0, kaslr_seed=1, kernel_src=kernel_src,
                   generation="6.12", unwinder=label)
    return RunRecord(spec=spec, verdict=verdict, reasons=[] if verdict == "pass" else ["x"],
                     console=[], instructions=1, elapsed_ms=1.0, tree=tree)


DIRTY = TreeProvenance(commit="1" * 40, dirty=True, diff_sha256="2" * 64)
CLEAN = TreeProvenance(commit="3" * 40, dirty=False)
HOSTILE = TreeProvenance(why_no_commit=f"git could not read the repository: {ESC}[2J\u202e")


def test_every_report_names_the_tree(tmp_path):
    records = [record("fix", DIRTY), record("linux-6.1", HOSTILE, kernel_src="/t.tar.xz"),
               RunRecord(spec=RunSpec(config="c", config_name="pkvm", mode="nvhe",
                                      scenario="bug", cpu=0, kaslr_seed=1),
                         verdict=Verdict.PASS, reasons=[], console=[], instructions=1,
                         elapsed_ms=1.0)]
    text = terminal_report(records)
    assert "trees:" in text and ESC not in text and "\u202e" not in text
    assert f"  fix        /src/linux: commit {'1' * 12}, dirty (diff sha256 {'2' * 16})" in text
    suite = junit_tree(records).getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.findall("./properties/property")}
    assert props["tree.fix.commit"] == "1" * 40 and props["tree.fix.dirty"] == "true"
    assert props["tree.fix.diff_sha256"] == "2" * 64
    case = suite.find("testcase")
    assert {p.get("name"): p.get("value") for p in case.findall("./properties/property")} == {
        "unwinder": "fix", "kernel_src": "/src/linux", "generation": "6.12",
        "tree.commit": "1" * 40, "tree.dirty": "true", "tree.diff_sha256": "2" * 64}
    assert suite.findall("testcase")[2].find("properties") is None     # the lab's run
    page = html_report(records)
    assert 'id="trees"' in page and "1" * 40 in page and "2" * 64 in page
    assert ESC not in page
    path = tmp_path / "r.json"
    write_json(records, path)
    runs = json.loads(path.read_text())["runs"]
    assert runs[0]["tree"] == DIRTY.to_json() and runs[2]["tree"] is None
    assert [r.tree for r in load_records(path)] == [DIRTY, HOSTILE, None]


def test_a_report_from_before_trees_were_recorded_still_loads_and_reruns(tmp_path):
    path = tmp_path / "old.json"
    write_json([record("linux-6.12", None, verdict=Verdict.FAIL)], path)
    document = json.loads(path.read_text())
    del document["runs"][0]["tree"]
    path.write_text(json.dumps(document))
    (old,) = load_records(path)
    assert old.tree is None and old.spec.unwinder == "linux-6.12"
    assert terminal_report([old]).count("state not recorded") == 1
    document["runs"][0]["tree"] = {"commit": 7}
    path.write_text(json.dumps(document))
    with pytest.raises(HarnessError, match=r"run 1: field 'tree' has commit 7"):
        load_records(path)


def _report(tmp_path: Path, name: str, *records: RunRecord) -> Path:
    path = tmp_path / name
    write_json(list(records), path)
    return path


def test_a_merge_never_puts_two_trees_in_one_row(tmp_path):
    dirty = _report(tmp_path, "dirty.json", record("linux-6.12", DIRTY))
    clean = _report(tmp_path, "clean.json", record("linux-6.12", CLEAN, scenario="smoke"))
    with pytest.raises(HarnessError, match=(
            r"the runs labelled linux-6.12 come from two trees \(/src/linux at commit "
            r"111111111111, dirty \(diff sha256 2222222222222222\) and at commit "
            r"333333333333, clean\), in .*dirty.json and .*clean.json")):
        merge_reports([dirty, clean])
    elsewhere = _report(tmp_path, "elsewhere.json",
                        record("linux-6.12", DIRTY, kernel_src="/other", scenario="smoke"))
    with pytest.raises(HarnessError, match="two trees \\(/src/linux and /other\\)"):
        merge_reports([dirty, elsewhere])
    # Named apart, they are rows of their own; an unrecorded state (an older
    # report, a run without an image) joins its label's tree.
    named = _report(tmp_path, "named.json", record("fix", CLEAN, scenario="smoke"))
    old = _report(tmp_path, "old.json", record("linux-6.12", None, scenario="smoke"))
    merged = merge_reports([dirty, named, old])
    assert sorted(r.spec.row for r in merged.records) == ["fix/pkvm", "linux-6.12/pkvm",
                                                          "linux-6.12/pkvm"]
    cli = subprocess.run([sys.executable, "-m", "pyharness", "report", "merge", str(dirty),
                          str(clean)], capture_output=True, text=True)
    assert cli.returncode == 2 and "Traceback" not in cli.stderr
    assert "come from two trees" in cli.stderr


# -- end to end: a git tree of Debian's 6.12 files ------------------------------------

DEBIAN_6_12 = kernelsrc.debian_tarball("6.12")


@pytest.mark.skipif(not DEBIAN_6_12.is_file(), reason=f"{DEBIAN_6_12} is not installed")
def test_the_matrix_records_the_commit_and_diff_that_ran(tmp_path):
    source = kernelsrc.open_source(DEBIAN_6_12, tmp_path / "build")
    tree = copy_tree(source, tmp_path / "linux")
    git(tree, "init", "-q")
    git(tree, "add", "-A")
    git(tree, "commit", "-qm", "6.12")
    edited = tree / kernelsrc.HOST_STACKTRACE_C
    edited.write_text(edited.read_text() + "/* work in progress */\n")

    def matrix(report: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pyharness", "matrix", "-q", "-j", "1", "--configs", "pkvm",
             "--scenarios", "hyp_panic", "--modes", "nvhe", "--kernel-src", f"wip={tree}",
             "--out", str(tmp_path / "build"), "--json", str(report), "--junit",
             str(report.with_suffix(".xml")), "--html", str(report.with_suffix(".html"))],
            capture_output=True, text=True, timeout=600)

    first = matrix(tmp_path / "dirty.json")
    assert first.returncode == 0, first.stdout + first.stderr
    head, diff = git(tree, "rev-parse", "HEAD").strip(), documented_hash(tree)
    assert f"  wip  {tree}: commit {head[:12]}, dirty (diff sha256 {diff[:16]})" \
        in first.stdout.splitlines()
    runs = json.loads((tmp_path / "dirty.json").read_text())["runs"]
    assert {r["unwinder"] for r in runs} == {"wip"}
    assert all(r["tree"] == {"commit": head, "dirty": True, "diff_sha256": diff,
                             "why_no_commit": None} for r in runs)
    assert all(f"--kernel-src wip={tree}" in r["command"] for r in runs)
    assert f'name="tree.diff_sha256" value="{diff}"' in (tmp_path / "dirty.xml").read_text()
    assert head in (tmp_path / "dirty.html").read_text()

    git(tree, "commit", "-qam", "done")
    second = matrix(tmp_path / "clean.json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"commit {git(tree, 'rev-parse', 'HEAD').strip()[:12]}, clean" in second.stdout
    merged = subprocess.run([sys.executable, "-m", "pyharness", "report", "merge",
                             str(tmp_path / "dirty.json"), str(tmp_path / "clean.json")],
                            capture_output=True, text=True)
    assert merged.returncode == 2 and "the runs labelled wip come from two trees" \
        in merged.stderr

    # git's own words reach the terminal escaped: a repository git cannot
    # read, whose message quotes a path holding a right-to-left override and
    # a one-byte CSI (git passes both; it turns ESC itself into '?').
    shutil.rmtree(tree / ".git")
    (tree / ".git").write_text("gitdir: /nonexistent/\u202ex\x9b2J\n")
    built = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "pkvm",
                            "--kernel-src", str(tree), "--out", str(tmp_path / "build")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert "git could not read the repository: not a git repository: " \
           "/nonexistent/\\u202ex\\x9b2J" in built.stderr
    assert "\u202e" not in built.stderr and "\x9b" not in built.stderr


@pytest.mark.parametrize("with_tree", [True, False])
def test_only_failed_reruns_a_trees_failures_from_either_kind_of_report(tmp_path, with_tree):
    from pyharness.matrix.selection import Selection, plan

    path = tmp_path / "m.json"
    write_json([record("fix", DIRTY, verdict=Verdict.FAIL), record("fix", DIRTY,
                                                                    scenario="smoke")], path)
    if not with_tree:
        document = json.loads(path.read_text())
        for run in document["runs"]:
            del run["tree"]
        path.write_text(json.dumps(document))
    (spec,) = plan(Selection(only_failed=path)).specs
    assert (spec.id, spec.kernel_src, spec.unwinder) == ("fix/pkvm-nvhe-bug-cpu0",
                                                         "/src/linux", "fix")
    assert "--kernel-src fix=/src/linux" in spec.command()


def test_a_real_kernels_run_says_which_tree_it_was_built_from():
    from real_kernels import REFERENCE, kernel, tarball

    from pyharness.builder.provenance import A_TARBALL
    from pyharness.run.qemu_runner import QemuRequest, run_qemu

    record = run_qemu(QemuRequest(config="pkvm", kernel_src=tarball(REFERENCE),
                                  scenario="hyp_panic", mode="nvhe", kernel=kernel(REFERENCE)))
    assert record.passed and record.tree == TreeProvenance(why_no_commit=A_TARBALL)
    assert terminal_report([record]).splitlines()[-1].endswith(
        f"{tarball(REFERENCE)}: {A_TARBALL}")
