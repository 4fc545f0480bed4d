"""Shared test set-up: quiet TensorFlow, and small real records made from generated pixels."""

import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU only, and no CUDA probing noise
# Each pytest-xdist worker is one of as many processes as there are cores: its TensorFlow (and the binaries it
# forks, which inherit this) takes its share of the cores instead of a thread pool per core each. Measured on
# 2 cores: 0.95x the wall time and 0.94x the CPU of the default run (docs/PERFORMANCE.md).
_THREADS = str(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_name, _THREADS)

import imagehash  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402

from tfrecords_schema import content_id  # noqa: E402


def pytest_configure(config):
    """Two logical CPU devices for the whole session, so MirroredStrategy can be tested on one CPU. This runs
    before any test module is collected, so before TensorFlow initializes its devices. The xdist controller,
    which runs no test, skips it: importing TensorFlow there would delay the start of every worker by seconds."""
    if getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput"):
        return
    import tensorflow as tf

    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )


def make_pixels(seed: int, height: int = 12, width: int = 10) -> np.ndarray:
    """A random RGB image: different seeds give different pictures."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def image_record(seed: int, height: int = 12, width: int = 10, **overrides) -> dict:
    """A valid image record whose id and phash are computed from its real pixels."""
    pixels = make_pixels(seed, height, width)
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    record = {
        "image": buffer.getvalue(),
        "format": "png",
        "height": height,
        "width": width,
        "id": content_id(pixels),
        "phash": int(str(imagehash.phash(PIL.Image.fromarray(pixels))), 16),
        "source": "test:generated",
        "source_key": f"generated/{seed}.png",
        "original_height": height * 2,
        "original_width": width * 2,
    }
    record.update(overrides)
    return record


def labeled_record(seed: int, label: int = 0, kind: str = "SL", **overrides) -> dict:
    """A valid labeled_image record (SL carries an oracle fingerprint, OL none)."""
    record = image_record(seed)
    record.update(label=label, label_kind=kind, oracle_fingerprint="oracle:test@abc123" if kind == "SL" else "")
    record.update(overrides)
    return record


@pytest.fixture
def pixels_of():
    """Decode encoded image bytes back to an RGB array."""

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(PIL.Image.open(io.BytesIO(data)).convert("RGB"))

    return decode


def pytest_collection_finish(session):
    """Once every test module is imported, the garbage collector leaves the modules' objects (TensorFlow, Keras and
    Beam: millions) out of its full collections, and collects the young generation less often (tests make many
    short-lived graph objects). Measured on three heavy modules in one process: 4.8 s of collections become 2.6 s."""
    import gc

    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
