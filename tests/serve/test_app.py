"""The routes, the v2 protocol and the batcher without Ray: ``Endpoints`` over ``run_batch``."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgegen.runtime import Generator
from edgegen.runtime.bundle import load_bundle
from edgegen.runtime.latent import latent
from edgegen.serve.app import Endpoints
from edgegen.serve.batching import run_batch
from edgegen.serve.protocol import (
    HEADER_LENGTH,
    ModelInfo,
    ProtocolError,
    Work,
    parse_infer,
)


@pytest.fixture(scope="module")
def gen(tiny_bundle: Path) -> Generator:
    return Generator.load(tiny_bundle)


def _model(tiny_bundle: Path, guard: bool = False, rows: int = 16) -> ModelInfo:
    return ModelInfo.from_bundle(load_bundle(tiny_bundle), name="tiny", variant="fp32",
                                 guard=guard, max_batch=8, max_request_rows=rows)


def _endpoints(tiny_bundle: Path, gen: Generator, guard: bool = False) -> Endpoints:
    async def infer(work: Work):
        return run_batch(gen, [work], guard=guard)[0]

    return Endpoints(_model(tiny_bundle, guard), infer)


def _call(ep: Endpoints, method: str, path: str, body: object = None,
          headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else (b"" if body is None else
                                               json.dumps(body).encode())
    path, _, query = path.partition("?")
    return asyncio.run(ep.handle(method, path, query, headers or {}, raw))


def test_generate_and_infer_match_the_runtime(tiny_bundle: Path, gen: Generator) -> None:
    ep = _endpoints(tiny_bundle, gen)
    reply = _call(ep, "GET", "/generate?label=7&seed=42")
    assert reply.status == 200 and reply.content_type == "image/png"
    want = gen.generate([7], seed=42)[0]
    assert np.array_equal(np.array(Image.open(io.BytesIO(reply.body))), want)
    reply = _call(ep, "POST", "/v2/models/tiny/infer", {
        "inputs": [{"name": "label", "shape": [2], "datatype": "INT64", "data": [[3], [1]]}],
        "parameters": {"seed": "18446744073709551615", "truncation": 0.7},
        "outputs": [{"name": "image", "parameters": {"datatype": "UINT8"}}]})
    out = json.loads(reply.body)["outputs"][0]
    assert np.array_equal(np.array(out["data"], np.uint8).reshape(2, 28, 28),
                          gen.generate([3, 1], seed=2**64 - 1, truncation=0.7))
    assert ep.inflight == 0 and ep.served == 2


def test_binary_tensor_data_both_ways(tiny_bundle: Path, gen: Generator) -> None:
    ep = _endpoints(tiny_bundle, gen)
    seeds = np.array([11, 12], "<u8")
    header = json.dumps({"inputs": [
        {"name": "label", "shape": [2], "datatype": "INT64",
         "parameters": {"binary_data_size": 16}},
        {"name": "seed", "shape": [2], "datatype": "UINT64",
         "parameters": {"binary_data_size": 16}}],
        "parameters": {"binary_data_output": True}}).encode()
    body = header + np.array([5, 6], "<i8").tobytes() + seeds.tobytes()
    reply = _call(ep, "POST", "/v2/models/tiny/versions/1/infer", body,
                  {HEADER_LENGTH: str(len(header))})
    assert reply.status == 200 and reply.content_type == "application/octet-stream"
    n = int(reply.headers[HEADER_LENGTH])
    image = np.frombuffer(reply.body[n:], "<f4").reshape(2, 1, 28, 28)
    assert np.array_equal(image, gen.generate([5, 6], seeds=[11, 12], output="float"))
    bad = _call(ep, "POST", "/v2/models/tiny/infer", body, {HEADER_LENGTH: "999999"})
    assert bad.status == 400 and b"Inference-Header-Content-Length".lower() in bad.body.lower()


@pytest.mark.parametrize("doc,match", [
    ([1, 2], "JSON list; expected an object"),
    ({"inputs": [], "parameters": {"seed": 1}}, "non-empty list"),
    ({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]},
     "has name 'x'"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1.5]}],
      "parameters": {"seed": 1}}, "not an integer"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [True]}],
      "parameters": {"seed": 1}}, "not an integer"),
    ({"inputs": [{"name": "label", "shape": [-1], "datatype": "INT64", "data": [1]}],
      "parameters": {"seed": 1}}, "non-negative integers"),
    ({"inputs": [{"name": "label", "shape": [17], "datatype": "INT64", "data": [1] * 17}],
      "parameters": {"seed": 1}}, "at most 16 per request"),
    ({"inputs": [{"name": "label", "shape": [1, 2], "datatype": "INT64", "data": [1, 2]}],
      "parameters": {"seed": 1}}, "expected [n] or [n, 1]"),
    ({"inputs": [{"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 2]},
                 {"name": "seed", "shape": [1], "datatype": "UINT64", "data": [1]}]},
     "has 1 rows and 'label' has 2"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1]},
                 {"name": "z", "shape": [1, 100], "datatype": "FP32", "data": [1e39] * 100}]},
     "finite"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}],
      "parameters": {"seed": 1, "truncation": 9}}, "truncation must be"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}],
      "parameters": {"seed": 1, "psi": 1}}, "unknown request parameter 'psi'"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}],
      "parameters": {"seed": 1}, "outputs": [{"name": "logits"}]}, "unknown output"),
    ({"inputs": [{"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}],
      "parameters": {"seed": 1},
      "outputs": [{"name": "image", "parameters": {"datatype": "FP16"}}]}, "FP32 (in"),
])
def test_every_bad_request_says_what_is_wrong(tiny_bundle: Path, gen: Generator, doc: object,
                                              match: str) -> None:
    reply = _call(_endpoints(tiny_bundle, gen), "POST", "/v2/models/tiny/infer", doc)
    assert reply.status == 400, reply
    assert match in json.loads(reply.body)["error"]


def test_routes_methods_and_draining(tiny_bundle: Path, gen: Generator) -> None:
    ep = _endpoints(tiny_bundle, gen)
    assert _call(ep, "GET", "/nowhere").status == 404
    assert _call(ep, "GET", "/v2/models/tiny/versions/2").status == 404
    assert _call(ep, "POST", "/generate?label=1&seed=1").status == 405
    assert _call(ep, "GET", "/generate?label=1&seed=1&label=2").status == 400
    meta = json.loads(_call(ep, "GET", "/v2/models/tiny/").body)
    assert meta["edgegen"]["seed"]["input"]["datatype"] == "UINT64"
    ep.draining = True
    for method, path in (("GET", "/v2/health/ready"), ("GET", "/generate?label=1&seed=1"),
                         ("POST", "/v2/models/tiny/infer"), ("GET", "/v2/models/tiny/ready")):
        reply = _call(ep, method, path, {})
        assert reply.status == 503 and reply.headers["retry-after"] == "1"
    assert _call(ep, "GET", "/v2/health/live").status == 200


def test_guarded_server_refuses_z_and_guards_seeds(tiny_bundle: Path, gen: Generator) -> None:
    ep = _endpoints(tiny_bundle, gen, guard=True)
    reply = _call(ep, "POST", "/v2/models/tiny/infer", {"inputs": [
        {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "z", "shape": [1, 100], "datatype": "FP32", "data": [0.0] * 100}]})
    assert reply.status == 400 and "--guard" in json.loads(reply.body)["error"]
    reply = _call(ep, "GET", "/generate?label=4&seed=3&format=pgm")
    want = gen.run([4], seed=3, guard=True)
    assert reply.body.endswith(want.images[0].tobytes())
    assert reply.headers["x-edgegen-redraws"] == str(int(want.attempts[0]))


def test_one_batch_of_mixed_requests_equals_each_alone(tiny_bundle: Path, gen: Generator
                                                      ) -> None:
    """z, a seed parameter and seed tensors, with and without truncation, in one batch."""
    works = [Work(labels=np.array([1, 2]), seed=7),
             Work(labels=np.array([3]), z=latent(8, 1, gen.z_dim)),
             Work(labels=np.array([4, 5, 6]), seeds=np.array([1, 2, 3], np.uint64),
                  truncation=0.5),
             Work(labels=np.array([0]), seeds=np.array([2**64 - 1], np.uint64))]
    done = run_batch(gen, works)
    alone = [gen.generate([1, 2], seed=7, output="float"),
             gen.generate([3], z=latent(8, 1, gen.z_dim), output="float"),
             gen.generate([4, 5, 6], seeds=[1, 2, 3], truncation=0.5, output="float"),
             gen.generate([0], seeds=[2**64 - 1], output="float")]
    for d, a in zip(done, alone):
        np.testing.assert_allclose(d.images, a, atol=1e-6, rtol=0)
    guarded = run_batch(gen, [works[0], works[2], works[3]], guard=True)
    want = [gen.run([1, 2], seed=7, guard=True, output="float"),
            gen.run([4, 5, 6], seeds=[1, 2, 3], truncation=0.5, guard=True, output="float"),
            gen.run([0], seeds=[2**64 - 1], guard=True, output="float")]
    for d, w in zip(guarded, want):
        np.testing.assert_allclose(d.images, w.images, atol=1e-6, rtol=0)
        assert np.array_equal(d.attempts, w.attempts)


def test_parse_infer_keeps_integer_seeds_exact(tiny_bundle: Path) -> None:
    req = parse_infer(json.dumps({"inputs": [
        {"name": "label", "shape": [1], "datatype": "INT64", "data": [9]},
        {"name": "seed", "shape": [1], "datatype": "UINT64", "data": [2**64 - 1]}]}).encode(),
        {}, _model(tiny_bundle))
    assert req.work.seeds is not None and int(req.work.seeds[0]) == 2**64 - 1
    with pytest.raises(ProtocolError, match="negative"):
        parse_infer(json.dumps({"inputs": [
            {"name": "label", "shape": [1], "datatype": "INT64", "data": [9]},
            {"name": "seed", "shape": [1], "datatype": "INT64", "data": [-3]}]}).encode(),
            {}, _model(tiny_bundle))


def test_batcher_batches_what_queues_and_sheds_beyond_capacity(tiny_bundle: Path,
                                                               gen: Generator) -> None:
    """The local engine's batcher over the real run_batch: 12 requests sent together come back
    in order with the runtime's images, in fewer batches than requests; one more than its
    capacity is refused with a 503 at once, and the guarded route's answer keeps its redraws."""
    from edgegen.serve.batcher import Batcher, Overloaded

    calls: list[int] = []

    def run(works: list[Work]):
        calls.append(len(works))
        return run_batch(gen, works)

    async def burst(batcher: Batcher, n: int):
        return await asyncio.gather(*(batcher(Work(labels=np.array([i % 10]), seed=i))
                                      for i in range(n)), return_exceptions=True)

    done = asyncio.run(burst(Batcher(run, max_batch=8, max_delay_ms=0.0, capacity=64), 12))
    for i, d in enumerate(done):
        np.testing.assert_allclose(d.images, gen.generate([i % 10], seed=i, output="float"),
                                   atol=1e-6, rtol=0)
    assert sum(calls) == 12 and len(calls) < 12 and max(calls) <= 8, calls
    calls.clear()
    done = asyncio.run(burst(Batcher(run, max_batch=4, max_delay_ms=5.0, capacity=6), 9))
    refused = [d for d in done if isinstance(d, Overloaded)]
    assert len(refused) == 3 and all(e.status == 503 for e in refused)
    assert sum(calls) == 6 and max(calls) == 4, calls  # waited for a full batch first


def test_sampler_parameters_are_checked_against_the_allowed_set(tiny_bundle: Path,
                                                                tiny_cflow_bundle: Path
                                                                ) -> None:
    cdcgan = _model(tiny_bundle)
    label = {"name": "label", "shape": [1], "datatype": "INT64", "data": [1]}
    with pytest.raises(ProtocolError, match="draws an image in one call"):
        parse_infer(json.dumps({"inputs": [label], "parameters": {"seed": 1, "steps": 4}})
                    .encode(), {}, cdcgan)
    cflow = ModelInfo.from_bundle(load_bundle(tiny_cflow_bundle), name="c", variant="fp32",
                                  guard=False, max_batch=8, max_request_rows=4)
    assert cflow.exported == (3, 2.0) and cflow.steps == (1, 2, 3, 4, 8, 16, 32)
    assert cflow.guidance == (1.0, 2.0)

    def sampler(params: dict) -> object:
        return parse_infer(json.dumps({"inputs": [label], "parameters": {"seed": 1, **params}})
                           .encode(), {}, cflow).work.sampler

    assert sampler({}) is None and sampler({"steps": 3, "guidance": 2}) is None  # model.onnx
    assert sampler({"steps": "8"}) == (8, 2.0) and sampler({"guidance": 1}) == (3, 1.0)
    with pytest.raises(ProtocolError, match="allowed steps: 1, 2, 3, 4, 8, 16, 32"):
        sampler({"steps": 5})
    with pytest.raises(ProtocolError, match="allowed guidance: 1, 2"):
        sampler({"guidance": 3})
