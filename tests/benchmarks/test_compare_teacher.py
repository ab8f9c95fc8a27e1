"""``compare --teacher``: the teacher's row first, each student's agreement measured by eval's
own teacher/student function (the same number as ``eval --teacher``), a bundle that cannot be
paired shown as a peer; calls/image for every row."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgegen.benchmarks.compare import AGREEMENT, CompareConfig, compare
from edgegen.cli.app import app
from edgegen.quality.evaluate import EvalConfig, evaluate
from tests.conftest import rebundle

FAST = {"samples": 100, "batches": (1, 8), "duration_s": 0.05, "rounds": 1}


def test_students_beside_their_teacher(tiny_bundle: Path, student_bundle: Path,
                                       idx_dir: Path, tmp_path: Path) -> None:
    peer = rebundle(tiny_bundle, tmp_path / "peer",
                    generator={"labels": [f"class {k}" for k in range(10)]})
    out = tmp_path / "c"
    r = compare(CompareConfig(bundles=(student_bundle, peer), teacher=tiny_bundle, out=out,
                              data_dir=idx_dir, **FAST))
    teacher, student, other = r.rows
    assert [row.role for row in r.rows] == ["teacher", "student", "peer"]
    assert teacher.bundle == str(tiny_bundle) and teacher.agreement is None
    assert other.agreement is None and any("peer: no agreement" in w and "labels" in w
                                           for w in r.warnings)
    # the student's agreement is eval's, on the same latents
    q = evaluate(EvalConfig(bundle=student_bundle, teacher=tiny_bundle, samples=100,
                            precisions=("fp32",), torch=False, truncation=(), guard=False,
                            data_dir=idx_dir, out=None))
    assert student.agreement == q.variant("fp32").vs_teacher["agreement"]
    assert 0 <= student.agreement["value"] < 1
    assert all(row.calls_per_image == 1 for row in r.rows)
    assert r.columns()[-1] == AGREEMENT and "calls/image" in r.columns()
    cells = r.table()
    assert cells[0][-1] == "teacher" and cells[2][-1] == "— (not pairable)"
    assert cells[1][-1].startswith(f"{student.agreement['value']:.2%}")
    md = (out / "report.md").read_text()
    assert "agreement with teacher" in md and "| teacher |" in md
    assert (out / "student" / "report.md").is_file()
    assert "Against the teacher" in (out / "student" / "report.md").read_text()
    saved = json.loads((out / "report.json").read_text())
    assert saved["teacher"] == str(tiny_bundle) and saved["rows"][1]["role"] == "student"


def test_the_cli_takes_a_teacher(tiny_bundle: Path, student_bundle: Path, idx_dir: Path,
                                 tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["compare", str(tiny_bundle), str(student_bundle),
                                   "--teacher", str(tiny_bundle), "--samples", "60", "--batch",
                                   "1", "--duration", "0.05", "--data-dir", str(idx_dir),
                                   "--out", str(tmp_path / "c")], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    flat = " ".join(res.output.split())
    assert "agreement with teacher" in flat and "calls/image" in flat and "Traceback" not in flat
    rows = json.loads((tmp_path / "c" / "report.json").read_text())["rows"]
    assert [row["role"] for row in rows] == ["teacher", "student"]  # listed once, not twice
