"""``edgegen export --ort-format``: real .ort files from ONNX Runtime's converter, listed and
hashed in the manifest, checked by verify, refused when changed."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.core.errors import BundleError, ExportError
from edgegen.export.golden import load_golden_set
from edgegen.export.ort_format import REQUIRED_OPERATORS, config_text, ort_name, tolerance
from edgegen.export.verify import VerifyConfig, verify
from edgegen.runtime.bundle import MANIFEST, file_entry, load_bundle
from edgegen.runtime.manifest import validate
from edgegen.runtime.providers import is_ort_format, make_session

runner = CliRunner()


def _manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def test_the_cli_writes_an_ort_file_for_every_onnx_model(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(out), "--precision", "fp32",
                              "--golden-sets", "1", "--ort-format"])
    assert res.exit_code == 0, res.output
    assert "ORT format (Runtime style" in res.output
    m = _manifest(out)
    onnx_files = sorted(p.name for p in out.glob("*.onnx"))
    assert onnx_files == ["evaluator.onnx", "model.onnx"]
    assert m["ort_format"]["models"] == {f: ort_name(f) for f in onnx_files}
    for f in onnx_files:
        assert is_ort_format((out / ort_name(f)).read_bytes())


def test_manifest_shape_hashes_and_version(tiny_ort_bundle: Path) -> None:
    m = _manifest(tiny_ort_bundle)
    validate(m, "the test")
    section = m["ort_format"]
    assert section == {
        "onnxruntime": onnxruntime.__version__, "optimization_style": "Runtime",
        "required_operators": "required_operators.config", "type_reduction": True,
        "models": {"evaluator.onnx": "evaluator.ort", "model.fp16.onnx": "model.fp16.ort",
                   "model.int8.onnx": "model.int8.ort", "model.onnx": "model.ort"}}
    for rel in [*section["models"].values(), section["required_operators"]]:
        data = (tiny_ort_bundle / rel).read_bytes()
        assert m["files"][rel] == {"sha256": hashlib.sha256(data).hexdigest(),
                                   "bytes": len(data)}
    # what export measured is what it lists: a note with each .ort's |Δ| against its .onnx
    note = next(n for n in m["provenance"]["notes"] if n.startswith("ORT format"))
    assert all(f"{ort} " in note for ort in section["models"].values())
    card = (tiny_ort_bundle / "README.md").read_text()
    assert "ORT format (ONNX Runtime Mobile" in card and "format=\"ort\"" in card


def test_required_operators_cover_every_op_with_its_types(tiny_ort_bundle: Path) -> None:
    """The config (type-reduced) names every operator the .ort models use, and no machine
    path."""
    from onnxruntime.tools.ort_format_model.ort_model_processor import OrtFormatModelProcessor

    text = (tiny_ort_bundle / REQUIRED_OPERATORS).read_text()
    assert "/tmp" not in text and "without_runtime_opt" not in text
    listed = set()
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        domain, _, ops = line.split(";", 2)
        listed |= {(domain, e.split("{")[0]) for e in _split_ops(ops)}
    used: dict = {}
    for rel in _manifest(tiny_ort_bundle)["ort_format"]["models"].values():
        OrtFormatModelProcessor(str(tiny_ort_bundle / rel), used, None).process()
    want = {(d, op) for d, by_opset in used.items() for ops in by_opset.values() for op in ops}
    assert want and want <= listed
    assert '"inputs": {"0": ["float"]}' in text  # type reduction: Conv keeps float only


def _split_ops(ops: str) -> list[str]:
    """``A{...},B,C{...}`` -> its entries (commas inside the JSON braces kept)."""
    out, depth, cur = [], 0, ""
    for ch in ops:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur] if cur else out


def test_goldens_reproduce_through_every_ort_model(tiny_ort_bundle: Path) -> None:
    """fp32: within the fp32 tolerance of the goldens; each .ort within its precision's tolerance
    of its .onnx (read through the bundle's checked reads)."""
    bundle = load_bundle(tiny_ort_bundle)
    sets = [load_golden_set(p) for p in bundle.golden_sets()]
    for onnx_file, ort_file in bundle.ort_format["models"].items():
        if onnx_file == "evaluator.onnx":
            continue
        ort_s = make_session(bundle.read(ort_file))
        onnx_s = make_session(bundle.read(onnx_file))
        tol = tolerance(onnx_file, sampler=False)
        for (z, y), image in sets:
            got = ort_s.run(None, {"z": z, "label": y})[0]
            assert np.allclose(got, onnx_s.run(None, {"z": z, "label": y})[0], atol=tol.atol,
                               rtol=tol.rtol)
            if onnx_file == "model.onnx":
                assert np.allclose(got, image, atol=1e-5, rtol=1e-5)


def test_verify_checks_the_ort_files(tiny_ort_bundle: Path) -> None:
    report = verify(VerifyConfig(bundle=tiny_ort_bundle, batches=(1, 8), repeats=2))
    rows = {(c.variant, c.check): c for c in report.checks if c.check.startswith("ort-")}
    assert set(rows) == {(v, k) for v in ("fp32", "fp16", "int8")
                         for k in ("ort-golden", "ort-onnx")} | {("evaluator", "ort-onnx")}
    assert all(r.status == "pass" for r in rows.values()), [r.message for r in rows.values()]
    fp32 = rows[("fp32", "ort-golden")]
    assert fp32.stats.atol == 1e-5 and fp32.details["file"] == "model.ort"
    assert fp32.stats.max_abs < 1e-5


def test_verify_fails_an_ort_file_that_computes_something_else(tiny_ort_bundle: Path,
                                                                tmp_path: Path) -> None:
    """model.ort replaced by the (listed, re-hashed) int8 model's .ort: the bundle loads, and
    verify's ort checks say the fp32 .ort is not the fp32 model."""
    root = Path(shutil.copytree(tiny_ort_bundle, tmp_path / "b"))
    shutil.copyfile(root / "model.int8.ort", root / "model.ort")
    m = _manifest(root)
    m["files"]["model.ort"] = file_entry(root / "model.ort")
    (root / MANIFEST).write_text(json.dumps(m))
    report = verify(VerifyConfig(bundle=root, precisions=("fp32",), batches=(1,), repeats=2))
    bad = {c.check for c in report.checks if c.status == "fail"}
    assert bad == {"ort-golden", "ort-onnx"} and not report.passed


def test_a_changed_ort_file_is_refused(tiny_ort_bundle: Path, tmp_path: Path) -> None:
    from edgegen.runtime import Generator

    root = Path(shutil.copytree(tiny_ort_bundle, tmp_path / "b"))
    data = bytearray((root / "model.fp16.ort").read_bytes())
    data[-100] ^= 0xFF
    (root / "model.fp16.ort").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.fp16.ort has sha256"):
        load_bundle(root)
    # changed after the load: the checked read refuses it when the variant is first used
    root2 = Path(shutil.copytree(tiny_ort_bundle, tmp_path / "b2"))
    g = Generator.load(root2, format="ort")
    (root2 / "model.fp16.ort").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="changed since the bundle was checked"):
        g.generate([1], seed=1, variant="fp16")


def test_manifest_must_list_the_ort_files_it_names(tiny_ort_bundle: Path,
                                                   tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_ort_bundle, tmp_path / "b"))
    m = _manifest(root)
    del m["files"]["model.ort"]
    (root / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=r"names 'model.ort' \(ort_format.models.model.onnx\)"):
        load_bundle(root)
    m = _manifest(tiny_ort_bundle)
    m["ort_format"]["optimization_style"] = "Whatever"
    with pytest.raises(BundleError, match="optimization_style"):
        validate(m)
    m = _manifest(tiny_ort_bundle)
    m["ort_format"]["models"]["model.onnx"] = "model.onnx"  # not an .ort name
    with pytest.raises(BundleError, match="ort_format"):
        validate(m)


def test_config_header_names_the_bundle_files() -> None:
    text = config_text("# Generated from model/s:\n# - /tmp/x/model.ort\nai.onnx;13;Tanh\n",
                        ["model.onnx"], "1.2.3")
    assert text.splitlines()[1:] == ["# - model.ort", "ai.onnx;13;Tanh"]


def test_tolerance_follows_the_file_precision() -> None:
    assert tolerance("model.onnx", sampler=False).atol == 1e-5
    assert tolerance("model.fp16.onnx", sampler=False).atol == 1e-2
    assert tolerance("denoiser.int8.onnx", sampler=True).atol == 0.5  # one call: not unrolled
    assert tolerance("model.onnx", sampler=True).atol == 1e-4  # the unrolled sampler's


def test_converter_failure_is_an_export_error(tmp_path: Path) -> None:
    from edgegen.export.ort_format import convert_models

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="ORT-format converter failed"):
        convert_models(tmp_path / "src", tmp_path / "out")
