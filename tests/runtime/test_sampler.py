"""The runtime's sampler loop and Generator.generate(steps=, guidance=) on a cflow bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgegen.runtime import Generator
from edgegen.runtime.errors import RuntimeInputError
from edgegen.runtime.latent import latent
from edgegen.runtime.sampler import SamplerSpec, sample, trajectory

# The runtime loop over denoiser.onnx against model.onnx at the exported settings: what the
# Generator promises (docs/ARCHITECTURE.md), measured here on the tiny bundle.
LOOP_VS_MODEL = 1e-4


@pytest.fixture(scope="module")
def flow(tiny_cflow_bundle: Path) -> Generator:
    return Generator.load(tiny_cflow_bundle)


def test_sampler_spec_is_read_from_the_manifest(flow: Generator) -> None:
    assert flow.sampler == SamplerSpec(steps=3, guidance=2.0, null_label=10,
                                       image_shape=(1, 28, 28),
                                       denoiser=flow.bundle.sampler["denoiser"]["variants"])


def test_exported_settings_run_model_onnx_and_others_loop_over_the_denoiser(
        flow: Generator) -> None:
    labels = [0, 3, 7, 9]
    default = flow.run(labels, seed=11)
    same = flow.run(labels, seed=11, steps=3, guidance=2.0)
    assert (default.model, default.steps, default.guidance) == ("model.onnx", 3, 2.0)
    assert same.model == "model.onnx" and np.array_equal(default.images, same.images)
    other = flow.run(labels, seed=11, steps=5, guidance=1.5)
    assert (other.model, other.steps, other.guidance) == ("denoiser.onnx", 5, 1.5)
    half = flow.run(labels, seed=11, steps=2)  # guidance stays at the exported 2.0
    assert (half.steps, half.guidance) == (2, 2.0)
    int8 = flow.run(labels, seed=11, steps=2, variant="int8")
    assert int8.model == "denoiser.int8.onnx" and int8.images.shape == (4, 28, 28)


def test_the_loop_at_the_exported_settings_matches_model_onnx(flow: Generator,
                                                               tiny_cflow_bundle: Path) -> None:
    z = latent(3, 50, 784)
    y = (np.arange(50) % 10).astype(np.int64)
    unrolled = flow.generate(list(y), z=z, output="float")
    den = ort.InferenceSession(str(tiny_cflow_bundle / "denoiser.onnx"),
                               providers=["CPUExecutionProvider"])
    looped = sample(den, z, y, steps=3, guidance=2.0, null_label=10, image_shape=(1, 28, 28))
    err = float(np.abs(looped - unrolled).max())
    assert err <= LOOP_VS_MODEL, err
    states = trajectory(den, z, y, steps=3, guidance=2.0, null_label=10,
                        image_shape=(1, 28, 28), batch=7)  # chunking changes nothing
    assert len(states) == 3 and np.array_equal(np.clip(states[-1], -1, 1), looped)


def test_guidance_one_needs_one_call_per_step(flow: Generator) -> None:
    calls: list[int] = []

    class Counting:
        def __init__(self, inner: ort.InferenceSession) -> None:
            self.inner = inner

        def run(self, names, feeds):
            calls.append(len(feeds["x"]))
            return self.inner.run(names, feeds)

    den = Counting(ort.InferenceSession(str(flow.bundle.denoiser_path("fp32")),
                                        providers=["CPUExecutionProvider"]))
    z, y = latent(1, 4, 784), np.arange(4, dtype=np.int64)
    sample(den, z, y, steps=4, guidance=1.0, null_label=10, image_shape=(1, 28, 28))
    assert calls == [4] * 4
    calls.clear()
    sample(den, z, y, steps=2, guidance=3.0, null_label=10, image_shape=(1, 28, 28))
    assert calls == [8] * 2


@pytest.mark.parametrize("kwargs,message", [
    ({"steps": 0}, "steps"), ({"steps": 2.0}, "steps"), ({"steps": True}, "steps"),
    ({"steps": 10_001}, "steps"), ({"guidance": -0.5}, "guidance"),
    ({"guidance": float("inf")}, "guidance"), ({"guidance": "2"}, "guidance"),
    ({"guidance": None, "steps": "4"}, "steps"),
])
def test_bad_steps_or_guidance_are_input_errors(flow: Generator, kwargs: dict,
                                                message: str) -> None:
    with pytest.raises(RuntimeInputError, match=message):
        flow.generate([1], seed=1, **kwargs)


def test_a_family_without_a_sampler_refuses_steps_and_guidance(tiny_bundle: Path) -> None:
    g = Generator.load(tiny_bundle)
    assert g.sampler is None
    for kwargs in ({"steps": 4}, {"guidance": 2.0}):
        with pytest.raises(RuntimeInputError, match="no(ne)? .*iterative|has none"):
            g.generate([1], seed=1, **kwargs)
    assert g.run([1], seed=1).steps is None


def test_the_guard_redraws_with_the_requested_sampler(flow: Generator) -> None:
    res = flow.run([1, 2, 3], seed=5, guard=True, steps=2, guidance=1.0)
    assert (res.steps, res.guidance, res.model) == (2, 1.0, "denoiser.onnx")
    assert res.accepted is not None and res.images.shape == (3, 28, 28)
    plain = flow.generate([1, 2, 3], seed=5, steps=2, guidance=1.0)
    first = res.attempts == 0  # accepted at once: the plain draw of the same sampler
    assert np.array_equal(plain[first], res.images[first])
