"""examples/node (a user of the edgegen-runtime package) against the Python runtime: goldens,
latent vectors and the same uint8 bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgegen.export.golden import read_tensor
from edgegen.runtime import Generator
from edgegen.runtime.bundle import file_entry

PAIRS = [(0, 0), (1, 1), (2, 42), (3, 2**64 - 1), (4, 1234567890123), (5, 7), (6, 99),
         (7, 42), (8, 2**53 + 1), (9, 31337), (7, 2**63)]
PGM_HEADER = b"P5\n28 28\n255\n"


def _node(folder: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", *map(str, args)], cwd=folder, capture_output=True, text=True,
                          timeout=300)


def _copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def _rehash(root: Path, rel: str) -> None:
    """Record a deliberately changed file's new sha256, as a (wrong) re-export would."""
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"][rel] = file_entry(root / rel)
    (root / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_check_goldens_passes_and_node_bytes_equal_python(
        node_example: Path, tiny_bundle: Path, tmp_path: Path, variant: str) -> None:
    out = tmp_path / "pairs.json"
    pairs = ",".join(f"{label}:{seed}" for label, seed in PAIRS)
    done = _node(node_example, "check_goldens.mjs", tiny_bundle, "--variant", variant,
                 "--pairs", pairs, "--json", out)
    assert done.returncode == 0, done.stdout + done.stderr
    if variant == "fp32":  # (a) every golden set, within 1e-5, with z = the portable latent
        assert done.stdout.count("z = latent(seed, start) bit for bit ... ok") == 3
    # (b) the manifest's latent test vectors, truncation vectors and guard retry seeds
    lines = done.stdout.splitlines()
    assert sum(x.startswith("latent test vector") and x.endswith("bit for bit ok")
               for x in lines) == 4
    assert sum(x.startswith("truncation test vector") and x.endswith("bit for bit ok")
               for x in lines) == 2
    assert sum(x.startswith("retry seed test vector") and x.endswith(": ok") for x in lines) == 3
    g = Generator.load(tiny_bundle)
    got = json.loads(out.read_text())["pairs"]
    assert [(p["label"], int(p["seed"])) for p in got] == PAIRS
    for p in got:  # (c) the same bytes as Python
        want = g.generate([p["label"]], seed=int(p["seed"]), variant=variant)[0]
        assert bytes.fromhex(p["u8_hex"]) == want.tobytes(), p["label"]


def test_generate_writes_the_python_bytes_as_a_pgm(node_example: Path, tiny_bundle: Path,
                                                   tmp_path: Path) -> None:
    g = Generator.load(tiny_bundle)
    for label, seed in [(7, 42), (0, 2**64 - 1)]:
        pgm = tmp_path / f"{label}.pgm"
        done = _node(node_example, "generate.mjs", tiny_bundle, label, seed, pgm)
        assert done.returncode == 0, done.stderr
        want = g.generate([label], seed=seed)[0]
        assert pgm.read_bytes() == PGM_HEADER + want.tobytes()
    done = _node(node_example, "generate.mjs", tiny_bundle, 3, 5, tmp_path / "t.pgm",
                 "--truncation", "0.5")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "t.pgm").read_bytes()[len(PGM_HEADER):] \
        == g.generate([3], seed=5, truncation=0.5).tobytes()


@pytest.mark.parametrize("args,message", [
    ((12, 42), "labels[0] = 12 is out of range"), ((7, -1), "seed"), ((7, 2**64), "outside"),
    (("x", 1), "LABEL"),
])
def test_generate_refuses_bad_arguments(node_example: Path, tiny_bundle: Path, tmp_path: Path,
                                        args: tuple, message: str) -> None:
    done = _node(node_example, "generate.mjs", tiny_bundle, *args, tmp_path / "x.pgm")
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "x.pgm").exists()


def test_node_refuses_a_changed_bundle(node_example: Path, tiny_bundle: Path,
                                       tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    data = bytearray((root / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / "model.onnx").write_bytes(bytes(data))
    done = _node(node_example, "generate.mjs", root, 7, 42, tmp_path / "x.pgm")
    assert done.returncode == 1 and "sha256" in done.stderr, done.stderr
    shutil.copy(tiny_bundle / "model.onnx", root / "model.onnx")
    original = (root / "manifest.json").read_text()
    for path, value, message in [(("postprocess", "rule"), "u8 = x", "post-processing rule"),
                                 (("latent", "name"), "other/1", "latent"),
                                 (("variants", "fp32", "file"), "../model.onnx", "leaves")]:
        manifest = json.loads(original)
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        (root / "manifest.json").write_text(json.dumps(manifest))
        done = _node(node_example, "generate.mjs", root, 7, 42, tmp_path / "x.pgm")
        assert done.returncode == 1 and message in done.stderr, (message, done.stderr)


def test_golden_check_reads_unpacked_tensors_and_fails_on_a_wrong_golden(
        node_example: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    d = "golden/test_data_set_1"
    # the same values as float_data / int64_data instead of raw_data: still passes
    for name, kind in (("input_0.pb", onnx.TensorProto.FLOAT),
                       ("input_1.pb", onnx.TensorProto.INT64),
                       ("output_0.pb", onnx.TensorProto.FLOAT)):
        a = read_tensor(root / d / name)
        t = onnx.helper.make_tensor(name.split(".")[0], kind, a.shape, a.ravel().tolist())
        (root / d / name).write_bytes(t.SerializeToString())
        _rehash(root, f"{d}/{name}")
    done = _node(node_example, "check_goldens.mjs", root, "--pairs", "7:42")
    assert done.returncode == 0, done.stdout + done.stderr
    # an expected image off by 1e-3: the golden check fails
    out = read_tensor(root / d / "output_0.pb")
    bad = onnx.numpy_helper.from_array((out + np.float32(1e-3)).astype(np.float32), "image")
    (root / d / "output_0.pb").write_bytes(bad.SerializeToString())
    _rehash(root, f"{d}/output_0.pb")
    done = _node(node_example, "check_goldens.mjs", root, "--pairs", "7:42")
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines()}
    assert done.returncode == 1 and "CHECKS FAILED" in done.stdout
    assert lines[f"golden {d}"].endswith("FAIL"), done.stdout
    assert lines["golden golden/test_data_set_0"].endswith("ok"), done.stdout
