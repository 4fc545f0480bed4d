"""A local TensorFlow SavedModel as the oracle, loaded with tf.saved_model.load (never through Keras).

Both input forms of the oracle contract are served:
  * encoded images: a tf.string input [N]; the model decodes them itself;
  * image tensors: uint8 or float32 [N, H, W, C], C = 1 or 3; the client decodes, resizes to H x W
    (or ``input_size`` when the model leaves it open), converts channels, and scales float inputs to
    ``value_range`` ("0-255", "0-1" or "-1-1").
Outputs may be probabilities, logits or class ids; ``output`` picks one when there are several.
Every answer is validated before anyone records it (copycat_tf.oracles.base.class_ids): NaN or
infinite scores, class ids outside ``[0, num_classes)`` or a wrong count are an OracleError.

Trust: a SavedModel's graph runs in this process with the user's rights (its ops can read and
write files). Load only models you trust; put anyone else's behind the REST client or a sandbox.
"""

import hashlib
import os
import threading
from typing import Sequence

import numpy as np
import tensorflow as tf

from copycat_tf.oracles.base import Oracle, OracleError, batch_name, class_ids, scrub_url
from copycat_tf.run_dir import SAVED_MODEL

VALUE_RANGES = {"0-255": (0.0, 255.0), "0-1": (0.0, 1.0), "-1-1": (-1.0, 1.0)}
_PREFERRED_OUTPUTS = ("class_id", "classes", "probabilities", "probs", "logits", "predictions", "scores")


def model_hash(path: str) -> str:
    """SHA-256 over the graph and the variables' files: the model's identity, wherever it lies."""
    digest = hashlib.sha256()
    files = []
    for root, _, names in tf.io.gfile.walk(path):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), path)
            if relative == SAVED_MODEL or relative.startswith("variables" + os.sep):
                files.append(relative)
    if SAVED_MODEL not in files:
        raise OracleError(f"--oracle={path} is not a SavedModel (no {SAVED_MODEL}); export one or pass a REST URL")
    for relative in sorted(files):
        digest.update(relative.encode() + b"\0")
        with tf.io.gfile.GFile(os.path.join(path, relative), "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]


class SavedModelOracle(Oracle):
    """Queries a SavedModel's serving signature in batches (on the GPU when TensorFlow has one)."""

    def __init__(
        self,
        path: str,
        signature: str = "serving_default",
        output: str | None = None,
        value_range: str = "0-255",
        input_size: int | None = None,
    ):
        if value_range not in VALUE_RANGES:
            raise OracleError(f"--oracle_value_range={value_range!r} is unknown; use one of {', '.join(VALUE_RANGES)}")
        if not tf.io.gfile.exists(os.path.join(path, SAVED_MODEL)):
            raise OracleError(f"--oracle={path}: no SavedModel there ({SAVED_MODEL} missing); check the path")
        try:
            self._loaded = tf.saved_model.load(path)
        except Exception as error:
            raise OracleError(f"--oracle={path}: TensorFlow cannot load this SavedModel: {error}") from None
        if signature not in self._loaded.signatures:
            known = ", ".join(self._loaded.signatures) or "none"
            raise OracleError(f"--oracle={path} has no signature {signature!r}; its signatures: {known}")
        self._function = self._loaded.signatures[signature]
        self._input_name, spec = self._single_input(path)
        self._output = self._pick_output(path, output)
        self.num_classes = self._model_classes = self._classes_from_output()
        self._value_range = VALUE_RANGES[value_range]
        self._bytes_input = spec.dtype == tf.string
        if not self._bytes_input:
            self._prepare = self._tensor_preparer(path, spec, input_size)
        self.fingerprint = f"savedmodel:{model_hash(path)}:{signature}:{self._output}"
        self._shown = scrub_url(path)
        self._batches = 0
        self._count_lock = threading.Lock()
        self._description = {
            "kind": "savedmodel", "path": self._shown, "signature": signature, "output": self._output,
            "input": "encoded images" if self._bytes_input else f"{spec.dtype.name} {spec.shape}",
            "value_range": value_range,
        }

    # -- signature inspection -------------------------------------------------------------------

    def _single_input(self, path: str):
        _, kwargs = self._function.structured_input_signature
        if len(kwargs) != 1:
            raise OracleError(f"--oracle={path}: the signature must take one input, it takes {sorted(kwargs)}")
        name, spec = next(iter(kwargs.items()))
        if spec.dtype == tf.string:
            return name, spec
        if spec.dtype not in (tf.uint8, tf.float32) or spec.shape.rank != 4 or spec.shape[-1] not in (1, 3):
            raise OracleError(
                f"--oracle={path}: input {name!r} is {spec.dtype.name} {spec.shape}; the oracle contract takes "
                "encoded images (tf.string [N]) or uint8/float32 [N,H,W,C] with C = 1 or 3"
            )
        return name, spec

    def _pick_output(self, path: str, wanted: str | None) -> str:
        outputs = self._function.structured_outputs
        if wanted:
            if wanted not in outputs:
                raise OracleError(f"--oracle_output={wanted!r} is not an output of {path}; its outputs: {', '.join(sorted(outputs))}")
            return wanted
        if len(outputs) == 1:
            return next(iter(outputs))
        for name in _PREFERRED_OUTPUTS:
            if name in outputs:
                return name
        raise OracleError(f"{path} has several outputs ({', '.join(sorted(outputs))}); choose one with --oracle_output")

    def _classes_from_output(self) -> int | None:
        """K from a [N, K] score output: the chosen one, else any other (e.g. probabilities beside class_id)."""
        outputs = self._function.structured_outputs
        for name in [self._output, *sorted(outputs)]:
            spec = outputs[name]
            if spec.shape.rank == 2 and spec.dtype.is_floating and spec.shape[1] and spec.shape[1] > 1:
                return int(spec.shape[1])
        return None

    def _tensor_preparer(self, path: str, spec, input_size: int | None):
        height, width, channels = spec.shape[1], spec.shape[2], spec.shape[3]
        if height is None or width is None:
            if not input_size:
                raise OracleError(f"--oracle={path} takes images of any size; say which with --oracle_input_size")
            height = width = input_size
        low, high = self._value_range
        dtype = spec.dtype

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def prepare(encoded):
            def one(data):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
                image = tf.image.resize(image, (height, width), antialias=True)  # float 0..255
                return tf.image.rgb_to_grayscale(image) if channels == 1 else image

            images = tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
            if dtype == tf.uint8:
                return tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
            return images / 255.0 * (high - low) + low

        return prepare

    # -- queries ----------------------------------------------------------------------------------

    def classify(self, images: Sequence[bytes]) -> np.ndarray:
        if not len(images):
            return np.zeros([0], np.int64)
        with self._count_lock:
            self._batches += 1
            number = self._batches
        where = batch_name(f"oracle {self._shown}", number, len(images))
        batch = tf.constant(list(images), dtype=tf.string)
        inputs = batch if self._bytes_input else self._prepare(batch)
        outputs = self._function(**{self._input_name: inputs})[self._output]
        source = "the width of its score output" if self.num_classes == self._model_classes else "--num_classes"
        labels, _ = class_ids(outputs.numpy(), len(images), self.num_classes, where, source)
        return labels

    def describe(self) -> dict:
        return {**super().describe(), **self._description}
