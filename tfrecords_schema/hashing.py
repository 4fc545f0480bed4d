"""Stable identifiers the lake uses: content ids, perceptual-hash storage and shard assignment.

Content ids depend only on decoded pixels, so the same picture gets the same id whatever file,
format or source it came from. Perceptual hashes are 64-bit unsigned in Python; TFRecord has only
signed int64, so they are stored as the same 64 bits read as a signed integer.
"""

import hashlib

import numpy as np

CONTENT_ID_HEX_CHARS = 32  # 128 bits of SHA-256: collisions are not a practical concern.
_TWO_64 = 1 << 64
_TWO_63 = 1 << 63


def content_id(pixels: np.ndarray) -> str:
    """Hex id of an image's decoded pixels (shape and dtype included, so a crop never collides)."""
    array = np.ascontiguousarray(pixels)
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}|{'x'.join(map(str, array.shape))}|".encode())
    digest.update(array.reshape(-1).view(np.uint8))  # the buffer itself: no copy of the pixels
    return digest.hexdigest()[:CONTENT_ID_HEX_CHARS]


def to_signed64(value: int) -> int:
    """The int64 that TFRecord stores for an unsigned 64-bit hash."""
    if not 0 <= value < _TWO_64:
        raise ValueError(f"{value} is not an unsigned 64-bit value")
    return value - _TWO_64 if value >= _TWO_63 else value


def to_unsigned64(value: int) -> int:
    """The unsigned 64-bit hash behind a stored int64."""
    if not -_TWO_63 <= value < _TWO_63:
        raise ValueError(f"{value} is not a signed 64-bit value")
    return value + _TWO_64 if value < 0 else value


def phash_from_hex(text: str) -> int:
    """The unsigned 64-bit value of a 16-hex-digit hash (as ``str(imagehash.phash(...))`` prints)."""
    if len(text) != 16:
        raise ValueError(f"a 64-bit perceptual hash has 16 hex digits, got {text!r}")
    return int(text, 16)


def phash_to_hex(value: int) -> str:
    """16 hex digits of an unsigned 64-bit hash, zero-padded."""
    to_signed64(value)  # range check
    return f"{value:016x}"


def hamming64(a: int, b: int) -> int:
    """Number of differing bits between two unsigned 64-bit hashes."""
    return (a ^ b).bit_count()


def stable_bucket(key: str, buckets: int) -> int:
    """A bucket in [0, buckets) from a key's SHA-256: the same on every machine, runner and run."""
    if buckets < 1:
        raise ValueError(f"buckets must be at least 1, got {buckets}")
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % buckets
