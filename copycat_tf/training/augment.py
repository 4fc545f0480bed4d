"""The paper's data augmentation for PDD training: intensity, contrast, crop, flip, blur, noise,
rotate, scale, shear and translate, as Keras preprocessing layers on 0..255 pixels; and ``lowres``,
which is not in the paper: the blur of a tiny picture scaled up (a copycat trained on stolen labels of
sharp natural images meets blurry upscaled problem images at test time).

``--augment`` takes ``none``, ``paper`` (all ten) or a comma-separated list of the names, e.g.
``intensity,contrast,rotate,shear`` for digits, which a horizontal flip would turn into other symbols.

The random draws hold no state: a batch's transformations are a function of ``--seed``, the batch's
training step and the operation, so the same seed gives the same augmented batches run after run,
in any order the input pipeline computes them (in parallel, too), and a resumed run continues with
the batches an uninterrupted run would have seen.
"""

import keras
import tensorflow as tf

from copycat_tf.training.augment_names import OPERATIONS, PAPER, parse_augmentation  # noqa: F401 (re-exported)

RANGE = (0.0, 255.0)


class _KeyedSeeds(keras.random.SeedGenerator):
    """The seeds of one operation on one batch, without state: the n-th draw is ``fold_in(key, n)``.

    Keras' random preprocessing layers take a SeedGenerator as ``seed`` and call ``next()`` once per
    random draw (a zoom draws its height and its width); a keyed generator makes those draws a pure
    function of the key. It holds no variable, so it may be made inside a tf.data function.
    """

    def __init__(self, key):  # deliberately not SeedGenerator.__init__, which makes a state variable
        self.name = "keyed_seeds"
        self._key = key
        self._draws = 0

    def next(self, ordered=True):
        seed = tf.random.experimental.stateless_fold_in(self._key, self._draws)
        self._draws += 1  # counts draws while the function is traced: each draw gets its own constant
        return seed


class PixelNoise(keras.layers.Layer):
    """Additive Gaussian noise in pixel units (Keras' GaussianNoise takes only stddev ≤ 1), clipped to 0..255."""

    def __init__(self, stddev: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images, training=True, seed=None):
        return keras.random.normal(keras.ops.shape(images), stddev=self.stddev, seed=seed or self._generator)

    def transform_images(self, images, transformation, training=True):
        return keras.ops.clip(keras.ops.cast(images, self.compute_dtype) + transformation, *RANGE) if training else images

    def call(self, images, training=False):
        if not training:
            return images
        return self.transform_images(images, self.get_random_transformation(images), training=True)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


class LowResolution(keras.layers.Layer):
    """Each image, with probability ``rate``, shrunk to a short side of ``sides`` pixels (one size per batch,
    drawn at random) by area averaging and enlarged back bilinearly: how a small problem image (8x8 digits,
    a thumbnail) looks once scaled to the model's input. The label is kept, as for every operation here."""

    def __init__(self, rate: float = 0.5, sides: tuple[int, int] = (6, 12), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.sides = tuple(sides)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def get_random_transformation(self, images, training=True, seed=None):
        seed = seed or self._generator
        side = keras.random.randint((), self.sides[0], self.sides[1] + 1, seed=seed)
        chosen = keras.random.uniform(keras.ops.shape(images)[:1], seed=seed) < self.rate
        return {"side": side, "chosen": chosen}

    def transform_images(self, images, transformation, training=True):
        if not training:
            return images
        images = tf.convert_to_tensor(images, self.compute_dtype)
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        scale = tf.cast(transformation["side"], tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
        small = tf.maximum(1, tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float32) * scale), tf.int32))
        blurred = tf.image.resize(tf.image.resize(images, small, method="area"), [height, width], method="bilinear")
        chosen = tf.reshape(transformation["chosen"], [-1, 1, 1, 1])
        return tf.where(chosen, tf.clip_by_value(blurred, *RANGE), images)

    def call(self, images, training=False):
        if not training:
            return images
        return self.transform_images(images, self.get_random_transformation(images), training=True)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "sides": list(self.sides), "seed": self.seed}


def _layers(seed: int) -> dict:
    # float32 whatever the global policy: under mixed precision the pixels stay exact until the model casts them
    common = {"seed": seed, "dtype": "float32"}
    return {
        "intensity": lambda: keras.layers.RandomBrightness(0.15, value_range=RANGE, **common),
        "contrast": lambda: keras.layers.RandomContrast(0.2, value_range=RANGE, **common),
        "crop": lambda: keras.layers.RandomZoom((-0.15, 0.0), fill_mode="reflect", **common),
        "flip": lambda: keras.layers.RandomFlip("horizontal", **common),
        "blur": lambda: keras.layers.RandomGaussianBlur(0.5, kernel_size=3, sigma=1.0, value_range=RANGE, **common),
        "noise": lambda: PixelNoise(4.0, **common),
        "rotate": lambda: keras.layers.RandomRotation(0.04, fill_mode="reflect", **common),
        "scale": lambda: keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", **common),
        "shear": lambda: keras.layers.RandomShear(0.1, 0.1, fill_mode="reflect", **common),
        "translate": lambda: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", **common),
        "lowres": lambda: LowResolution(**common),
    }


class Augmentation:
    """``augmentation(images, step)``: a batch of 0..255 pixels transformed by each operation in turn,
    with random parameters drawn per image from (seed, step, operation) alone."""

    def __init__(self, names: list[str], seed: int = 0):
        layers = _layers(seed)
        self.names = list(names)
        self.layers = [layers[name]() for name in names]
        self.seed = seed

    def __call__(self, images, step):
        key = tf.random.experimental.stateless_fold_in(tf.constant([self.seed, 0], tf.int64), tf.cast(step, tf.int64))
        images = tf.cast(images, tf.float32)
        shape = images.shape
        for index, layer in enumerate(self.layers):
            seeds = _KeyedSeeds(tf.random.experimental.stateless_fold_in(key, index))
            transformation = layer.get_random_transformation(images, training=True, seed=seeds)
            images = layer.transform_images(images, transformation, training=True)
        return tf.ensure_shape(tf.cast(images, tf.float32), shape)


def build_augmentation(spec: str, seed: int = 0) -> Augmentation | None:
    """The augmentation for ``spec``, or None for ``none``."""
    names = parse_augmentation(spec)
    return Augmentation(names, seed) if names else None
