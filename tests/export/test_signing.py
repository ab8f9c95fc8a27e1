"""Signing (OpenSSF model signing) through the CLI: ``edgegen sign``, ``export --sign-key``,
``verify --public-key`` and ``--strict``; and issue 15's case 3, the consistently tampered
bundle — swap model.onnx, regenerate the goldens, edit or drop the checkpoint reference, re-hash
the manifest — which used to pass ``edgegen verify`` and the Node golden check (Node's side:
tests/examples/test_node_rules.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgegen.cli.app import app
from edgegen.core.errors import BundleError
from edgegen.runtime import Generator
from edgegen.runtime.bundle import MANIFEST

runner = CliRunner()
QUICK = ["--precision", "fp32", "--batch", "1,16", "--repeats", "2"]


def test_sign_then_verify_with_the_public_key(signed_bundle: Path, tiny_bundle: Path,
                                              signing_keys: dict[str, Path], tmp_path: Path
                                              ) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    res = runner.invoke(app, ["sign", str(root), "--key", str(signing_keys["private"])])
    assert res.exit_code == 0, res.output
    listed = len(json.loads((root / MANIFEST).read_text())["files"])
    assert f"signed {listed + 1} files" in res.output and (root / "bundle.sig").is_file()
    out = tmp_path / "v.json"
    res = runner.invoke(app, ["verify", str(signed_bundle), "--public-key",
                              str(signing_keys["public"]), "--json", str(out), "--strict", *QUICK])
    assert res.exit_code == 0, res.output
    assert "signature: verified" in res.output and "0 skipped" in res.output
    doc = json.loads(out.read_text())
    assert doc["signature"]["status"] == "verified" and doc["strict"] is True
    row = next(c for c in doc["checks"] if c["check"] == "signature")
    assert row["status"] == "pass" and row["variant"] == "bundle"


def test_without_a_key_the_report_says_unsigned_and_strict_fails_it(tiny_bundle: Path,
                                                                    signed_bundle: Path) -> None:
    res = runner.invoke(app, ["verify", str(tiny_bundle), *QUICK])
    assert res.exit_code == 0, res.output
    assert "signature: unsigned" in res.output
    res = runner.invoke(app, ["verify", str(signed_bundle), *QUICK])
    assert res.exit_code == 0 and "signature: signed, not checked" in res.output, res.output
    res = runner.invoke(app, ["verify", str(signed_bundle), "--strict", *QUICK])
    assert res.exit_code == 1, res.output
    assert "bundle/signature" in res.output and "--strict" in res.output


@pytest.mark.parametrize("checkpoint", ["drop", "edit"])
def test_a_consistently_tampered_signed_bundle_is_refused(
        signed_bundle: Path, signing_keys: dict[str, Path], tmp_path: Path, checkpoint: str,
        tamper_consistently: Callable[[Path, str], None]) -> None:
    root = Path(shutil.copytree(signed_bundle, tmp_path / "b"))
    tamper_consistently(root, checkpoint)
    # the old hole: without a key every check that runs passes (PyTorch is skipped)
    res = runner.invoke(app, ["verify", str(root), *QUICK])
    assert res.exit_code == 0, res.output
    assert "skipped" in res.output and "PyTorch comparison skipped" in res.output
    # --strict: a skipped check is a failure
    res = runner.invoke(app, ["verify", str(root), "--strict", *QUICK])
    assert res.exit_code == 1, res.output
    assert "cpu/fp32/pytorch@1" in res.output and "bundle/signature" in res.output
    # the public key: refused, naming the files that differ
    res = runner.invoke(app, ["verify", str(root), "--public-key", str(signing_keys["public"]),
                              *QUICK])
    assert res.exit_code == 2, res.output
    for name in ("model.onnx differs", "manifest.json differs",
                 "golden/test_data_set_0/output_0.pb differs"):
        assert name in res.output, name
    assert "Traceback" not in res.output
    with pytest.raises(BundleError, match="model.onnx differs from the signed file"):
        Generator.load(root, public_key=signing_keys["public"])


def test_refusals_of_keys_signatures_and_unsigned_bundles(
        tiny_bundle: Path, signed_bundle: Path, signing_keys: dict[str, Path], tmp_path: Path
        ) -> None:
    cases = [
        (["verify", str(tiny_bundle), "--public-key", str(signing_keys["public"])],
         "is not signed"),
        (["verify", str(signed_bundle), "--public-key", str(signing_keys["other_public"])],
         "does not verify"),
        (["verify", str(signed_bundle), "--public-key", str(tmp_path / "missing.pem")],
         "does not exist"),
        (["sign", str(tiny_bundle), "--key", str(signing_keys["public"])],
         "not an unencrypted PEM elliptic-curve private key"),
        (["sign", str(tiny_bundle), "--key", str(tmp_path / "missing.pem")], "does not exist"),
    ]
    for args, message in cases:
        res = runner.invoke(app, [*args, *QUICK] if args[0] == "verify" else args)
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output, (args, res.output)
    assert not (tiny_bundle / "bundle.sig").exists()
    root = Path(shutil.copytree(signed_bundle, tmp_path / "b"))
    (root / "bundle.sig").write_text('{"mediaType": "x"}')
    res = runner.invoke(app, ["verify", str(root), "--public-key", str(signing_keys["public"]),
                              *QUICK])
    assert res.exit_code == 2 and "does not verify" in res.output, res.output
    # a bundle that fails its own checks is never signed
    (root / "bundle.sig").unlink()
    (root / "README.md").write_text("changed")
    res = runner.invoke(app, ["sign", str(root), "--key", str(signing_keys["private"])])
    assert res.exit_code == 2 and "README.md is 7 bytes" in res.output, res.output
    assert not (root / "bundle.sig").exists()


def test_export_signs_inside_the_atomic_build(tiny_run: Path, signing_keys: dict[str, Path],
                                              tmp_path: Path) -> None:
    out = tmp_path / "bundles" / "b"
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(out), "--precision", "fp32",
                              "--golden-sets", "1", "--sign-key", str(signing_keys["private"])])
    assert res.exit_code == 0, res.output
    assert "signed" in res.output and (out / "bundle.sig").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["b"]  # no partial folder or stray .sig
    g = Generator.load(out, public_key=signing_keys["public"])
    assert g.signature["status"] == "verified"
    res = runner.invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "c"),
                              "--sign-key", str(signing_keys["public"])])
    assert res.exit_code == 2 and "--sign-key" in res.output, res.output
    assert not (tmp_path / "c").exists()  # refused before any work
