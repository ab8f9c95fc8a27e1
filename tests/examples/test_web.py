"""examples/web in headless Chromium: the canvas shows Python's bytes for the same (label, seed).

The page is a user of the edgegen-runtime package and runs onnxruntime-web (WebAssembly), both
from ``examples/web/node_modules``, served with the bundle by ``examples/web/serve.py`` on
127.0.0.1; with ``report=/report`` it POSTs what its canvas holds (and the evaluator's verdict)
back to the server, so no browser driver is needed (conftest's ``open_page``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edgegen.runtime import Generator
from edgegen.runtime.guard import softmax

PAIRS = [(0, 0), (1, 1), (2, 42), (3, 2**64 - 1), (4, 1234567890123), (5, 7), (6, 99),
         (7, 42), (8, 2**53 + 1), (9, 31337)]


def _pairs() -> str:
    return ",".join(f"{label}:{seed}" for label, seed in PAIRS)


def test_canvas_shows_python_bytes_and_the_evaluator_verdict(
        web_example: Path, open_page: Any, tiny_bundle: Path) -> None:
    report = open_page(tiny_bundle, pairs=_pairs())
    assert "error" not in report, report
    results = report["results"]
    assert [(r["label"], int(r["seed"])) for r in results] == PAIRS
    g = Generator.load(tiny_bundle)
    evaluator = ort.InferenceSession(str(tiny_bundle / "evaluator.onnx"),
                                     providers=["CPUExecutionProvider"])
    for r in results:
        label, seed = r["label"], int(r["seed"])
        assert bytes.fromhex(r["canvas_hex"]) == g.generate([label], seed=seed).tobytes(), r
        probs = softmax(evaluator.run(None, {"image": g.generate([label], seed=seed,
                                                                  output="float")})[0])[0]
        assert r["verdict"]["predicted"] == int(probs.argmax())
        assert abs(r["verdict"]["prob"] - float(probs[label])) < 1e-5
        assert r["verdict"]["accepted"] == bool(probs.argmax() == label and probs[label] >= 0.5)
        assert r["attempts"] == 0


def test_guarded_canvas_replays_the_python_guard(web_example: Path, open_page: Any,
                                                 tiny_bundle: Path) -> None:
    report = open_page(tiny_bundle, pairs=_pairs(), guard="1", variant="int8")
    assert "error" not in report, report
    g = Generator.load(tiny_bundle)
    for r in report["results"]:
        run = g.run([r["label"]], seed=int(r["seed"]), guard=True, variant="int8")
        assert r["guard"] is True and r["variant"] == "int8"
        assert bytes.fromhex(r["canvas_hex"]) == run.images.tobytes(), r["label"]
        assert r["attempts"] == int(run.attempts[0])
        assert r["verdict"]["accepted"] == bool(run.accepted[0])
        assert r["verdict"]["predicted"] == int(run.predicted[0])


def test_page_refuses_a_model_whose_sha256_does_not_match(
        web_example: Path, open_page: Any, tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    data = bytearray((root / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / "model.onnx").write_bytes(bytes(data))
    report = open_page(root, pairs="7:42")
    error = report.get("error", "")
    assert "model.onnx has" in error and "sha256" in error and "refusing it" in error, report


# -- issue 15: the same rules as Python (schema, listed files only, no links, the signature) ----


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_server_serves_only_regular_files_of_the_bundle_and_the_one_schema(
        tiny_bundle: Path, tmp_path: Path, web_serve: Any) -> None:
    """A browser cannot see links or list folders: serve.py refuses them for it."""
    serve = web_serve
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    (root / "README.md").unlink()
    (root / "README.md").symlink_to(outside)  # a link leaving the bundle
    (root / "golden" / "test_data_set_9").symlink_to(tmp_path)  # a linked folder
    server = serve.make_server(root, 0, lambda _: None)
    serve.serve_in_thread(server)
    port = server.server_address[1]
    try:
        status, body = _get(port, "/bundle/model.onnx")
        assert status == 200 and body == (root / "model.onnx").read_bytes()
        status, body = _get(port, "/schema/bundle.schema.json")
        schema = (Path(__file__).resolve().parents[2]
                  / "runtime/src/edgegen/runtime/bundle.schema.json")
        assert status == 200 and body == schema.read_bytes()  # the package's file itself
        for path in ("/bundle/README.md", "/bundle/golden/test_data_set_9/secret.txt",
                     "/bundle/golden/", "/bundle/", "/bundle/../../secret.txt",
                     "/bundle/%2e%2e/secret.txt", "/bundle/golden/..%2f..%2fsecret.txt",
                     "/public_key.pem"):
            status, body = _get(port, path)
            assert status in (403, 404) and b"not yours" not in body, (path, status)
    finally:
        server.shutdown()
        server.server_close()


def test_page_validates_the_manifest_with_the_one_schema(
        web_example: Path, open_page: Any, tiny_bundle: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))
    manifest = json.loads((root / "manifest.json").read_text())
    del manifest["variants"]["fp16"]["file"]  # a variant without file
    (root / "manifest.json").write_text(json.dumps(manifest))
    report = open_page(root, pairs="7:42")
    assert "$.variants.fp16: must have required property 'file'" in report.get("error", ""), \
        report


def test_page_checks_the_signature_with_a_public_key(
        web_example: Path, open_page: Any, signed_bundle: Path, signing_keys: dict[str, Path],
        tmp_path: Path, tamper_consistently: Any) -> None:
    report = open_page(signed_bundle, key_file=signing_keys["public"], pairs="7:42",
                       public_key="/public_key.pem")
    assert "error" not in report, report
    assert report["signature"]["status"] == "verified"
    g = Generator.load(signed_bundle, public_key=signing_keys["public"])
    assert bytes.fromhex(report["results"][0]["canvas_hex"]) == g.generate([7], seed=42).tobytes()
    root = Path(shutil.copytree(signed_bundle, tmp_path / "tampered"))
    tamper_consistently(root, "drop")
    report = open_page(root, key_file=signing_keys["public"], pairs="7:42",
                       public_key="/public_key.pem")
    assert "manifest.json differs from the signed file" in report.get("error", ""), report
