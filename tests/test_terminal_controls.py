"""Issue 26, item 6: no text from input drives the terminal. Run ids,
reasons (C1 controls, bidi overrides), reproduce commands, plan ids in
merge's "incomplete:" line, everything ``mutate`` prints, argparse's echo
of what it did not understand: each goes through terminal.visible."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import pyharness_cli as pyharness

from pyharness.judge.verdict import Verdict
from pyharness.paths import configs_dir
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

TINY = configs_dir() / "tiny_defconfig"
# A window-title change, a one-byte CSI, a bidi override, a clear screen.
HOSTILE = "\x1b]0;pwned\x07 \x9b2J \u202eevil \x1b[2J"


def raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) < 0xa0
            or c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"]


def _hostile_report(path: Path, *, planned: int = 0) -> None:
    records = []
    for cpu in range(2):
        spec = RunSpec(config=f"{TINY}{HOSTILE}", config_name=f"tiny{HOSTILE}", mode="nvhe",
                       scenario=f"smoke{HOSTILE}", cpu=cpu, kaslr_seed=0)
        records.append(RunRecord(spec=spec, verdict=Verdict.FAIL,
                                 reasons=[f"reason {HOSTILE}"], console=[HOSTILE],
                                 instructions=1, elapsed_ms=1.0).to_json())
    ids = [f"{r['config_name']}-nvhe-{r['scenario']}-cpu{r['cpu']}" for r in records]
    ids += [f"missing{HOSTILE}{i}" for i in range(planned)]
    path.write_text(json.dumps({"format": "pyharness-matrix/1",
                                "plan": {"runs": len(ids), "shard": None, "ids": ids},
                                "runs": records}))


def test_merge_prints_run_ids_reasons_commands_and_missing_ids_visibly(tmp_path):
    report = tmp_path / "r.json"
    _hostile_report(report, planned=2)
    for verbose in ((), ("-v",)):
        proc = pyharness("report", "merge", str(report), *verbose)
        assert proc.returncode == 1, proc.stderr
        assert "incomplete:" in proc.stdout and "reproduce:" in proc.stdout
        assert not raw_controls(proc.stdout + proc.stderr), proc.stdout
        assert "\\x9b2J" in proc.stdout and "\\u202eevil" in proc.stdout


def test_only_failed_prints_the_rerun_ids_visibly(tmp_path):
    report = tmp_path / "r.json"
    _hostile_report(report)
    proc = pyharness("matrix", "--only-failed", str(report), "-q",
                     "--out", str(tmp_path / "out"))
    assert proc.returncode in (1, 2), proc.stderr
    assert not raw_controls(proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_argparse_echoes_what_it_did_not_understand_visibly():
    for argv in (("configs", f"extra{HOSTILE}"), ("run", "--config", "tiny", "--scenario",
                                                  "smoke", "--mode", f"x{HOSTILE}"),
                 (f"nosuch{HOSTILE}",)):
        proc = pyharness(*argv)
        assert proc.returncode == 2
        assert not raw_controls(proc.stderr), proc.stderr
        assert "\\x9b" in proc.stderr


def test_mutate_prints_equivalents_arguments_and_keys_visibly(tmp_path):
    listed = tmp_path / "equivalent.txt"
    real_key = "csrc/host/panic.c:stmt-del:86ec0b8d92"
    listed.write_text(f"{real_key} because {HOSTILE}\n"
                      "csrc/host/panic.c:const:0123456789 stale\n")
    proc = pyharness("mutate", "--list", "--config", "tiny", "--equivalents", str(listed))
    assert proc.returncode == 0, proc.stderr
    assert "listed equivalent: because" in proc.stdout and "matches no" in proc.stderr
    assert not raw_controls(proc.stdout + proc.stderr)


def test_mutant_lines_show_source_text_visibly():
    from pyharness.mutate.equivalents import Equivalent
    from pyharness.mutate.execute import Outcome
    from pyharness.mutate.generate import Mutant
    from pyharness.mutate.report import EQUIVALENT, Verdict as MutantVerdict, mutant_lines

    mutant = Mutant(id="m001", key=f"k{HOSTILE}", file=f"csrc/a{HOSTILE}.c", line=3,
                    operator="const", what=f"what {HOSTILE}", before=f"x = 1; {HOSTILE}",
                    after=f"x = 2; {HOSTILE}", edit=None,  # type: ignore[arg-type]
                    function=f"f{HOSTILE}")
    verdict = MutantVerdict(Outcome(mutant), EQUIVALENT,
                            Equivalent(mutant.key, f"because {HOSTILE}", 3))
    text = "\n".join(mutant_lines(verdict))
    assert not raw_controls(text) and "\\x9b" in text
