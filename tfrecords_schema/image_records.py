"""The constructors of the lake's records: IMAGE records (``image_fields``; ``image_record`` from a decoded
picture) and LABELED_IMAGE records (``labeled_record``).

Every stage that makes an image record from pixels builds it with ``image_record``, so the content id (of the
stored pixels), the perceptual hash and the encoding rules are the same everywhere. build_npdd computes its
fields itself (its ids are of the decoded original, taken before the picture is shrunk for storage) and
passes them to ``image_fields``; a label is added only by ``labeled_record``.
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
    return image_fields(encoded if encoded is not None else encode_picture(image, fmt), fmt, height, width,
                        content_id(np.asarray(image)), perceptual_hash(image), source, source_key,
                        original_height, original_width)


def image_fields(image: bytes, fmt: str, height: int, width: int, id: str, phash: int, source: str,
                 source_key: str, original_height: int, original_width: int) -> dict:
    """An IMAGE record from its fields, each named once (see tfrecords_schema/kinds.py for their meaning)."""
    return {"image": image, "format": fmt, "height": height, "width": width, "id": id, "phash": phash,
            "source": source, "source_key": source_key,
            "original_height": original_height, "original_width": original_width}


def labeled_record(record: dict, label: int, oracle_fingerprint: str = "") -> dict:
    """The LABELED_IMAGE record of an IMAGE record: an original label (OL) when no oracle is named, else a label
    stolen from the oracle with that fingerprint (SL)."""
    return {**record, "label": int(label), "label_kind": "SL" if oracle_fingerprint else "OL",
            "oracle_fingerprint": oracle_fingerprint}


__all__ = ["JPEG_QUALITY", "encode_picture", "image_fields", "image_record", "labeled_record", "perceptual_hash"]
