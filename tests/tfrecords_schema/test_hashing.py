"""Content ids, perceptual-hash storage conversions and stable buckets."""

import imagehash
import numpy as np
import PIL.Image
import pytest

from tests.conftest import make_pixels
from tfrecords_schema import content_id, hamming64, phash_from_hex, phash_to_hex, stable_bucket, to_signed64, to_unsigned64


def test_content_id_depends_on_pixels_only():
    pixels = make_pixels(1)
    assert content_id(pixels) == content_id(pixels.copy())
    changed = pixels.copy()
    changed[0, 0, 0] ^= 1
    assert content_id(changed) != content_id(pixels)


def test_content_id_separates_shapes_with_the_same_bytes():
    flat = np.zeros((4, 6, 3), np.uint8)
    assert content_id(flat) != content_id(flat.reshape(6, 4, 3))


@pytest.mark.parametrize("value", [0, 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1])
def test_signed_storage_round_trip(value):
    stored = to_signed64(value)
    assert -(1 << 63) <= stored < (1 << 63)
    assert to_unsigned64(stored) == value


def test_hex_matches_imagehash():
    photo = PIL.Image.fromarray(make_pixels(2, 64, 64))
    text = str(imagehash.phash(photo))
    assert phash_to_hex(phash_from_hex(text)) == text
    other = str(imagehash.phash(PIL.Image.fromarray(make_pixels(3, 64, 64))))
    expected = imagehash.hex_to_hash(text) - imagehash.hex_to_hash(other)  # imagehash's own Hamming distance
    assert hamming64(phash_from_hex(text), phash_from_hex(other)) == expected


def test_stable_bucket_is_fixed_across_runs():
    # sha256("abc") starts with ba7816bf8f01cfea; that 64-bit value mod 10 is fixed forever.
    assert stable_bucket("abc", 10) == 0xBA7816BF8F01CFEA % 10
