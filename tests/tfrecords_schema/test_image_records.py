"""The one IMAGE-record constructor: ids of the stored pixels, valid records, bytes kept when given."""

import io

import numpy as np
import PIL.Image
import pytest

from tfrecords_schema import IMAGE, content_id, validate
from tfrecords_schema.image_records import image_record, perceptual_hash


def _picture(seed=0, size=(10, 7)):
    rng = np.random.default_rng(seed)
    return PIL.Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_a_png_record_holds_exactly_the_pixels_its_id_names():
    picture = _picture()
    record = validate(IMAGE, image_record(picture, "test", "k"))
    stored = np.asarray(PIL.Image.open(io.BytesIO(record["image"])).convert("RGB"))
    assert record["format"] == "png" and (record["width"], record["height"]) == (10, 7)
    assert np.array_equal(stored, np.asarray(picture)) and record["id"] == content_id(stored)
    assert (record["original_width"], record["original_height"]) == (10, 7)
    assert record["phash"] == perceptual_hash(picture) and record["phash"] != perceptual_hash(_picture(1))


def test_jpeg_given_bytes_and_original_size_are_kept():
    picture = _picture()
    record = image_record(picture, "s", "k", fmt="jpeg", original_size=(40, 28))
    assert record["image"][:2] == b"\xff\xd8" and record["format"] == "jpeg"
    assert (record["original_width"], record["original_height"]) == (40, 28)
    assert record["id"] == content_id(np.asarray(picture))  # the pixels before the lossy encoding
    assert image_record(picture, "s", "k", encoded=b"given")["image"] == b"given"
    with pytest.raises(ValueError, match="gif"):
        image_record(picture, "s", "k", fmt="gif")


def test_labeled_records_say_where_their_label_came_from():
    from tfrecords_schema import IMAGE, LABELED_IMAGE, validate
    from tfrecords_schema.image_records import image_fields, labeled_record

    record = image_fields(b"\x89PNG", "png", 4, 5, "a" * 32, 7, "dir:x", "x.png", 8, 10)
    validate(IMAGE, record)
    original = labeled_record(record, 3)
    stolen = labeled_record(record, 2, "fp123")
    assert (original["label"], original["label_kind"], original["oracle_fingerprint"]) == (3, "OL", "")
    assert (stolen["label"], stolen["label_kind"], stolen["oracle_fingerprint"]) == (2, "SL", "fp123")
    validate(LABELED_IMAGE, original)
    validate(LABELED_IMAGE, stolen)
    assert "label" not in record  # the image record itself is left as it was
