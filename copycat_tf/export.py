"""Export a Keras classifier as a SavedModel that is itself an oracle (DESIGN.md's export contract).

The ``serving_default`` signature takes a batch of encoded images (``tf.string [N]``: JPEG, PNG,
GIF or BMP, any size) and returns ``probabilities`` (float32 [N, K]) and ``class_id`` (int64 [N]).
Decoding, RGB conversion and resizing to the model's input size happen inside the graph, so
anything that can send image files (copycat-steal-labels, TF Serving, a REST gateway) can query it.

The Keras model is expected to take float32 RGB pixels in 0..255 (its own rescaling is part of the
model) and to end in either probabilities (a softmax) or logits (``outputs="logits"``).
"""

import keras
import tensorflow as tf

from copycat_tf.errors import CopycatError


def export_classifier(model: keras.Model, path: str, outputs: str = "probabilities", verbose: bool = False) -> str:
    """Write ``model`` to ``path`` as an oracle-contract SavedModel; returns the path."""
    if outputs not in ("probabilities", "logits"):
        raise CopycatError(f"outputs={outputs!r}: the model must end in probabilities or logits")
    height, width, channels = model.input_shape[1:4]
    if height is None or width is None or channels not in (1, 3):
        raise CopycatError(f"cannot export a model with input shape {model.input_shape}: need a fixed [H, W, 1 or 3]")

    def decode(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.image.resize(image, (height, width), antialias=True)
        return tf.image.rgb_to_grayscale(image) if channels == 1 else image

    def serve(image_bytes):
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
        scores = tf.cast(model(images, training=False), tf.float32)
        probabilities = tf.nn.softmax(scores) if outputs == "logits" else scores
        return {"probabilities": probabilities, "class_id": tf.argmax(probabilities, axis=1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.write_out(path, verbose=verbose)
    return path
