"""Tiny real SavedModel oracles for tests, in every form the oracle contract allows.

All share one classifier core on 16x16 RGB pixels in 0..255, so tests can compute the expected
class of any image directly.
"""

import numpy as np
import tensorflow as tf

SIZE = 16
NUM_CLASSES = 5


class _Core(tf.Module):
    def __init__(self, seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = tf.Variable(rng.normal(size=(4 * 4 * 3, NUM_CLASSES)).astype(np.float32))
        self.b = tf.Variable(rng.normal(size=(NUM_CLASSES,)).astype(np.float32))

    def logits(self, images):
        """images: float32 [N, 16, 16, 3] in 0..255."""
        pooled = tf.nn.avg_pool2d(images / 255.0 - 0.5, ksize=4, strides=4, padding="VALID")
        return tf.matmul(tf.reshape(pooled, [-1, 4 * 4 * 3]), self.w) + self.b


def expected_classes(pixels: np.ndarray, seed: int = 0) -> np.ndarray:
    """The class the core gives to uint8 [N, 16, 16, 3] pixels."""
    return np.argmax(_Core(seed).logits(tf.constant(pixels, tf.float32)).numpy(), axis=1)


def save_bytes_oracle(path: str, seed: int = 0) -> str:
    """tf.string [N] → {probabilities, class_id} (like copycat's own exports)."""
    module = _Core(seed)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.image.resize(image, (SIZE, SIZE), antialias=True)

        images = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([SIZE, SIZE, 3], tf.float32))
        logits = module.logits(images)
        return {"probabilities": tf.nn.softmax(logits), "class_id": tf.argmax(logits, axis=1)}

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


def save_uint8_logits_oracle(path: str, seed: int = 0) -> str:
    """uint8 [N, 16, 16, 3] → logits."""
    module = _Core(seed)

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.uint8, name="pixels")])
    def serve(pixels):
        return {"logits": module.logits(tf.cast(pixels, tf.float32))}

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path


def save_gray_float_ids_oracle(path: str, seed: int = 0) -> str:
    """float32 [N, H, W, 1] in 0..1, any size → class ids (int64)."""
    module = _Core(seed)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="gray")])
    def serve(gray):
        images = tf.image.resize(tf.image.grayscale_to_rgb(gray) * 255.0, (SIZE, SIZE), antialias=True)
        return {"classes": tf.argmax(module.logits(images), axis=1)}

    tf.saved_model.save(module, path, signatures={"serving_default": serve})
    return path
