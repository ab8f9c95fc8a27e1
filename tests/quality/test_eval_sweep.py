"""``edgegen eval --sweep``: the sampler's knobs (steps x guidance) of an iterative family."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.core.errors import ConfigError, RuntimeInputError
from edgegen.quality.evaluate import EvalConfig, evaluate
from edgegen.quality.flops import count_flops

SMALL = dict(samples=60, sweep_samples=40, truncation=(), guard=False, torch=False,
             precisions=("fp32",))


def test_sweep_measures_every_setting_with_its_cost(tiny_cflow_bundle: Path, idx_dir: Path,
                                                    tmp_path: Path) -> None:
    report = evaluate(EvalConfig(bundle=tiny_cflow_bundle, data_dir=idx_dir, out=tmp_path / "r",
                                 sweep=(("steps", (1.0, 3.0)), ("guidance", (1.0, 2.0, 3.0))),
                                 **SMALL))
    rows = report.sampler_sweep
    assert [(r["steps"], r["guidance"]) for r in rows] == [
        (1, 1.0), (1, 2.0), (1, 3.0), (3, 1.0), (3, 2.0), (3, 3.0)]
    per_call = count_flops(tiny_cflow_bundle / "denoiser.onnx").per_image / 1e6
    for r in rows:
        calls = r["steps"] * (1 if r["guidance"] == 1.0 else 2)
        assert r["calls_per_image"] == calls
        assert r["mflop_per_image"] == pytest.approx(per_call * calls)
        assert 0 <= r["fidelity"] <= 1 and r["ci95"][0] <= r["fidelity"] <= r["ci95"][1]
        assert r["samples"] == 40 and r["fid"] > 0 and r["diversity_pixel"] > 0
        assert r["exported"] == ((r["steps"], r["guidance"]) == (3, 2.0))
    unrolled = count_flops(tiny_cflow_bundle / "model.onnx").per_image / 1e6
    assert unrolled == pytest.approx(next(r for r in rows if r["exported"])["mflop_per_image"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Control knob: the sampler" in md and "controllability knob" in md
    assert (tmp_path / "r" / "sampler_sweep.png").stat().st_size > 5000
    assert (tmp_path / "r" / "sampler_samples.png").is_file()
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert len(saved["sampler_sweep"]) == 6


def test_sweep_on_a_family_without_a_sampler_is_a_clear_error(tiny_bundle: Path,
                                                              idx_dir: Path) -> None:
    with pytest.raises(ConfigError, match="no(ne)?.*truncation"):
        evaluate(EvalConfig(bundle=tiny_bundle, data_dir=idx_dir, out=None,
                            sweep=(("guidance", (1.0, 2.0)),), **SMALL))


@pytest.mark.parametrize("sweep,error", [((("temperature", (1.0,)),), ConfigError),
                                         ((("steps", (0.0,)),), RuntimeInputError),
                                         ((("steps", (2.5,)),), RuntimeInputError),
                                         ((("guidance", (-1.0,)),), RuntimeInputError)])
def test_bad_sweeps_are_refused_before_any_work(tiny_cflow_bundle: Path, idx_dir: Path,
                                                sweep: tuple, error: type) -> None:
    with pytest.raises(error):
        evaluate(EvalConfig(bundle=tiny_cflow_bundle, data_dir=idx_dir, out=None, sweep=sweep,
                            **SMALL))


def test_cli_sweep_option(tiny_cflow_bundle: Path, tiny_bundle: Path, idx_dir: Path,
                          tmp_path: Path) -> None:
    base = ["eval", str(tiny_cflow_bundle), "--data-dir", str(idx_dir), "--samples", "40",
            "--sweep-samples", "20", "--truncation", "", "--no-guard", "--no-torch",
            "--precision", "fp32", "--out", str(tmp_path / "r")]
    res = CliRunner().invoke(app, [*base, "--sweep", "steps=1,2", "--sweep", "guidance=1,2"],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "sampler sweep" in res.output and "control knob" in res.output
    res = CliRunner().invoke(app, [*base, "--sweep", "steps"])
    assert res.exit_code == 2 and "KEY=V1,V2" in res.output
    res = CliRunner().invoke(app, ["eval", str(tiny_bundle), "--data-dir", str(idx_dir),
                                   "--sweep", "guidance=1,2", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "truncation" in res.output
