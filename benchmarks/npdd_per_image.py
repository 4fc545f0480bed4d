"""Benchmark: the per-image work of copycat-build-npdd, piece by piece, before and after each change.

Each row times one piece over the same images in one process (best of 3 passes) and compares the way
build_npdd does it now with the way it did before issue #15, in the same run:

- encoding a record: the Example wire format written directly (now) vs ``tf.train.Example`` (before);
- the content id: SHA-256 over the pixel buffer itself (now) vs over a copy of it (before);
- a small upright RGB JPEG: its own bytes kept (now) vs re-encoded at --jpeg_quality (before);
- the whole ``stored_image`` of a photo-sized JPEG, for scale.

    .venv/bin/python benchmarks/npdd_per_image.py --images=300
"""

import argparse
import hashlib
import io
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402


def _best(function, items, passes: int = 3) -> float:
    """Milliseconds per item, best of ``passes``."""
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for item in items:
            function(item)
        best = min(best, time.perf_counter() - start)
    return 1000 * best / len(items)


def _jpegs(count: int, size: tuple[int, int], seed: int) -> list[bytes]:
    from beam_pipelines.sources import bundled_photo_paths

    rng = np.random.default_rng(seed)
    photos = [PIL.Image.open(p).convert("RGB") for p in bundled_photo_paths()]
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        left, top = int(rng.integers(0, photo.width // 4)), int(rng.integers(0, photo.height // 4))
        crop = photo.crop((left, top, left + photo.width // 2, top + photo.height // 2)).resize(size)
        buffer = io.BytesIO()
        crop.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def _old_content_id(pixels: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{pixels.dtype.str}|{'x'.join(map(str, pixels.shape))}|".encode())
    digest.update(pixels.tobytes())
    return digest.hexdigest()[:32]


def _tf_encode(record: dict) -> bytes:
    import tensorflow as tf

    from tfrecords_schema import IMAGE, SCHEMA_VERSION, validate
    from tfrecords_schema.hashing import to_signed64

    checked = validate(IMAGE, record)
    feature = {"schema_version": tf.train.Feature(int64_list=tf.train.Int64List(value=[SCHEMA_VERSION]))}
    for field in IMAGE.fields:
        value = checked[field.name]
        if isinstance(value, bytes):
            feature[field.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        elif isinstance(value, str):
            feature[field.name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
        else:
            stored = to_signed64(value) if field.name == "phash" else value
            feature[field.name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[stored]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _jpeg_encode(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    args = parser.parse_args()
    import tensorflow  # noqa: F401  (imported before any clock starts)

    from beam_pipelines.image_decode import normalize_image, stored_image
    from tfrecords_schema import IMAGE, encode
    from tfrecords_schema.hashing import content_id

    photos = _jpegs(args.images, (500, 375), seed=0)
    small = _jpegs(args.images, (240, 180), seed=1)
    normalized = [normalize_image(d) for d in photos]
    records = [{"image": n.encoded, "format": "jpeg", "height": n.height, "width": n.width, "id": n.id,
                "phash": n.phash, "source": "dir:photos", "source_key": f"photo{i:06d}.jpg",
                "original_height": n.original_height, "original_width": n.original_width}
               for i, n in enumerate(normalized)]
    pixels = [np.asarray(PIL.Image.open(io.BytesIO(d)).convert("RGB")) for d in photos]
    assert all(encode(IMAGE, r) for r in records) and content_id(pixels[0]) == _old_content_id(pixels[0])

    small_decoded = [PIL.Image.open(io.BytesIO(d)).convert("RGB") for d in small]
    kept = _best(lambda d: normalize_image(d).encoded, small)
    rows = [
        ("encode a record (Example bytes)", _best(_tf_encode, records), _best(lambda r: encode(IMAGE, r), records)),
        ("content id of 500x375 pixels", _best(_old_content_id, pixels), _best(content_id, pixels)),
        # before: the same work plus the re-encoding that the pass-through now skips
        ("normalize a 240x180 upright RGB JPEG", kept + _best(_jpeg_encode, small_decoded), kept),
    ]
    whole = _best(lambda d: stored_image("dir:photos", "k", d, 256, 90, 10**8), photos)
    print("| piece | before ms/image | now ms/image | before / now |")
    print("| --- | --- | --- | --- |")
    for name, before, now in rows:
        print(f"| {name} | {before:.3f} | {now:.3f} | {before / now:.2f} |")
    print(f"\nthe whole per-image work of a 500x375 JPEG (stored_image: decode, id, normalize, pHash, record): "
          f"{whole:.2f} ms/image in one process")


if __name__ == "__main__":
    main()
