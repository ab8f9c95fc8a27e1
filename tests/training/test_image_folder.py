"""Image folders as training data: labels from sorted folder names, the deterministic split, the
shape from the data, and clear errors naming the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgegen.core.errors import DataError
from edgegen.training.data import HELDOUT_FRACTION, load_mnist, to_tensor_range


def test_digits_folder_loads_with_labels_names_and_split(digits_dir: Path) -> None:
    data = load_mnist(digits_dir)
    assert data.source == "image-folder"
    assert data.label_names == tuple(str(k) for k in range(10))
    assert data.image_shape == (1, 8, 8) and data.n_classes == 10
    assert len(data.train_labels) + len(data.heldout_labels) == 1797
    assert abs(len(data.heldout_labels) / 1797 - HELDOUT_FRACTION) < 0.01
    again = load_mnist(digits_dir)  # the same split every time
    assert np.array_equal(again.heldout_labels, data.heldout_labels)
    assert np.array_equal(again.heldout_images, data.heldout_images)
    assert set(np.unique(data.heldout_labels)) == set(range(10))
    prov = data.provenance()
    assert prov["image_shape"] == [1, 8, 8] and prov["label_names"][3] == "3"


def test_image_size_resizes(digits_dir: Path) -> None:
    data = load_mnist(digits_dir, image_size=16)
    assert data.image_shape == (1, 16, 16) and data.train_images.dtype == np.uint8
    with pytest.raises(DataError, match="--image-size must be"):
        load_mnist(digits_dir, image_size=2)


def test_rgb_folder_is_three_channels_with_sorted_names(rgb_dir: Path) -> None:
    data = load_mnist(rgb_dir)
    assert data.image_shape == (3, 8, 8)
    assert data.label_names == ("blue", "green", "red")  # sorted folder names
    x = to_tensor_range(data.train_images)
    assert x.shape[1:] == (3, 8, 8) and x.min() >= -1 and x.max() <= 1
    # the red class (label 2) is brightest in channel 0
    red = x[data.train_labels == 2]
    assert red[:, 0].max() > red[:, 2].max()


def test_idx_folder_is_unchanged(idx_dir: Path) -> None:
    data = load_mnist(idx_dir)
    assert data.source == "idx-folder" and data.image_shape == (1, 28, 28)
    assert data.train_images.shape[1:] == (28, 28) and data.n_classes == 10


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_unreadable_image_is_named(rgb_dir: Path, tmp_path: Path) -> None:
    root = _copy(rgb_dir, tmp_path / "d")
    bad = root / "green" / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"broken\.png: cannot be read as an image"):
        load_mnist(root)


def test_one_class_is_refused(rgb_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "one"
    shutil.copytree(rgb_dir / "red", root / "red")
    with pytest.raises(DataError, match=r"at least two classes; found only 'red'"):
        load_mnist(root)


def test_mixed_channels_are_refused_naming_the_file(rgb_dir: Path, tmp_path: Path) -> None:
    root = _copy(rgb_dir, tmp_path / "m")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "red" / "zz_grey.png")
    with pytest.raises(DataError, match=r"zz_grey\.png: a grayscale image, but .* is RGB"):
        load_mnist(root)


def test_mixed_sizes_need_image_size(rgb_dir: Path, tmp_path: Path) -> None:
    root = _copy(rgb_dir, tmp_path / "s")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "red" / "zz_big.png")
    with pytest.raises(DataError, match=r"zz_big\.png: 10x10 pixels.*--image-size"):
        load_mnist(root)
    assert load_mnist(root, image_size=8).image_shape == (3, 8, 8)


def test_empty_class_folder_is_refused(rgb_dir: Path, tmp_path: Path) -> None:
    root = _copy(rgb_dir, tmp_path / "e")
    (root / "purple").mkdir()
    with pytest.raises(DataError, match=r"purple.*holds no image files"):
        load_mnist(root)
