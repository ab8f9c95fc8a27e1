"""examples/node and examples/web, unchanged, on a cflow bundle: model.onnx keeps the contract
(the sampler is unrolled inside it), so both pass its goldens and reproduce Python's bytes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edgegen.runtime import Generator

PAIRS = [(0, 0), (3, 2**64 - 1), (7, 42), (8, 2**53 + 1), (9, 31337)]


def _pairs() -> str:
    return ",".join(f"{label}:{seed}" for label, seed in PAIRS)


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_node_passes_the_cflow_goldens_and_gives_python_bytes(
        node_example: Path, tiny_cflow_bundle: Path, tmp_path: Path, variant: str) -> None:
    out = tmp_path / "pairs.json"
    done = subprocess.run(["node", "check_goldens.mjs", str(tiny_cflow_bundle), "--variant",
                           variant, "--pairs", _pairs(), "--json", str(out)],
                          cwd=node_example, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    if variant == "fp32":
        assert done.stdout.count("z = latent(seed, start) bit for bit ... ok") == 2
    g = Generator.load(tiny_cflow_bundle)
    for p in json.loads(out.read_text())["pairs"]:
        want = g.generate([p["label"]], seed=int(p["seed"]), variant=variant)[0]
        assert bytes.fromhex(p["u8_hex"]) == want.tobytes(), (variant, p["label"])


def test_browser_canvas_shows_python_bytes_for_cflow(
        web_example: Path, chromium: str, tiny_cflow_bundle: Path, tmp_path: Path,
        run_page: Callable[..., dict]) -> None:
    report = run_page(chromium, tiny_cflow_bundle, tmp_path, pairs=_pairs())
    assert "error" not in report, report
    g = Generator.load(tiny_cflow_bundle)
    assert [(r["label"], int(r["seed"])) for r in report["results"]] == PAIRS
    for r in report["results"]:
        want = g.generate([r["label"]], seed=int(r["seed"]))
        assert bytes.fromhex(r["canvas_hex"]) == want.tobytes(), r["label"]
