"""examples/node (through the edgegen-runtime package) enforces Python's rules (issue 15, case 8):
the same JSON Schema file (ajv), no
unlisted file, no variant without ``file``, no symbolic link, every sha256 — and, with a public
key, the signature (case 3): a consistently tampered signed bundle is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def _generate(folder: Path, root: Path, out: Path, *extra: str | Path
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "generate.mjs", str(root), "7", "42", str(out),
                           *map(str, extra)], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def _goldens(folder: Path, root: Path, *extra: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", "check_goldens.mjs", str(root), "--pairs", "7:42",
                           *map(str, extra)], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def _edit(edit: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        m = json.loads((root / "manifest.json").read_text())
        edit(m)
        (root / "manifest.json").write_text(json.dumps(m))
    return apply


def _symlink_out(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        outside = root.parent / "outside"
        outside.mkdir(exist_ok=True)
        shutil.move(str(root / rel), outside / rel)  # same bytes, hashes still match
        (root / rel).symlink_to(outside / rel)
    return apply


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "an unlisted file": (lambda r: (r / "golden" / "extra.pb").write_bytes(b"x"),
                         "golden/extra.pb is in the bundle but not in its manifest"),
    "a variant without file": (_edit(lambda m: m["variants"]["fp16"].pop("file")),
                               "$.variants.fp16: must have required property 'file'"),
    "model.onnx linked outside": (_symlink_out("model.onnx"), "symbolic link"),
    "golden/ linked outside": (_symlink_out("golden"), "symbolic link"),
    "README.md linked outside": (_symlink_out("README.md"), "symbolic link"),
    "files as a list": (_edit(lambda m: m.update(files=sorted(m["files"]))),
                        "$.files is an array, expected object"),
    "an absolute path": (_edit(lambda m: m["variants"]["fp16"].update(file="/etc/passwd")),
                         "at $.variants.fp16.file leaves the bundle"),
    "z_dim 'abc'": (_edit(lambda m: m["generator"].update(z_dim="abc")),
                    "$.generator.z_dim is a string, expected integer"),
    "nesting 200,000 deep": (lambda r: (r / "manifest.json").write_bytes(
        b"[" * 200_000 + b"]" * 200_000), "nests arrays/objects more than 32 deep"),
    "not UTF-8": (lambda r: (r / "manifest.json").write_bytes(
        (r / "manifest.json").read_bytes().replace(b'"cdcgan"', b'"cdc\xffgan"', 1)),
                  "not UTF-8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_node_refuses_what_python_refuses(node_example: Path, tiny_bundle: Path,
                                          tmp_path: Path, case: str) -> None:
    from edgegen.runtime import Generator
    from edgegen.runtime.errors import BundleError

    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    change, message = CASES[case]
    change(root)
    done = _generate(node_example, root, tmp_path / "x.pgm")
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert not (tmp_path / "x.pgm").exists()
    with pytest.raises(BundleError):  # and Python agrees
        Generator.load(root)


def test_node_reads_the_one_schema_file(node_example: Path, tiny_bundle: Path,
                                        tmp_path: Path) -> None:
    """EDGEGEN_BUNDLE_SCHEMA points Node at another schema: the bundle is judged by it (so the
    default is the package's file, not a copy)."""
    import os

    runtime = Path(__file__).resolve().parents[2] / "runtime" / "src" / "edgegen" / "runtime"
    strict = json.loads((runtime / "bundle.schema.json").read_text())
    strict["$defs"]["generator"]["properties"]["z_dim"]["maximum"] = 10
    other = tmp_path / "schema.json"
    other.write_text(json.dumps(strict))
    done = subprocess.run(["node", "generate.mjs", str(tiny_bundle), "7", "42",
                           str(tmp_path / "x.pgm")], cwd=node_example, capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "EDGEGEN_BUNDLE_SCHEMA": str(other)})
    assert done.returncode == 1 and "$.generator.z_dim: must be <= 10" in done.stderr, done.stderr


def test_node_checks_the_signature_and_refuses_a_tampered_signed_bundle(
        node_example: Path, signed_bundle: Path, signing_keys: dict[str, Path], tmp_path: Path,
        tamper_consistently: Callable[[Path, str], None]) -> None:
    done = _goldens(node_example, signed_bundle, "--public-key", signing_keys["public"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "signature: verified" in done.stdout
    done = _goldens(node_example, signed_bundle, "--public-key", signing_keys["other_public"])
    assert done.returncode == 1 and "does not verify with this public key" in done.stderr
    root = Path(shutil.copytree(signed_bundle, tmp_path / "b"))
    tamper_consistently(root, "drop")
    done = _goldens(node_example, root)  # the old hole: the regenerated goldens pass
    assert done.returncode == 0, done.stdout + done.stderr
    done = _goldens(node_example, root, "--public-key", signing_keys["public"])
    assert done.returncode == 1, done.stdout + done.stderr
    assert "manifest.json differs from the signed file" in done.stderr
    assert "model.onnx differs from the signed file" in done.stderr
    (root / "bundle.sig").unlink()
    done = _generate(node_example, root, tmp_path / "x.pgm", "--public-key",
                     signing_keys["public"])
    assert done.returncode == 1 and "not signed" in done.stderr, done.stderr
