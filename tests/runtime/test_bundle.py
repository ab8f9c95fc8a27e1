"""The bundle's file rules and "hash what you load", through ``Generator.load`` as an app would.

Issue 15: symbolic links that leave the bundle (hashes matching) were accepted (case 4); a
variant replaced after ``Generator.load`` was used unchecked (case 5); a signed bundle must be
refused when unsigned or different (case 3).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgegen.runtime import Generator
from edgegen.runtime.bundle import file_entry, load_bundle, replace_refusal
from edgegen.runtime.errors import BundleError, ConfigError


def _copy(src: Path, tmp_path: Path, name: str = "b") -> Path:
    return Path(shutil.copytree(src, tmp_path / name))


def _rehash(root: Path, rel: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][rel] = file_entry(root / rel)
    (root / "manifest.json").write_text(json.dumps(manifest))


# -- case 4: links that leave the bundle, hashes matching ---------------------------------------
@pytest.mark.parametrize("what", ["model.onnx", "README.md", "golden"])
def test_a_symbolic_link_is_refused_even_with_matching_hashes(tiny_bundle: Path, tmp_path: Path,
                                                              what: str) -> None:
    root = _copy(tiny_bundle, tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / what
    shutil.move(str(root / what), target)  # the same bytes, now outside the bundle
    (root / what).symlink_to(target)
    with pytest.raises(BundleError, match="symbolic link"):
        Generator.load(root)
    with pytest.raises(BundleError, match="symbolic link"):
        load_bundle(root, check_hashes=False)


def test_special_files_and_unlisted_files_are_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    os.mkfifo(root / "golden" / "pipe")
    with pytest.raises(BundleError, match="not a regular file"):
        Generator.load(root)  # and never blocks on the fifo
    (root / "golden" / "pipe").unlink()
    (root / "golden" / "extra.pb").write_bytes(b"x")
    with pytest.raises(BundleError, match="extra.pb is in the bundle but not in its manifest"):
        Generator.load(root)
    (root / "golden" / "extra.pb").unlink()
    (root / "trt_cache").mkdir()  # a tool's cache is allowed, and never read by edgegen
    (root / "trt_cache" / "engine").write_bytes(b"x")
    assert Generator.load(root).generate([1], seed=1).shape == (1, 28, 28)


# -- case 5: checked bytes == loaded bytes ------------------------------------------------------
def test_a_variant_replaced_after_load_is_refused_not_used(
        tiny_bundle: Path, tmp_path: Path, perturb_model: Callable[..., str]) -> None:
    root = _copy(tiny_bundle, tmp_path)
    g = Generator.load(root)  # checks every sha256; the fp16 session is created on first use
    before = g.generate([3, 4], seed=5)
    perturb_model(root, 1.5, "model.fp16.onnx")  # replaced behind the generator's back
    with pytest.raises(BundleError, match="model.fp16.onnx changed since the bundle was checked"):
        g.generate([3], seed=5, variant="fp16")
    np.testing.assert_array_equal(g.generate([3, 4], seed=5), before)  # fp32: loaded earlier
    shutil.copy(tiny_bundle / "model.fp16.onnx", root / "model.fp16.onnx")
    want = Generator.load(tiny_bundle).generate([3], seed=5, variant="fp16")
    np.testing.assert_array_equal(g.generate([3], seed=5, variant="fp16"), want)


def test_an_evaluator_replaced_after_load_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    g = Generator.load(root)
    shutil.copy(root / "model.onnx", root / "evaluator.onnx")
    with pytest.raises(BundleError, match="evaluator.onnx changed since"):
        g.generate([3], seed=5, guard=True)


def test_read_returns_exactly_the_checked_bytes(tiny_bundle: Path) -> None:
    b = load_bundle(tiny_bundle)
    data = b.model_bytes("int8")
    assert data == (tiny_bundle / "model.int8.onnx").read_bytes()
    with pytest.raises(BundleError, match="does not list"):
        b.read("manifest.json")


# -- case 3: signatures through the runtime -----------------------------------------------------
def test_generator_load_with_a_public_key(signed_bundle: Path, tiny_bundle: Path,
                                          signing_keys: dict[str, Path], tmp_path: Path,
                                          perturb_model: Callable[..., str]) -> None:
    g = Generator.load(signed_bundle, public_key=signing_keys["public"])
    assert g.signature["status"] == "verified"
    assert Generator.load(signed_bundle).signature["status"] == "signed, not checked"
    assert Generator.load(tiny_bundle).signature["status"] == "unsigned"
    with pytest.raises(BundleError, match="not signed"):
        Generator.load(tiny_bundle, public_key=signing_keys["public"])
    with pytest.raises(BundleError, match="does not verify"):
        Generator.load(signed_bundle, public_key=signing_keys["other_public"])
    with pytest.raises(ConfigError, match="not a PEM elliptic-curve public key"):
        Generator.load(signed_bundle, public_key=signing_keys["private"])
    root = _copy(signed_bundle, tmp_path)
    perturb_model(root, 1.01, "model.int8.onnx")
    _rehash(root, "model.int8.onnx")  # consistent: the manifest agrees with the new file
    assert Generator.load(root).generate([1], seed=1).shape == (1, 28, 28)  # no key: loads
    with pytest.raises(BundleError, match="manifest.json differs from the signed file; "
                                          "model.int8.onnx differs from the signed file"):
        Generator.load(root, public_key=signing_keys["public"])
    (root / "bundle.sig").write_text("{not json")
    with pytest.raises(BundleError, match="does not verify"):
        Generator.load(root, public_key=signing_keys["public"])


def test_replace_refusal_tells_a_bundle_from_anything_else(tiny_bundle: Path,
                                                          tmp_path: Path) -> None:
    assert replace_refusal(tiny_bundle) is None
    empty = tmp_path / "empty"
    empty.mkdir()
    assert replace_refusal(empty) is None
    user = tmp_path / "u"
    user.mkdir()
    (user / "thesis.txt").write_text("x")
    assert "not an edgegen bundle" in replace_refusal(user)
    root = _copy(tiny_bundle, tmp_path)
    (root / "notes.txt").write_text("mine")
    assert "does not list (notes.txt)" in replace_refusal(root)
    (tmp_path / "f").write_text("x")
    assert "not a folder" in replace_refusal(tmp_path / "f")
