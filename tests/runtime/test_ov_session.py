"""Provider ``openvino``: the OpenVINO runtime behind the InferenceSession subset edgegen uses,
through the one provider mechanism (runtime.providers), with verify's parity checks, and a clear
refusal when openvino does not import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgegen.runtime.latent import latent
from edgegen.runtime.providers import ProviderSpec, make_session, node_placement

ROOT = Path(__file__).resolve().parents[2]
needs_openvino = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import openvino"], capture_output=True).returncode,
    reason="openvino is not installed (pip install -e .[openvino])")


@needs_openvino
def test_session_interface_matches_onnxruntime(tiny_bundle: Path) -> None:
    path = tiny_bundle / "model.onnx"
    ov = make_session(path, ProviderSpec("openvino", intra_op_threads=1, static_batches=(3,)))
    cpu = make_session(path)
    assert ov.get_providers() == ["OpenVINO-CPU"]
    assert [(i.name, i.type) for i in ov.get_inputs()] == [(i.name, i.type)
                                                           for i in cpu.get_inputs()]
    assert [i.shape for i in ov.get_inputs()] == [[None, 100], [None]]
    assert [(o.name, o.shape) for o in ov.get_outputs()] == [("image", [None, 1, 28, 28])]
    for b in (3, 5):  # 3: the static-shape compilation, 5: the dynamic one
        feeds = {"z": latent(9, b, 100), "label": np.arange(b, dtype=np.int64) % 10}
        got = ov.run(["image"], feeds)[0]
        np.testing.assert_allclose(got, cpu.run(None, feeds)[0], atol=1e-5, rtol=1e-5)


@needs_openvino
def test_bytes_and_node_placement(tiny_bundle: Path) -> None:
    data = (tiny_bundle / "model.onnx").read_bytes()
    feeds = {"z": latent(1, 2, 100), "label": np.array([3, 4], np.int64)}
    assert make_session(data, ProviderSpec("openvino")).run(None, feeds)[0].shape == (2, 1, 28, 28)
    placed = node_placement(data, ProviderSpec("openvino"), feeds)
    assert set(placed["node_counts"]) == {"OpenVINO-CPU"} and placed["node_counts"]["OpenVINO-CPU"]
    assert {n["op"] for n in placed["nodes"].values()} >= {"Convolution"}


@needs_openvino
def test_generator_on_openvino_gives_the_cpu_images(tiny_bundle: Path) -> None:
    from edgegen.runtime import Generator

    ov = Generator.load(tiny_bundle, provider="openvino")
    cpu = Generator.load(tiny_bundle, provider="cpu")
    a = ov.generate([3, 1, 4, 1, 5], seed=42, output="float")
    b = cpu.generate([3, 1, 4, 1, 5], seed=42, output="float")
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
    assert ov.generate([7], seed=1, variant="int8").shape == (1, 28, 28)


@needs_openvino
def test_verify_passes_parity_on_openvino(tiny_bundle: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from edgegen.cli.app import app

    out = tmp_path / "verify.json"
    res = CliRunner().invoke(app, ["verify", str(tiny_bundle), "--provider", "openvino",
                                   "--json", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    checks = {(c["variant"], c["check"]): c["status"] for c in report["checks"]}
    for v in ("fp32", "fp16", "int8"):
        for check in ("golden", "pytorch@1", "pytorch@256", "labels", "determinism",
                      "placement"):
            assert checks[(v, check)] == "pass", (v, check)
    assert report["tolerances"]["openvino/fp32"] == {"atol": 1e-5, "rtol": 1e-5}
    assert {s["session_providers"][0] for s in report["sessions"]} == {"OpenVINO-CPU"}


BLOCKED = "import sys; sys.modules['openvino'] = None\n"  # `import openvino` raises ImportError


def _blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKED + code], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_refused_clearly_when_openvino_does_not_import(tiny_bundle: Path) -> None:
    runtime = _blocked(
        "from edgegen.runtime import Generator\n"
        "from edgegen.runtime.errors import ProviderError\n"
        "try:\n"
        f"    Generator.load({str(tiny_bundle)!r}, provider='openvino')\n"
        "except ProviderError as e:\n"
        "    print('REFUSED', e)\n")
    assert runtime.returncode == 0, runtime.stderr
    assert "REFUSED provider 'openvino' needs the OpenVINO runtime" in runtime.stdout
    assert "pip install -e .[openvino]" in runtime.stdout
    cli = _blocked("from edgegen.cli.app import main\n"
                   f"sys.argv = ['edgegen', 'verify', {str(tiny_bundle)!r}, '--provider', "
                   "'openvino']\nmain()\n")
    assert cli.returncode == 2, cli.stdout + cli.stderr
    assert "pip install -e .[openvino]" in cli.stdout + cli.stderr
    assert "Traceback" not in cli.stdout + cli.stderr
    bench = _blocked("from edgegen.cli.app import main\n"
                     f"sys.argv = ['edgegen', 'bench', {str(tiny_bundle)!r}, '--provider', "
                     "'openvino', '--iters', '1', '--no-matmul', '--noise-window', '0']\n"
                     "main()\n")
    assert bench.returncode == 2 and "needs the OpenVINO runtime" in bench.stdout + bench.stderr
