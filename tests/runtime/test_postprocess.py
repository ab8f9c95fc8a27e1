"""The uint8 rule's image files: PNG and PGM written without Pillow, read back by Pillow."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from edgegen.runtime.postprocess import PNG_SIGNATURE, encode_pgm, encode_png


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (3, 70), (300, 300)])
def test_png_and_pgm_decode_to_the_same_pixels(shape: tuple[int, int]) -> None:
    img = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    png = encode_png(img)
    assert png.startswith(PNG_SIGNATURE)
    decoded = Image.open(io.BytesIO(png))
    assert decoded.mode == "L" and np.array_equal(np.array(decoded), img)
    assert np.array_equal(np.array(Image.open(io.BytesIO(encode_pgm(img)))), img)
    assert encode_png(img[None]) == png  # a leading channel axis of 1 is the same image


def test_png_bytes_are_a_function_of_the_pixels() -> None:
    """Stored deflate blocks: no compressor choices, so the bytes can be written down."""
    img = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    png = encode_png(img)
    assert png == encode_png(img.copy())
    idat_len = int.from_bytes(png[33:37], "big")  # after the signature and the IHDR chunk
    assert png[37:41] == b"IDAT"
    stream = png[41:41 + idat_len]
    assert stream[:2] == b"\x78\x01" and stream[2] == 1  # final stored block
    raw = zlib.decompress(stream)
    assert raw == b"".join(b"\x00" + row.tobytes() for row in img)
    assert len(png) == 8 + 25 + (12 + 2 + 5 + 28 * 29 + 4) + 12
    big = np.zeros((300, 300), np.uint8)  # > 65,535 bytes: several stored blocks
    assert np.array_equal(np.array(Image.open(io.BytesIO(encode_png(big)))), big)


def test_pgm_header_matches_the_examples() -> None:
    img = np.full((28, 28), 7, np.uint8)
    assert encode_pgm(img) == b"P5\n28 28\n255\n" + img.tobytes()


@pytest.mark.parametrize("bad", [np.zeros((2, 2), np.float32), np.zeros((2, 2, 2), np.uint8),
                                 np.zeros((0, 3), np.uint8)])
def test_refuses_what_is_not_a_grey_uint8_image(bad: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8 image"):
        encode_png(bad)
