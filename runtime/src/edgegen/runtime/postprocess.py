"""The one post-processing rule, and torch-free image files for its output.

``u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)``: every step is a basic IEEE
operation on doubles, so numpy, JavaScript and C give the same bytes.

``encode_pgm`` and ``encode_png`` write a uint8 grey image ``[H, W]`` as a binary PGM (P5, the
format of the Node and Python examples) or as a PNG: 8-bit greyscale, no interlace, filter 0 on
every row, the zlib stream made of *stored* deflate blocks (no compression: 1 + 28 bytes a row, a
few hundred bytes more than level 9), no ancillary chunks. Stored blocks leave no choice to a
compressor, so the PNG bytes are a function of the pixels that any language reproduces, not of
the zlib build. Imports numpy, zlib (CRC-32, Adler-32) and struct only: the runtime can write
images without Pillow.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

RULE = "u8 = clamp(floor((float64(x) + 1.0) * 127.5 + 0.5), 0, 255)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float ``[...]`` in [-1, 1] -> uint8 of the same shape."""
    x = np.asarray(images, dtype=np.float64)
    return np.clip(np.floor((x + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


def to_pixels(images: np.ndarray) -> np.ndarray:
    """float32 ``[N, C, H, W]`` in [-1, 1] -> what a user sees: uint8 ``[N, H, W]`` for one
    channel (MNIST), ``[N, H, W, C]`` (interleaved, as image files store RGB) for more."""
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"expected images [N, C, H, W], got shape {x.shape}")
    u8 = to_uint8(x)
    return u8[:, 0] if x.shape[1] == 1 else np.ascontiguousarray(u8.transpose(0, 2, 3, 1))


def _grey(image: np.ndarray) -> np.ndarray:
    """A uint8 ``[H, W]`` image (a leading channel axis of 1 is dropped) or ``[H, W, 3]`` (RGB),
    C-contiguous."""
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    rgb = img.ndim == 3 and img.shape[2] == 3
    if img.dtype != np.uint8 or not (img.ndim == 2 or rgb) or 0 in img.shape:
        raise ValueError(f"expected a uint8 image [H, W] or [H, W, 3], got {img.dtype} "
                         f"{img.shape}")
    return np.ascontiguousarray(img)


def encode_pgm(image: np.ndarray) -> bytes:
    """Binary PGM (``P5``, maxval 255) of a uint8 ``[H, W]`` image; binary PPM (``P6``) of an
    RGB ``[H, W, 3]`` one."""
    img = _grey(image)
    magic = "P6" if img.ndim == 3 else "P5"
    return f"{magic}\n{img.shape[1]} {img.shape[0]}\n255\n".encode("ascii") + img.tobytes()


def _chunk(kind: bytes, data: bytes) -> bytes:
    # length, type, data, CRC-32 of type + data (PNG spec, section 5.3)
    return struct.pack(">I", len(data)) + kind + data \
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG (8-bit greyscale, or RGB for ``[H, W, 3]``, no interlace) of a uint8 image;
    deterministic bytes."""
    img = _grey(image)
    h, w = img.shape[:2]
    rows = img.reshape(h, -1)  # [H, W] or [H, 3W] (RGB interleaved)
    # every scanline starts with its filter type byte, 0 (None): [H, 1 + W*C]
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()
    colour = 2 if img.ndim == 3 else 0  # colour type 2 (RGB) or 0 (grey)
    header = struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", _stored_zlib(raw))
            + _chunk(b"IEND", b""))


def _stored_zlib(data: bytes) -> bytes:
    """A zlib stream (RFC 1950) of stored deflate blocks (RFC 1951, BTYPE 00) holding ``data``."""
    out = [b"\x78\x01"]  # CMF: deflate, 32 KiB window; FLG: no dictionary, check bits
    blocks = [data[i:i + 0xFFFF] for i in range(0, len(data), 0xFFFF)] or [b""]
    for i, block in enumerate(blocks):
        final = 1 if i == len(blocks) - 1 else 0  # BFINAL bit, BTYPE 00, padded to a byte
        n = len(block)
        out.append(struct.pack("<BHH", final, n, n ^ 0xFFFF) + block)
    out.append(struct.pack(">I", zlib.adler32(data) & 0xFFFFFFFF))
    return b"".join(out)
