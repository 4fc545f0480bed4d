"""Small lake folders of labeled digits (scikit-learn's 8x8 digits, upscaled), shared by the training tests."""

import io

import numpy as np
import PIL.Image
from sklearn.datasets import load_digits

from tfrecords_schema import LABELED_IMAGE, Manifest, content_id, write_manifest, write_shards

SIZE = 32  # the smallest input the models take


def digit_records(indices, size: int = SIZE):
    digits = load_digits()
    for index in indices:
        small = np.clip(digits.images[index] * 16, 0, 255).astype(np.uint8)
        pixels = np.asarray(PIL.Image.fromarray(small).resize((size, size)).convert("RGB"))
        buffer = io.BytesIO()
        PIL.Image.fromarray(pixels).save(buffer, "PNG")
        yield {"image": buffer.getvalue(), "format": "png", "height": size, "width": size, "id": content_id(pixels),
               "phash": 0, "source": "digits", "source_key": str(index), "original_height": 8, "original_width": 8,
               "label": int(digits.target[index]), "label_kind": "OL", "oracle_fingerprint": ""}


def digits_folder(path, indices, num_shards: int = 2) -> str:
    count = write_shards(str(path), LABELED_IMAGE, digit_records(indices), num_shards=num_shards)
    write_manifest(str(path), Manifest(stage="prepare_problem", record_kind="labeled_image", counts={"kept": count},
                                       extra={"num_classes": 10, "class_names": [str(d) for d in range(10)]}))
    return str(path)
