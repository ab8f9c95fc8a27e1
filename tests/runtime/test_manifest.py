"""The one JSON Schema of ``edgegen.bundle/1`` and the bounded, strict manifest reader.

Every case of issue 15's list 6 (and more) must be a ``BundleError`` naming the JSON path, from
``parse_manifest`` and from ``Generator.load`` — never an AttributeError, KeyError, ValueError
or RecursionError. The CLI side (exit 2 from verify, eval, bench) is in
tests/cli/test_bundle_safety_cli.py.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgegen.runtime import Generator
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.errors import BundleError
from edgegen.runtime.manifest import (
    MAX_DEPTH,
    SCHEMA_FILE,
    nesting_depth,
    parse_manifest,
    schema,
    validate,
)

Edit = Callable[[dict[str, Any]], Any]


@pytest.fixture(scope="module")
def manifest(tiny_bundle: Path) -> dict[str, Any]:
    return json.loads((tiny_bundle / "manifest.json").read_text())


def _set(path: tuple[str, ...], value: Any) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _drop(path: tuple[str, ...]) -> Edit:
    def edit(m: dict[str, Any]) -> None:
        node = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


# (edit, the JSON path the error must name) — issue 15's list 6 first, then more
VIOLATIONS: dict[str, tuple[Edit, str]] = {
    "files as a list": (lambda m: m.update(files=sorted(m["files"])), "$.files is an array"),
    "a file entry as a string": (_set(("files", "model.onnx"), "abc"),
                                 "$.files['model.onnx'] is a string"),
    "a variant without file": (_drop(("variants", "fp16", "file")), "$.variants.fp16"),
    "variants as a string": (_set(("variants",), "fp32"), "$.variants is a string"),
    "z_dim 'abc'": (_set(("generator", "z_dim"), "abc"), "$.generator.z_dim is a string"),
    "golden.sets missing": (_drop(("golden", "sets")), "$.golden"),
    "an absolute path": (_set(("variants", "fp16", "file"), "/etc/passwd"),
                         "$.variants.fp16.file"),
    "a NUL in a path": (_set(("variants", "fp16", "file"), "model\x00.onnx"),
                        "$.variants.fp16.file"),
    "a Windows path": (_set(("evaluator", "file"), "C:\\evaluator.onnx"), "$.evaluator.file"),
    "an absolute listed file": (lambda m: m["files"].update(
        {"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}), "$.files"),
    "a huge number": (_set(("generator", "z_dim"), 10**25), "$.generator.z_dim"),
    "a negative class count": (_set(("generator", "n_classes"), -3), "$.generator.n_classes"),
    "a boolean size": (_set(("files", "model.onnx", "bytes"), True), "$.files['model.onnx']"),
    "a short sha256": (_set(("files", "model.onnx", "sha256"), "abc"), "$.files['model.onnx']"),
    "an unknown section": (_set(("evil",), {"x": 1}), "'evil' was unexpected"),
    "an unknown variant key": (_set(("variants", "fp32", "exec"), "rm -rf /"),
                               "$.variants.fp32"),
    "generator inputs as an object": (_set(("generator", "inputs"), {"z": 1}),
                                      "$.generator.inputs is an object"),
    "a golden set without dir": (lambda m: m["golden"]["sets"][0].pop("dir"),
                                 "$.golden.sets[0]"),
    "a test vector seed as a number": (_set(("latent", "test_vectors"), [
        {"seed": 42, "n": 1, "z_dim": 2, "float32_hex": ["00000000", "00000000"]}]),
        "$.latent.test_vectors[0].seed"),
    "a checkpoint path with a NUL": (_set(("provenance", "checkpoint", "path"), "a\x00b"),
                                     "$.provenance.checkpoint.path"),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_each_violation_names_its_json_path(manifest: dict[str, Any], case: str) -> None:
    edit, where = VIOLATIONS[case]
    m = copy.deepcopy(manifest)
    edit(m)
    with pytest.raises(BundleError, match="does not follow the edgegen.bundle/1 schema") as err:
        parse_manifest(json.dumps(m).encode(), "manifest.json")
    assert where in str(err.value), str(err.value)


RAW: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "nesting 200,000 deep": (lambda raw: raw[:-2] + b', "deep": ' + b"[" * 200_000
                             + b"]" * 200_000 + b"}\n", "nests arrays/objects more than"),
    "not UTF-8": (lambda raw: raw.replace(b'"cdcgan"', b'"cdc\xffgan"', 1), "not UTF-8"),
    "NaN": (lambda raw: raw.replace(b'"two_pi": 6.283185307179586', b'"two_pi": NaN'),
            "NaN is not JSON"),
    "a number beyond a double": (lambda raw: raw.replace(b'"two_pi": 6.283185307179586',
                                                         b'"two_pi": 1e999'), "does not fit"),
    "a 5,000-digit integer": (lambda raw: raw.replace(b'"z_dim": ', b'"z_dim": 1' + b"0" * 5000
                                                      + b', "x": ', 1), "digits"),
    "a duplicate key": (lambda raw: raw.replace(b'"z_dim": ', b'"z_dim": 1, "z_dim": ', 1),
                        "duplicate key 'z_dim'"),
    "2 MiB of spaces": (lambda raw: raw + b" " * (2 << 20), "at most 1,048,576"),
    "not JSON": (lambda raw: raw[:100], "not valid JSON"),
    "an array": (lambda raw: b"[" + raw + b"]", "not an object"),
    "another schema": (lambda raw: raw.replace(b'"edgegen.bundle/1"', b'"edgegen.bundle/2"'),
                       "this edgegen reads 'edgegen.bundle/1'"),
}


@pytest.mark.parametrize("case", list(RAW))
def test_malformed_bytes_are_clean_errors(tiny_bundle: Path, case: str) -> None:
    raw = (tiny_bundle / "manifest.json").read_bytes()
    change, message = RAW[case]
    with pytest.raises(BundleError, match=message.replace("(", r"\(")):
        parse_manifest(change(raw), "manifest.json")


@pytest.mark.parametrize("case", ["files as a list", "a variant without file", "z_dim 'abc'",
                                  "golden.sets missing", "a NUL in a path", "a huge number"])
def test_generator_load_raises_its_own_error(tiny_bundle: Path, tmp_path: Path,
                                             case: str) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    m = json.loads((root / "manifest.json").read_text())
    edit, where = VIOLATIONS[case]
    edit(m)
    (root / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError) as err:
        Generator.load(root)
    assert where in str(err.value)


def test_generator_load_refuses_a_200000_deep_manifest(tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    (root / "manifest.json").write_bytes(b"[" * 200_000 + b"]" * 200_000)
    with pytest.raises(BundleError, match="nests arrays/objects more than 32 deep"):
        Generator.load(root)


def test_the_schema_describes_todays_manifest_and_admits_the_parallel_fields(
        manifest: dict[str, Any]) -> None:
    validate(manifest)  # today's export, exactly
    m = copy.deepcopy(manifest)
    denoiser = {"file": "denoiser.onnx", "opset": 17,
                "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 3, 32, 32]},
                           {"name": "t", "dtype": "float32", "shape": ["batch"]},
                           {"name": "label", "dtype": "int64", "shape": ["batch"]}],
                "outputs": [{"name": "v", "dtype": "float32", "shape": ["batch", 3, 32, 32]}],
                "variants": {"fp32": {"file": "denoiser.onnx", "precision": "fp32"},
                             "fp16": {"file": "denoiser.fp16.onnx", "precision": "fp16"}}}
    sampler = {"solver": "euler", "steps": 8, "guidance": 2.0, "null_label": 10,
               "time_grid": [i / 8 for i in range(9)], "image_shape": [3, 32, 32],
               "denoiser": denoiser}
    m["generator"].update(sampler=sampler, image_shape=[3, 32, 32],
                          labels=[f"class {i}" for i in range(m["generator"]["n_classes"])])
    m.update(sampler=sampler, denoiser=denoiser)
    m["postprocess"]["image_shape"] = [3, 32, 32]
    m["golden"]["computed_by"] = "ONNX Runtime 1.32 float32 on CPU (no PyTorch reference)"
    m["variants"]["fp32"]["optimization"] = {"nodes_before": 9, "nodes_after": 7}
    m["variants"]["fp32"]["rewrites"] = [{"pattern": "ConvTranspose->phases", "count": 2}]
    m["provenance"].update(training_minutes=15.0, anything={"informational": True})
    m["notes"] = ["free text"]
    validate(m)
    m["denoiser"]["variants"]["fp16"].pop("file")  # readers rely on it: still strict
    with pytest.raises(BundleError, match=r"\$\.denoiser\.variants\.fp16"):
        validate(m)


def test_depth_is_counted_before_parsing_and_ignores_brackets_in_strings() -> None:
    assert nesting_depth(b'{"a": "[[[[[[[[", "b": [1, [2]]}') == 3
    assert nesting_depth(b'"\\"[[["') == 0
    assert nesting_depth(b"[" * 200_000) == MAX_DEPTH + 1


def test_the_schema_file_is_the_package_data_file() -> None:
    assert SCHEMA_FILE.name == "bundle.schema.json" and SCHEMA_FILE.parent.name == "runtime"
    assert schema()["properties"]["schema"] == {"const": "edgegen.bundle/1"}
    pyproject = (Path(__file__).resolve().parents[2] / "runtime" / "pyproject.toml").read_text()
    assert '"edgegen.runtime" = ["bundle.schema.json", "py.typed"]' in pyproject


# ------------------------------------------------------------------------------- fuzzing

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                          allow_infinity=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:3]):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_manifests_pass_or_raise_bundle_error(fuzz_bundle: Path,
                                                     data: st.DataObject) -> None:
    """Replace or delete one value anywhere in a real manifest: ``load_bundle`` (schema, names,
    files, hashes) either accepts the result or raises BundleError — never another exception."""
    m = json.loads(ORIGINAL[fuzz_bundle])
    paths = [p for p in _paths(m) if p]
    path = data.draw(st.sampled_from(paths))
    node = m
    for key in path[:-1]:
        node = node[key]
    if data.draw(st.booleans()) and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = data.draw(JSON)
    (fuzz_bundle / "manifest.json").write_text(json.dumps(m))
    with contextlib.suppress(BundleError):  # anything else fails the test
        load_bundle(fuzz_bundle)


ORIGINAL: dict[Path, bytes] = {}


@pytest.fixture(scope="module")
def fuzz_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("fuzz") / "b"))
    ORIGINAL[root] = (root / "manifest.json").read_bytes()
    return root
