"""``edgegen export`` never destroys what is not a bundle (issue 15, case 1) and refuses an
output it must not write before exporting (case 7)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app

runner = CliRunner()


def _export(run: Path, out: str | Path, *extra: str) -> tuple[int, str]:
    res = runner.invoke(app, ["export", str(run), "--out", str(out), "--precision", "fp32",
                              "--golden-sets", "1", *extra])
    return res.exit_code, " ".join(res.output.split())


def test_force_never_deletes_a_folder_that_is_not_a_bundle(tiny_run: Path,
                                                           tmp_path: Path) -> None:
    u = tmp_path / "u"
    u.mkdir()
    (u / "thesis.txt").write_text("three years of work")
    code, out = _export(tiny_run, u, "--force")
    assert code == 2, out
    assert "not an edgegen bundle" in out and "even with --force" in out
    assert (u / "thesis.txt").read_text() == "three years of work"
    code, out = _export(tiny_run, u)  # without --force: no promise about an "old bundle"
    assert code == 2 and "the old bundle stays" not in out and "not an edgegen bundle" in out
    assert "exported" not in out  # refused before the export ran


def test_force_never_deletes_the_run_it_reads(tiny_run: Path, tiny_evaluator: Path,
                                              tmp_path: Path) -> None:
    before = {p: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()}
    for out in (tiny_run, tiny_run / "bundle", tiny_run.parent, tiny_evaluator,
                tiny_evaluator / "b"):
        code, text = _export(tiny_run, out, "--force")
        assert code == 2, (out, text)
        assert "the training run" in text or "the evaluator run" in text, (out, text)
    assert {p: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()} == before
    assert not (tiny_run / "bundle").exists() and not (tiny_evaluator / "b").exists()


def test_a_bundle_with_someone_elses_file_in_it_is_not_replaced(tiny_bundle: Path,
                                                                tiny_run: Path,
                                                                tmp_path: Path) -> None:
    b = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    (b / "my-notes.txt").write_text("mine")
    code, out = _export(tiny_run, b, "--force")
    assert code == 2 and "my-notes.txt" in out, out
    assert (b / "my-notes.txt").read_text() == "mine"


@pytest.mark.parametrize("out", [".", "..", "a-file", "a-file/b"])
def test_out_that_cannot_be_a_bundle_is_refused_before_exporting(
        tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: str) -> None:
    (tmp_path / "a-file").write_text("x")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    target = out if out in (".", "..") else str(tmp_path / out)
    code, text = _export(tiny_run, target, "--force")
    assert code == 2, text
    assert "exported" not in text and "Traceback" not in text
    assert sorted(os.listdir(tmp_path)) == ["a-file", "work"] and not os.listdir(work)
    assert (tmp_path / "a-file").read_text() == "x"


def test_an_empty_folder_takes_a_bundle_with_force(tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = _export(tiny_run, empty)
    assert code == 2 and "an empty folder" in out, out
    code, out = _export(tiny_run, empty, "--force")
    assert code == 0, out
    assert (empty / "manifest.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["empty"]  # no partial or old folder left
