"""Decode, validate and normalize one input image: the per-image work of build_npdd.

Pure Python (Pillow, NumPy, imagehash): no Beam here, so it is unit-testable and reusable.
Every input ends either as a NormalizedImage or as a Rejected with a short reason; hostile inputs
(empty, non-image, truncated, decompression bombs) are rejected, awkward but valid ones (alpha,
CMYK, 16-bit, palette, animated, EXIF-rotated) are converted to upright 8-bit RGB.
"""

import dataclasses
import io
import math
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps

from beam_pipelines.build_npdd_config import DEFAULT_MAX_PIXELS
from beam_pipelines.near_duplicates import Candidate, make_candidate
from tfrecords_schema import IMAGE, encode
from tfrecords_schema.image_records import image_fields
from tfrecords_schema.hashing import content_id
from tfrecords_schema.image_records import perceptual_hash

# Reasons a file is rejected (the keys of the manifest's rejected_by_reason).
EMPTY = "empty_file"
OVERSIZED_FILE = "oversized_file"
NOT_AN_IMAGE = "not_an_image"
TOO_MANY_PIXELS = "too_many_pixels"
TRUNCATED = "truncated"
UNDECODABLE = "undecodable"
# Folder entries that are refused before any byte is decoded (beam_pipelines.sources).
NOT_A_REGULAR_FILE = "not_a_regular_file"  # a FIFO, device, socket (directly or through a link)
UNREADABLE = "unreadable"  # permission denied, I/O error, vanished, or a folder that cannot be listed
BROKEN_LINK = "broken_link"  # a symbolic link to nothing
SYMLINK_LOOP = "symlink_loop"  # a symbolic link that leads back to itself
BAD_FILE_NAME = "bad_file_name"  # a name that is not valid UTF-8 (its key is shown with \xNN escapes)
REASONS = (EMPTY, OVERSIZED_FILE, NOT_AN_IMAGE, TOO_MANY_PIXELS, TRUNCATED, UNDECODABLE,
           NOT_A_REGULAR_FILE, UNREADABLE, BROKEN_LINK, SYMLINK_LOOP, BAD_FILE_NAME)

_ORIENTATION = 0x0112  # the EXIF tag
PIL.Image.MAX_IMAGE_PIXELS = None  # the limit is enforced here, per option, before any pixel is decoded


@dataclasses.dataclass(frozen=True)
class Rejected:
    reason: str
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class NormalizedImage:
    """An accepted image: re-encoded, downscaled, identified by its pixels and perceptual hash."""

    encoded: bytes
    format: str
    height: int
    width: int
    id: str
    phash: int
    original_height: int
    original_width: int


def _to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency is flattened onto white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image, dtype=np.int64)
        gray = (np.clip(values, 0, 65535) >> 8).astype(np.uint8)  # 16-bit range to 8 bits
        return PIL.Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return PIL.Image.fromarray(gray, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = PIL.Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return PIL.Image.alpha_composite(white, rgba).convert("RGB")
    return image if mode == "RGB" else image.convert("RGB")


@dataclasses.dataclass(frozen=True)
class _Decoded:
    image: PIL.Image.Image  # upright 8-bit RGB
    stored_size: tuple[int, int]  # (width, height) as the file stores it
    as_stored: bool  # a plain JPEG's own RGB pixels: no reduced-scale decode, no turn, no conversion, no warning


_PLAIN_SOF = {0xC0, 0xC1, 0xC2}  # Huffman-coded baseline, extended and progressive: what every JPEG reader decodes
_MAX_BYTES_PER_PIXEL = 3  # a file larger than its raw RGB pixels carries something else (metadata, payloads)


def plain_jpeg(data: bytes, pixels: int) -> bool:
    """Whether JPEG bytes may be kept as they are: a Huffman-coded (baseline or progressive) frame, the end
    marker last (nothing appended), and no larger than the raw pixels. Arithmetic-coded and lossless
    JPEGs, which not every reader decodes, and files padded with other data are re-encoded instead."""
    if len(data) > _MAX_BYTES_PER_PIXEL * pixels or not data.endswith(b"\xff\xd9"):
        return False
    position = 2  # after the start marker
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame marker
            return marker in _PLAIN_SOF
        if marker == 0xDA:  # start of scan before any frame header: malformed
            return False
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return False


def _decode(data: bytes, max_pixels: int, draft_short_side: int) -> "_Decoded | Rejected":
    if not data:
        return Rejected(EMPTY)
    try:
        image = PIL.Image.open(io.BytesIO(data))
    except PIL.UnidentifiedImageError:
        return Rejected(NOT_AN_IMAGE, "no known image format in the file's content")
    except Exception as error:  # Pillow raises many kinds on hostile headers
        return Rejected(UNDECODABLE, f"{type(error).__name__}: {error}")
    width, height = image.size
    if width <= 0 or height <= 0:
        return Rejected(UNDECODABLE, f"declared size {width}x{height}")
    if width * height > max_pixels:
        return Rejected(TOO_MANY_PIXELS, f"{width}x{height} is over {max_pixels} pixels")
    try:
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)
        if draft_short_side and image.format == "JPEG":
            scale = draft_short_side / min(width, height)
            image.draft(image.mode, (math.ceil(width * scale), math.ceil(height * scale)))
        with warnings.catch_warnings(record=True) as warned:
            warnings.simplefilter("always")
            image.load()
    except OSError as error:
        reason = TRUNCATED if "truncated" in str(error) or "broken data stream" in str(error) else UNDECODABLE
        return Rejected(reason, str(error))
    except Exception as error:
        return Rejected(UNDECODABLE, f"{type(error).__name__}: {error}")
    as_stored = (image.format == "JPEG" and image.mode == "RGB" and image.size == (width, height) and not warned
                 and plain_jpeg(data, width * height))
    try:
        orientation = image.getexif().get(_ORIENTATION, 1)
        if orientation != 1:
            as_stored = False
            PIL.ImageOps.exif_transpose(image, in_place=True)
    except Exception:  # unreadable EXIF: keep the stored orientation
        as_stored = False
    try:
        return _Decoded(_to_rgb(image), (width, height), as_stored)
    except Exception as error:
        return Rejected(UNDECODABLE, f"cannot convert mode {image.mode} to RGB: {error}")


def decode_upright_rgb(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, draft_short_side: int = 0
) -> "tuple[PIL.Image.Image, tuple[int, int]] | Rejected":
    """The first frame of an image file as upright 8-bit RGB and its stored (width, height), or why not.

    With ``draft_short_side``, a large JPEG is decoded directly at a reduced scale (1/2, 1/4, 1/8)
    that keeps its short side at least that long: the same bytes always give the same pixels, at a
    fraction of the cost.
    """
    result = _decode(data, max_pixels, draft_short_side)
    return result if isinstance(result, Rejected) else (result.image, result.stored_size)


def downscale(image: PIL.Image.Image, max_side: int) -> PIL.Image.Image:
    """Shrink so the short side is at most ``max_side``; never enlarge."""
    width, height = image.size
    short = min(width, height)
    if short <= max_side:
        return image
    scale = max_side / short
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, PIL.Image.Resampling.BOX)  # area average: cheap and alias-free when shrinking


def normalize_image(
    data: bytes, max_side: int = 256, jpeg_quality: int = 90, max_pixels: int = DEFAULT_MAX_PIXELS
) -> "NormalizedImage | Rejected":
    """Decode, identify, downscale, hash and re-encode one image file's bytes as JPEG.

    The content id hashes the decoded pixels (for a large JPEG, those of the reduced-scale decode);
    the perceptual hash is taken of the normalized image, so it does not depend on the input size.
    A JPEG that needs nothing (upright RGB, short side at most ``max_side``) keeps its own bytes:
    re-encoding would only lose quality and time.
    """
    result = _decode(data, max_pixels, draft_short_side=max_side)
    if isinstance(result, Rejected):
        return result
    decoded, (stored_width, stored_height) = result.image, result.stored_size
    # Upright original size: a 90° EXIF turn swaps the stored width and height.
    swapped = (decoded.size[0] > decoded.size[1]) != (stored_width > stored_height)
    original_width, original_height = (stored_height, stored_width) if swapped else (stored_width, stored_height)
    identity = content_id(np.asarray(decoded))
    small = downscale(decoded, max_side)
    if result.as_stored and small is decoded:
        encoded = data
    else:
        buffer = io.BytesIO()
        small.save(buffer, "JPEG", quality=jpeg_quality)
        encoded = buffer.getvalue()
    return NormalizedImage(
        encoded=encoded,
        format="jpeg",
        height=small.size[1],
        width=small.size[0],
        id=identity,
        phash=perceptual_hash(small),
        original_height=original_height,
        original_width=original_width,
    )


def stored_image(
    source: str, key: str, data: bytes, max_side: int, jpeg_quality: int, max_pixels: int
) -> "tuple[Candidate, bytes] | Rejected":
    """One input file → what build_npdd keeps of it: its dedupe candidate and its encoded IMAGE record
    (or why it was rejected). A decoder bug becomes a rejection: one bad file must not end a
    million-image job. Module-level, picklable and TensorFlow-free: build_npdd's worker processes run it.
    """
    try:
        image = normalize_image(data, max_side, jpeg_quality, max_pixels)
    except Exception as error:
        return Rejected(UNDECODABLE, f"{type(error).__name__}: {error}")
    if isinstance(image, Rejected):
        return image
    record = image_fields(image.encoded, image.format, image.height, image.width, image.id, image.phash, source, key,
                          image.original_height, image.original_width)
    return make_candidate(record), encode(IMAGE, record)  # a record that does not encode is a bug: it stops the job
