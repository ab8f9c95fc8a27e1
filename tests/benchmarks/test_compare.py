"""``compare``: the family table on real tiny bundles of two families (and a collapsed lookup
"family" with no dense ops at all), through the stage and through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.benchmarks.compare import CompareConfig, compare
from edgegen.cli.app import app
from edgegen.core.errors import BundleError, ConfigError

runner = CliRunner()
FAST = {"samples": 100, "batches": (1, 8), "duration_s": 0.05, "rounds": 1}


@pytest.fixture(scope="module")
def cmlp_bundle(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path,
                tiny_evaluator: Path) -> Path:
    """The MLP cGAN, trained for a few steps and exported (fp32 only)."""
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.training.train import TrainConfig, train

    run = tiny_evaluator.parent / "cmlp"
    if not (run / "checkpoint.safetensors").exists():
        train(TrainConfig(out=run, arch="cmlp", max_steps=5, width=8, data_dir=idx_dir,
                          fidelity_samples=100))
    out = tmp_path_factory.mktemp("bundles") / "cmlp"
    export_bundle(ExportConfig(checkpoint=run, out=out, precisions=("fp32",), golden_sets=1,
                               deviation_samples=100))
    return out


def test_two_families_and_a_collapsed_one(tiny_bundle: Path, cmlp_bundle: Path, idx_dir: Path,
                                          tmp_path: Path,
                                          lookup_bundle: Callable[..., Path]) -> None:
    import torch

    from edgegen.training.checkpoint import read_info

    collapsed = lookup_bundle(tiny_bundle, tmp_path / "lookup", idx_dir, per_label=1)
    out = tmp_path / "compare"
    r = compare(CompareConfig(bundles=(tiny_bundle, cmlp_bundle, collapsed), out=out,
                              data_dir=idx_dir, **FAST))
    assert r.passed and [row.family for row in r.rows] == ["cdcgan", "cmlp", "cdcgan"]
    gan, mlp, lookup = r.rows

    # parameters from the graph's initializers: the MLP's Linear layers and label embedding
    # (its BatchNorms are folded into the Linears before them)
    gen, info = generator_of(cmlp_bundle)
    expected = sum(p.numel() for m in gen.modules()
                   if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))
                   for p in m.parameters(recurse=False))
    h = 4 * info["model"]["width"]
    zin = info["model"]["z_dim"] + info["model"]["embed_dim"]
    manifest = json.loads((cmlp_bundle / "manifest.json").read_text())
    applied = [r["name"] for r in manifest["generator"]["optimization"].get("applied", [])]
    if "embedding-into-gemm" in applied:
        # export's exact rewrite: the label embedding (10 x 50), its 50 rows of the first
        # Linear and that Linear's bias become one table of 10 x h; the Gemm's K drops to z_dim
        n, e = info["model"]["n_classes"], info["model"]["embed_dim"]
        expected += n * h - n * e - e * h - h
        zin = info["model"]["z_dim"]
    assert mlp.params == expected
    assert mlp.mflop_per_image * 1e6 == pytest.approx(
        2 * (zin * h + h * 2 * h + 2 * h * 4 * h + 4 * h * 784))
    # a lookup has no dense ops; its parameters are its table of 10 digits and its one float
    # constant (1000.0; the int64 constants are not parameters)
    assert lookup.mflop_per_image == 0 and lookup.params == 10 * 28 * 28 + 1

    # training minutes from the manifest's provenance (recorded at export)
    run_info = read_info(info["run"])
    assert mlp.training["source"] == "manifest provenance" and mlp.training["steps"] == 5
    assert mlp.training["minutes"] == pytest.approx(run_info["elapsed_s"] / 60)

    for row in r.rows:
        assert 0 <= row.fidelity <= 1 and 0 <= row.referee_fidelity <= 1
        assert row.best_batch in (1, 8) and row.best_images_per_s > 0 and row.batch1_ms > 0
        assert [b["batch"] for b in row.bench] == [1, 8]
    assert lookup.collapsed == list(range(10)) and lookup.diversity_worst < 0.01
    assert not gan.collapsed or gan.diversity_worst < 0.5

    md = (out / "report.md").read_text()
    assert "COLLAPSED 0,1,2,3,4,5,6,7,8,9" in md and "| family | params |" in md
    data = json.loads((out / "report.json").read_text())
    assert [row["family"] for row in data["rows"]] == ["cdcgan", "cmlp", "cdcgan"]
    for name in ("cdcgan", "cmlp", "lookup"):  # one eval report folder per bundle
        assert (out / name / "report.md").is_file() and (out / name / "samples_fp32.png").is_file()
    assert not list(out.glob(".*tmp"))


def generator_of(bundle: Path) -> tuple:
    """The bundle's PyTorch generator and its run info (with the run folder)."""
    from edgegen.runtime.bundle import load_bundle
    from edgegen.training.checkpoint import bundle_checkpoint, load_generator

    ckpt, why = bundle_checkpoint(load_bundle(bundle))
    assert ckpt is not None, why
    gen, info = load_generator(ckpt)
    return gen, {**info, "run": ckpt.parent}


def test_the_cli_prints_the_table(tiny_bundle: Path, cmlp_bundle: Path, idx_dir: Path,
                                  tmp_path: Path) -> None:
    js = tmp_path / "c.json"
    res = runner.invoke(app, ["compare", str(tiny_bundle), str(cmlp_bundle), "--samples", "100",
                              "--batch", "1,4", "--duration", "0.05", "--data-dir", str(idx_dir),
                              "--out", str(tmp_path / "c"), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "family table" in res.output and "│ cmlp" in res.output and "│ cdcgan" in res.output
    assert json.loads(js.read_text()) == json.loads((tmp_path / "c" / "report.json").read_text())
    assert "Traceback" not in res.output


def test_family_names_show_a_samplers_settings(tiny_bundle: Path) -> None:
    from edgegen.benchmarks.compare import family_name
    from edgegen.runtime.bundle import Bundle, load_bundle

    plain = load_bundle(tiny_bundle)
    assert family_name(plain) == "cdcgan"
    manifest = {**plain.manifest, "generator": {**plain.manifest["generator"],
                                                "architecture": "cflow"},
                "sampler": {"solver": "euler", "steps": 4, "guidance": 2.0}}
    assert family_name(Bundle(tiny_bundle, manifest)) == "cflow (steps 4, guidance 2)"


def _fails(args: list[str], match: str) -> None:
    res = runner.invoke(app, ["compare", *args])
    assert res.exit_code == 2, res.output
    assert match in " ".join(res.output.split()), res.output
    assert "Traceback" not in res.output


def test_bad_inputs_exit_2(tiny_bundle: Path, tmp_path: Path) -> None:
    _fails([], "compare needs at least one bundle")
    (tmp_path / "empty").mkdir()
    _fails([str(tiny_bundle), str(tmp_path / "empty")], "has no manifest.json")
    (tmp_path / "file").write_text("not a folder")
    _fails([str(tiny_bundle), "--out", str(tmp_path / "file" / "compare")],
           "is a file, not a folder")
    _fails([str(tiny_bundle), "--batch", "0"], "--batch needs positive batch sizes")
    _fails([str(tiny_bundle), "--samples", "5"], "--samples must be at least 20")
    _fails([str(tiny_bundle), str(tiny_bundle)], "share a folder name")


def test_a_changed_bundle_is_refused_before_anything_runs(tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    with open(bad / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match="the file was changed or truncated"):
        compare(CompareConfig(bundles=(tiny_bundle, bad), out=tmp_path / "c", **FAST))
    assert not (tmp_path / "c").exists()
    with pytest.raises(ConfigError, match="--duration must be positive"):
        compare(CompareConfig(bundles=(tiny_bundle,), out=None, **{**FAST, "duration_s": 0}))
