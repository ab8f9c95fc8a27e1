"""export.manifest: the sections export writes, and a distilled student's teacher in
``provenance.distilled_from``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgegen.core.errors import BundleError, ExportError
from edgegen.export.bundler import ExportConfig, export_bundle
from edgegen.export.manifest import distilled_from, postprocess_section
from edgegen.runtime.bundle import MANIFEST
from edgegen.runtime.manifest import validate
from edgegen.training.checkpoint import load_checkpoint, save_checkpoint

TEACHER = {"run": "runs/cflow", "checkpoint_sha256": "ab" * 32, "architecture": "cflow",
           "steps": 8, "guidance": 1.5, "method": "regression+adversarial", "loss": "l2",
           "pairs": 12000}


def _distilled_run(tiny_run: Path, folder: Path, teacher: object) -> Path:
    """A copy of ``tiny_run`` whose run description records ``teacher`` (what edgegen distill
    writes)."""
    info, tensors = load_checkpoint(tiny_run)
    info.pop("format", None)
    info["distilled_from"] = teacher
    save_checkpoint(folder, tensors, info)
    return folder


def test_a_distilled_runs_teacher_is_copied_into_provenance(tiny_run: Path,
                                                            tmp_path: Path) -> None:
    run = _distilled_run(tiny_run, tmp_path / "student", TEACHER)
    out = tmp_path / "b"
    export_bundle(ExportConfig(checkpoint=run, out=out, precisions=("fp32",), golden_sets=1,
                               deviation_samples=20))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["provenance"]["distilled_from"] == TEACHER
    validate(manifest)


def test_a_run_that_was_not_distilled_has_no_teacher(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / MANIFEST).read_text())
    assert "distilled_from" not in manifest["provenance"]
    assert distilled_from({"arch": "cdcgan"}, tiny_bundle) is None


def test_a_badly_typed_teacher_is_refused_before_the_bundle_appears(tiny_run: Path,
                                                                    tmp_path: Path) -> None:
    run = _distilled_run(tiny_run, tmp_path / "student", {**TEACHER, "steps": "eight"})
    out = tmp_path / "b"
    with pytest.raises(BundleError, match=r"distilled_from\.steps"):
        export_bundle(ExportConfig(checkpoint=run, out=out, precisions=("fp32",),
                                   golden_sets=1, deviation_samples=20))
    assert not out.exists()
    with pytest.raises(ExportError, match="distilled_from is a list"):
        distilled_from({"distilled_from": ["runs/cflow"]}, run)


def test_the_schema_types_the_teacher(tiny_bundle: Path) -> None:
    manifest = json.loads((tiny_bundle / MANIFEST).read_text())
    manifest["provenance"]["distilled_from"] = dict(TEACHER)
    validate(manifest)
    for key, bad in (("checkpoint_sha256", "xyz"), ("pairs", -1), ("architecture", "../x")):
        manifest["provenance"]["distilled_from"] = {**TEACHER, key: bad}
        with pytest.raises(BundleError, match="distilled_from"):
            validate(manifest)
    manifest["provenance"]["distilled_from"] = {"run": "runs/cflow"}  # no sha256
    with pytest.raises(BundleError, match="checkpoint_sha256"):
        validate(manifest)


def test_postprocess_layout_follows_the_channels() -> None:
    assert postprocess_section([1, 28, 28])["image_shape"] == [28, 28]
    rgb = postprocess_section([3, 8, 8])
    assert rgb["image_shape"] == [3, 8, 8] and "RGB" in rgb["layout"]
