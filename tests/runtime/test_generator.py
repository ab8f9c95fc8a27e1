"""edgegen.runtime against a real exported bundle: trust, input handling, determinism, batching."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgegen.export.golden import load_golden_set
from edgegen.runtime import Generator
from edgegen.runtime.errors import BundleError, ProviderError, RuntimeInputError
from edgegen.runtime.guard import guarded_generate, guarded_generate_seeds, softmax
from edgegen.runtime.latent import latent, retry_seed, truncate
from edgegen.runtime.postprocess import to_uint8

PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def gen(tiny_bundle: Path) -> Generator:
    return Generator.load(tiny_bundle)


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def _edit_manifest(root: Path, edit) -> None:
    path = root / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def test_import_loads_neither_torch_nor_onnx() -> None:
    code = ("import sys, edgegen.runtime; heavy = sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'onnx', 'torchvision')); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


# -- what a sample is ------------------------------------------------------------------------
def test_images_are_the_model_output_through_the_uint8_rule(gen: Generator,
                                                           tiny_bundle: Path) -> None:
    labels = [3, 1, 4, 1, 5, 9, 2, 6]
    z = latent(42, len(labels), gen.z_dim)  # sample i = row i of the seed's stream
    ref = _session(tiny_bundle / "model.onnx").run(
        ["image"], {"z": z, "label": np.array(labels, np.int64)})[0]
    floats = gen.generate(labels, seed=42, output="float")
    assert floats.dtype == np.float32 and floats.shape == (8, 1, 28, 28)
    assert np.array_equal(floats, ref)
    images = gen.generate(labels, seed=42)
    assert images.dtype == np.uint8 and images.shape == (8, 28, 28)
    assert np.array_equal(images, to_uint8(ref[:, 0]))
    assert images.std() > 0


def test_caller_given_latents_reproduce_the_goldens(gen: Generator, tiny_bundle: Path) -> None:
    for d in sorted((tiny_bundle / "golden").glob("test_data_set_*")):
        (z, label), expected = load_golden_set(d)
        got = gen.generate(label, z=z, output="float")
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_a_sample_is_its_row_or_its_own_seed_whatever_the_request(gen: Generator) -> None:
    a = gen.run([3, 1, 4], seed=7, output="float")
    b = gen.run([9, 1], seed=7, output="float")
    np.testing.assert_allclose(a.images[1], b.images[1], atol=1e-5, rtol=0)  # both row 1
    assert a.seeds.tolist() == [7, 7, 7] and a.rows.tolist() == [0, 1, 2]
    many = gen.run([2, 5, 8], seeds=[11, 12, 2**64 - 1], output="float")
    assert many.seeds.tolist() == [11, 12, 2**64 - 1] and many.rows.tolist() == [0, 0, 0]
    for i, (label, seed) in enumerate(zip([2, 5, 8], [11, 12, 2**64 - 1])):
        alone = gen.generate([label], seed=seed, output="float")[0]
        np.testing.assert_allclose(many.images[i], alone, atol=1e-5, rtol=0)
    assert not np.allclose(many.images[0], many.images[1])


def test_truncation_scales_the_latent(gen: Generator) -> None:
    z = truncate(latent(5, 4, gen.z_dim), 0.5)
    assert np.array_equal(gen.generate([0, 1, 2, 3], seed=5, truncation=0.5),
                          gen.generate([0, 1, 2, 3], z=z))
    assert not np.array_equal(gen.generate([0], seed=5, truncation=0.5),
                              gen.generate([0], seed=5))
    assert np.array_equal(gen.generate([0], seed=5, truncation=1.0), gen.generate([0], seed=5))


def test_every_variant_runs_and_stays_near_fp32(gen: Generator) -> None:
    labels = list(range(10)) * 2
    ref = gen.generate(labels, seed=1, output="float")
    for variant in gen.variants:
        out = gen.generate(labels, seed=1, variant=variant, output="float")
        assert float(np.abs(out - ref).mean()) < 0.05, variant
    assert gen.variants == ["fp32", "fp16", "int8"]


# -- the guard -------------------------------------------------------------------------------
def test_guard_replays_edgegen_guard_and_records_statistics(tiny_bundle: Path) -> None:
    g = Generator.load(tiny_bundle)
    labels = list(range(10)) * 3
    run = g.run(labels, seed=3, guard=True, output="float")
    # the same algorithm over raw ONNX Runtime sessions
    model, ev = _session(tiny_bundle / "model.onnx"), _session(tiny_bundle / "evaluator.onnx")
    ref = guarded_generate(lambda z, y: model.run(["image"], {"z": z, "label": y})[0],
                           lambda x: softmax(ev.run(None, {"image": x})[0]),
                           np.array(labels), 3, g.z_dim)
    np.testing.assert_allclose(run.images, ref.images, atol=1e-5, rtol=0)
    assert np.array_equal(run.accepted, ref.accepted)
    assert np.array_equal(run.attempts, ref.attempts)
    assert np.array_equal(run.predicted, ref.predicted)
    accepted = (run.predicted == np.array(labels)) & (run.prob >= 0.5)
    assert np.array_equal(run.accepted, accepted)
    # each returned sample names the stream and row it came from
    for i in range(len(labels)):
        assert run.seeds[i] == retry_seed(3, int(run.attempts[i])) and run.rows[i] == i
    stats = g.guard_stats
    assert (stats.requests, stats.samples) == (1, 30)
    assert stats.fired == int((run.attempts > 0).sum())
    assert stats.rejected == int((~run.accepted).sum())
    assert stats.redraws == int(run.attempts.sum())
    g.generate([7], seeds=[3], guard=True, variant="int8")
    assert g.guard_stats.requests == 2 and g.guard_stats.samples == 31


def test_guard_with_seeds_redraws_each_sample_from_its_own_stream(gen: Generator) -> None:
    seeds = list(range(100, 120))
    run = gen.run([8] * 20, seeds=seeds, guard=True)
    for i in range(20):
        again = gen.run([8], seed=seeds[i], guard=True)
        assert again.attempts[0] == run.attempts[i] and again.seeds[0] == run.seeds[i]
        assert run.seeds[i] == retry_seed(seeds[i], int(run.attempts[i])) and run.rows[i] == 0


def test_per_sample_guard_follows_each_seeds_retry_stream() -> None:
    """``guarded_generate_seeds`` over a recording stand-in model (about half the draws accepted):
    the tiny bundle's generator is rejected every time, so mixed outcomes are checked here."""
    def record(z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        images = np.zeros((len(labels), 1, 28, 28), np.float32)
        images[:, 0, 0, 0], images[:, 0, 0, 1] = z[:, 0], labels
        return images

    def judge(images: np.ndarray) -> np.ndarray:
        asked = images[:, 0, 0, 1].astype(np.int64)
        return np.eye(10)[np.where(images[:, 0, 0, 0] > 0, asked, (asked + 1) % 10)]

    seeds = list(range(500, 560))
    labels = np.arange(60) % 10
    res = guarded_generate_seeds(record, judge, labels, seeds, 6)
    assert 0 < res.fired < 60 and set(res.attempts.tolist()) >= {0, 1, 2}
    for i, s in enumerate(seeds):
        z = latent(retry_seed(s, int(res.attempts[i])), 1, 6)[0, 0]
        assert res.images[i, 0, 0, 0] == z and res.accepted[i] == (z > 0)
        alone = guarded_generate(record, judge, labels[i:i + 1], s, 6)
        assert alone.attempts[0] == res.attempts[i]


def test_guard_needs_an_evaluator(tiny_bundle: Path, tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    (root / "evaluator.onnx").unlink()

    def drop(m: dict) -> None:
        m.pop("evaluator")
        m["files"].pop("evaluator.onnx")

    _edit_manifest(root, drop)
    g = Generator.load(root)
    assert not g.has_evaluator and g.generate([1], seed=1).shape == (1, 28, 28)
    with pytest.raises(RuntimeInputError, match="evaluator"):
        g.generate([1], seed=1, guard=True)


# -- trust ---------------------------------------------------------------------------------------
def test_load_refuses_changed_files_escaping_paths_and_other_contracts(
        tiny_bundle: Path, tmp_path: Path) -> None:
    root = _copy(tiny_bundle, tmp_path)
    data = bytearray((root / "model.int8.onnx").read_bytes())
    data[-10] ^= 0xFF
    (root / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        Generator.load(root)
    shutil.copy(tiny_bundle / "model.int8.onnx", root / "model.int8.onnx")
    Generator.load(root)
    edits = {
        "leaves the bundle": lambda m: m["variants"]["fp16"].update(file="../model.onnx"),
        "schema": lambda m: m.update(schema="edgegen.bundle/2"),
        "post-processing rule": lambda m: m["postprocess"].update(rule="u8 = round(x * 255)"),
        "latent": lambda m: m["latent"].update(name="xorshift/1"),
    }
    original = (root / "manifest.json").read_text()
    for message, edit in edits.items():
        _edit_manifest(root, edit)
        with pytest.raises(BundleError, match=message):
            Generator.load(root)
        (root / "manifest.json").write_text(original)


def test_providers_are_explicit(tiny_bundle: Path) -> None:
    with pytest.raises(ProviderError, match="unknown provider"):
        Generator.load(tiny_bundle, provider="gpu-please")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ProviderError, match="not available"):
            Generator.load(tiny_bundle, provider="cuda")
    assert Generator.load(tiny_bundle, provider="cpu").spec.name == "cpu"


# -- input handling (property tests) -----------------------------------------------------------
@PROPERTY
@given(labels=st.lists(st.integers(-3, 13), max_size=12), seed=st.integers(-3, 2**64 + 3))
def test_labels_and_seeds_are_checked(gen: Generator, labels: list[int], seed: int) -> None:
    valid = bool(labels) and all(0 <= v < 10 for v in labels) and 0 <= seed < 2**64
    if valid:
        images = gen.generate(labels, seed=seed)
        assert images.shape == (len(labels), 28, 28) and images.dtype == np.uint8
    else:
        with pytest.raises(RuntimeInputError):
            gen.generate(labels, seed=seed)


BAD_LABELS = st.one_of(
    st.none(), st.booleans(), st.floats(), st.text(), st.binary(), st.integers(0, 9),
    st.lists(st.floats(), min_size=1), st.lists(st.booleans(), min_size=1),
    st.lists(st.text(), min_size=1), st.lists(st.lists(st.integers(0, 9), min_size=1), min_size=1),
    st.lists(st.none(), min_size=1), st.dictionaries(st.integers(0, 9), st.integers(0, 9)),
    st.sets(st.integers(0, 9), min_size=1), st.just([]),
    st.lists(st.integers(0, 9), min_size=1).map(lambda v: [*v, 3.0]),
    arrays(np.float32, st.integers(1, 4)), arrays(np.int64, (2, 2), elements=st.integers(0, 9)),
    arrays(np.bool_, st.integers(1, 4)),
)


@PROPERTY
@given(labels=BAD_LABELS)
def test_wrong_label_types_raise_runtime_input_error(gen: Generator, labels: object) -> None:
    with pytest.raises(RuntimeInputError):
        gen.generate(labels, seed=1)


@PROPERTY
@given(psi=st.one_of(st.none(), st.floats(), st.integers(-2, 6), st.booleans(), st.text(),
                     st.floats(width=32).map(np.float32)))
def test_truncation_is_checked(gen: Generator, psi: object) -> None:
    number = isinstance(psi, (int, float, np.floating)) and not isinstance(psi, bool)
    if psi is None or (number and math.isfinite(float(psi)) and 0 < float(psi) <= 4):
        assert gen.generate([4], seed=2, truncation=psi).shape == (1, 28, 28)
    else:
        with pytest.raises(RuntimeInputError):
            gen.generate([4], seed=2, truncation=psi)


@PROPERTY
@given(z=arrays(np.float64, (2, 100), elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_caller_latents_must_be_finite_float32(gen: Generator, z: np.ndarray) -> None:
    with np.errstate(over="ignore"):
        finite = bool(np.isfinite(z.astype(np.float32)).all())
    if finite:
        assert gen.generate([1, 2], z=z).shape == (2, 28, 28)
    else:
        with pytest.raises(RuntimeInputError, match="finite"):
            gen.generate([1, 2], z=z)


@PROPERTY
@given(seeds=st.one_of(st.lists(st.integers(-2, 2**64 + 1), min_size=0, max_size=5),
                       st.lists(st.one_of(st.floats(), st.text(), st.booleans()), min_size=1,
                                max_size=3), st.text(), st.integers()))
def test_per_sample_seeds_are_checked(gen: Generator, seeds: object) -> None:
    ok = (isinstance(seeds, list) and len(seeds) == 3
          and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**64
                  for s in seeds))
    if ok:
        assert gen.generate([0, 1, 2], seeds=seeds).shape == (3, 28, 28)
    else:
        with pytest.raises(RuntimeInputError):
            gen.generate([0, 1, 2], seeds=seeds)


@pytest.mark.parametrize("kwargs,message", [
    ({"seed": 1, "variant": "int4"}, "variant"), ({"seed": 1, "variant": 32}, "variant"),
    ({"seed": 1, "output": "png"}, "output"), ({"seed": 1, "guard": "yes"}, "guard"),
    ({"seed": 1, "guard": 1}, "guard"), ({}, "exactly one"),
    ({"seed": 1, "seeds": [1]}, "exactly one"),
    ({"seed": 1, "z": np.zeros((1, 100), np.float32)}, "exactly one"),
    ({"seed": 1.0}, "integer"), ({"seed": "42"}, "integer"), ({"seed": np.float64(3)}, "integer"),
    ({"seed": True}, "integer"), ({"seed": 2**64}, "2\\*\\*64"), ({"seed": -1}, "2\\*\\*64"),
])
def test_other_bad_arguments(gen: Generator, kwargs: dict, message: str) -> None:
    with pytest.raises(RuntimeInputError, match=message):
        gen.generate([7], **kwargs)


def test_guard_and_caller_latents_and_wrong_shapes(gen: Generator) -> None:
    z = np.zeros((2, 100), np.float32)
    with pytest.raises(RuntimeInputError, match="guard"):
        gen.generate([1, 2], z=z, guard=True)
    with pytest.raises(RuntimeInputError, match="shape"):
        gen.generate([1, 2, 3], z=z)
    with pytest.raises(RuntimeInputError, match="float"):
        gen.generate([1, 2], z=z.astype(np.int32))
    with pytest.raises(RuntimeInputError, match="one seed per label"):
        gen.generate([1, 2], seeds=[5])
    with pytest.raises(RuntimeInputError, match="at most"):
        gen.generate([1] * 70_000, seed=1)
    with pytest.raises(RuntimeInputError, match="batch_size"):
        Generator(gen.bundle, gen.spec, batch_size=0)
    assert gen.generate(np.array([1, 2], np.uint8), seed=3).shape == (2, 28, 28)
    assert gen.generate((np.int64(4),), seed=np.uint64(2**63)).shape == (1, 28, 28)


# -- determinism and batching ----------------------------------------------------------------
def test_same_bytes_across_calls_and_threads(tiny_bundle: Path) -> None:
    requests = [(list(range(10)), seed, variant) for seed in (0, 1, 2**64 - 1)
                for variant in ("fp32", "fp16", "int8")]
    shared = Generator.load(tiny_bundle)  # its fp16/int8 sessions are created under contention

    def call(i: int) -> bytes:
        labels, seed, variant = requests[i % len(requests)]
        guard = i % 4 == 0
        return shared.generate(labels, seed=seed, variant=variant, guard=guard).tobytes()

    with ThreadPoolExecutor(max_workers=8) as pool:
        threaded = list(pool.map(call, range(len(requests) * 4)))
    serial = Generator.load(tiny_bundle)
    for i, got in enumerate(threaded):
        labels, seed, variant = requests[i % len(requests)]
        want = serial.generate(labels, seed=seed, variant=variant, guard=i % 4 == 0).tobytes()
        assert got == want, (i, seed, variant)
        assert serial.generate(labels, seed=seed, variant=variant, guard=i % 4 == 0).tobytes() \
            == want


def test_batching_does_not_change_a_sample(tiny_bundle: Path, record_property) -> None:
    """Measure how often a sample's uint8 bytes differ between batch sizes 1, 7, 64 and 256.

    The latent is the same by construction; what can differ is ONNX Runtime's float arithmetic
    for another batch shape, and a pixel then moves only if it straddles a rounding boundary of
    the uint8 rule. The measured rates are printed (``pytest -rP``) and recorded as properties.
    """
    labels = [i % 10 for i in range(256)]
    runs = {bs: Generator.load(tiny_bundle, batch_size=bs).generate(labels, seed=2024,
                                                                    output="float")
            for bs in (1, 7, 64, 256)}
    ref = runs[64]
    ref_u8 = to_uint8(ref[:, 0])
    lines = []
    for bs, floats in runs.items():
        np.testing.assert_allclose(floats, ref, atol=1e-5, rtol=0)
        u8 = to_uint8(floats[:, 0])
        differ = u8 != ref_u8
        rate, samples = float(differ.mean()), int(differ.any(axis=(1, 2)).sum())
        record_property(f"uint8_pixel_diff_rate_batch{bs}_vs_64", rate)
        record_property(f"samples_with_uint8_diff_batch{bs}_vs_64", samples)
        lines.append(f"batch {bs:>3} vs 64: {int(differ.sum())} of {differ.size} pixels "
                     f"({rate:.2e}) in {samples} of {len(labels)} samples differ")
        # a difference is only ever a rounding-boundary straddle: one level, at x.5 in the rule
        assert int(np.abs(u8.astype(int) - ref_u8).max(initial=0)) <= 1
        scaled = (ref[:, 0].astype(np.float64) + 1.0) * 127.5 + 0.5
        assert np.all(np.abs(scaled[differ] - np.round(scaled[differ])) < 1e-5 * 127.5 + 1e-9)
        assert rate <= 1e-3
    print("\n" + "\n".join(lines))
