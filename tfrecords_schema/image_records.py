"""The one constructor of IMAGE records from decoded pictures (pool transforms, problem images, variant queries).

Every stage that makes an image record from pixels builds it here, so the content id (of the stored
pixels), the perceptual hash and the encoding rules are the same everywhere. build_npdd keeps its own
fields: its ids are of the decoded original, taken before the picture is shrunk for storage.
"""

import io

import imagehash
import numpy as np
import PIL.Image

from tfrecords_schema.hashing import content_id

JPEG_QUALITY = 90


def perceptual_hash(image: PIL.Image.Image) -> int:
    """64-bit pHash (imagehash.phash, 8x8 DCT of a 32x32 grayscale) as an unsigned integer."""
    bits = imagehash.phash(image).hash.flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def encode_picture(image: PIL.Image.Image, fmt: str) -> bytes:
    """``image`` as PNG (lossless) or JPEG (quality JPEG_QUALITY) bytes."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG")
    elif fmt == "jpeg":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        raise ValueError(f"image format {fmt!r}: use png or jpeg")
    return buffer.getvalue()


def image_record(image: PIL.Image.Image, source: str, source_key: str, fmt: str = "png",
                 encoded: bytes | None = None, original_size: tuple[int, int] | None = None) -> dict:
    """An IMAGE record of the RGB picture ``image``.

    ``encoded``: bytes that already hold exactly these pixels (kept as they are, in ``fmt``);
    ``original_size``: (width, height) before any resizing (default: the picture's own size).
    The id is the content id of ``image``'s pixels.
    """
    width, height = image.size
    original_width, original_height = original_size or (width, height)
    return {
        "image": encoded if encoded is not None else encode_picture(image, fmt), "format": fmt,
        "height": height, "width": width, "id": content_id(np.asarray(image)), "phash": perceptual_hash(image),
        "source": source, "source_key": source_key,
        "original_height": original_height, "original_width": original_width,
    }


__all__ = ["JPEG_QUALITY", "encode_picture", "image_record", "perceptual_hash"]
