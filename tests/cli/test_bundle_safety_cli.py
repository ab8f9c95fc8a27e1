"""Issue 15 through the CLI as a user types it: malformed manifests, links and output paths.

* case 6: schema violations are exit 2 naming the JSON path in verify, eval and bench (never a
  traceback, never exit 1 — the parity-failure code);
* case 4: a link leaving the bundle is exit 2;
* case 7: an output that cannot be written is exit 2 *before* any work, and a report that
  cannot be written at the end is printed instead of lost.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.cli.common import errors_to_exit
from edgegen.core.errors import OutputError
from edgegen.core.fileio import save_report

runner = CliRunner()
QUICK_VERIFY = ["--precision", "fp32", "--batch", "1,8", "--repeats", "2"]
QUICK_BENCH = ["--precision", "fp32", "--batch", "1", "--peers", "none", "--iters", "5",
               "--warmup-iters", "1", "--warmup-s", "0", "--rounds", "1", "--no-matmul"]


def _commands(bundle: Path, idx_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(bundle), *QUICK_VERIFY],
        "eval": ["eval", str(bundle), "--samples", "20", "--truncation", "", "--no-guard",
                 "--no-torch", "--data-dir", str(idx_dir), "--out", str(tmp_path / "eval")],
        "bench": ["bench", str(bundle), *QUICK_BENCH],
    }


EDITS = {
    "files as a list": (lambda m: m.update(files=sorted(m["files"])), "$.files is an array"),
    "a file entry as a string": (lambda m: m["files"].update({"model.onnx": "abc"}),
                                 "$.files['model.onnx'] is a string"),
    "a variant without file": (lambda m: m["variants"]["fp16"].pop("file"),
                               "$.variants.fp16: 'file' is a required property"),
    "variants as a string": (lambda m: m.update(variants="fp32"), "$.variants is a string"),
    "z_dim 'abc'": (lambda m: m["generator"].update(z_dim="abc"),
                    "$.generator.z_dim is a string, expected integer"),
    "golden.sets missing": (lambda m: m["golden"].pop("sets"),
                            "$.golden: 'sets' is a required property"),
    "a NUL in a path": (lambda m: m["variants"]["int8"].update(file="model\x00.onnx"),
                        "$.variants.int8.file leaves the bundle"),
    "an absolute path": (lambda m: m["evaluator"].update(file="/etc/passwd"),
                         "$.evaluator.file leaves the bundle"),
    "a huge number": (lambda m: m["generator"].update(n_classes=10**25),
                      "$.generator.n_classes: 10000000000000000000000000 is greater than the "
                      "maximum"),
    "a 41-digit number": (lambda m: m["generator"].update(n_classes=10**40),
                          "not valid JSON (integer of 41 digits"),
}


@pytest.fixture(scope="module")
def broken(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One copy of the tiny bundle per malformed manifest (and the raw byte cases)."""
    out = {}
    for name, (edit, _) in EDITS.items():
        root = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("broken") / "b"))
        m = json.loads((root / "manifest.json").read_text())
        edit(m)
        (root / "manifest.json").write_text(json.dumps(m))
        out[name] = root
    deep = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("broken") / "b"))
    (deep / "manifest.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    out["nesting 200,000 deep"] = deep
    binary = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("broken") / "b"))
    (binary / "manifest.json").write_bytes(b"\xff\xfe{}")
    out["not UTF-8"] = binary
    return out


MESSAGES = {**{k: v for k, (_, v) in EDITS.items()},
            "nesting 200,000 deep": "nests arrays/objects more than 32 deep",
            "not UTF-8": "is not UTF-8"}


@pytest.mark.parametrize("command", ["verify", "eval", "bench"])
@pytest.mark.parametrize("case", list(MESSAGES))
def test_a_malformed_manifest_is_exit_2_naming_the_json_path(
        broken: dict[str, Path], idx_dir: Path, tmp_path: Path, command: str, case: str) -> None:
    res = runner.invoke(app, _commands(broken[case], idx_dir, tmp_path)[command])
    assert res.exit_code == 2, res.output
    assert MESSAGES[case] in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("command", ["verify", "eval", "bench"])
def test_a_link_leaving_the_bundle_is_exit_2(tiny_bundle: Path, idx_dir: Path, tmp_path: Path,
                                             command: str) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    shutil.move(str(root / "model.onnx"), tmp_path / "model.onnx")
    (root / "model.onnx").symlink_to(tmp_path / "model.onnx")  # hashes still match
    res = runner.invoke(app, _commands(root, idx_dir, tmp_path)[command])
    assert res.exit_code == 2 and "symbolic link" in res.output, res.output


# -- outputs checked before the work --------------------------------------------------------------


def test_output_paths_are_refused_before_any_work(tiny_bundle: Path, tiny_run: Path,
                                                  idx_dir: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    b = str(tiny_bundle)
    cases = [
        (["verify", b, "--json", "/proc/x.json", *QUICK_VERIFY], "cannot write in /proc"),
        (["verify", b, "--json", str(a_dir), *QUICK_VERIFY], "is a folder"),
        (["verify", b, "--json", str(a_file / "v.json"), *QUICK_VERIFY], "is a file, not a folder"),
        (["verify", b, "--trt-cache", str(a_file), *QUICK_VERIFY], "is a file, not a folder"),
        (["eval", b, "--out", str(a_file / "r"), "--data-dir", str(idx_dir)],
         "is a file, not a folder"),
        (["eval", b, "--out", str(tmp_path / "e"), "--json", str(a_dir), "--data-dir",
          str(idx_dir)], "is a folder"),
        (["bench", b, "--json", "/proc/bench.json", *QUICK_BENCH], "cannot write in /proc"),
        (["bench", b, "--plot", str(a_dir), *QUICK_BENCH], "is a folder"),
        (["bench", b, "--eval-report", str(a_dir), *QUICK_BENCH], "--eval-report"),
        (["train", "--out", str(a_file / "run"), "--max-steps", "1", "--data-dir", str(idx_dir)],
         "is a file, not a folder"),
        (["train-evaluator", "--out", "/proc/ev", "--data-dir", str(idx_dir)],
         "cannot write in /proc"),
        (["export", str(tiny_run), "--out", str(a_file / "b")], "is a file, not a folder"),
        (["demo", "--out", str(a_file / "demo")], "is a file, not a folder"),
        (["sign", str(a_file), "--key", str(a_file)], "is not a folder"),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        text = " ".join(res.output.split())
        assert message in text, (args, res.output)
        for work in ("creating the session", "generating and judging", "measuring", "exported",
                     "img/s", "PyTorch reference", "held-out"):
            assert work not in text, (args, res.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-dir", "a-file"]  # nothing made


def test_a_report_that_cannot_be_written_at_the_end_is_printed(
        tiny_bundle: Path, idx_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    (out / "report.json" / "in-the-way").mkdir(parents=True)  # report.json is a folder
    res = runner.invoke(app, ["eval", str(tiny_bundle), "--samples", "20", "--truncation", "",
                              "--no-guard", "--no-torch", "--data-dir", str(idx_dir),
                              "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "could not write the report folder" in res.output
    printed = res.output[res.output.index("{"):]
    assert json.loads(printed)["samples"] == 20  # the numbers are not lost


def test_save_report_hands_the_text_to_the_cli(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(OutputError) as err:
        save_report(a_file / "r.json", '{"passed": true}')
    assert err.value.text == '{"passed": true}'
    tiny = typer.Typer()

    @tiny.command()
    def write() -> None:
        with errors_to_exit():
            save_report(a_file / "r.json", '{"passed": true}')

    res = runner.invoke(tiny, [])
    assert res.exit_code == 2 and "could not write the report" in res.output
    assert '{"passed": true}' in res.output
