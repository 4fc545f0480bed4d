"""The paper's data augmentation for PDD training: intensity, contrast, crop, flip, blur, noise,
rotate, scale, shear and translate, as Keras preprocessing layers on 0..255 pixels.

``--augment`` takes ``none``, ``paper`` (all ten) or a comma-separated list of the names, e.g.
``intensity,contrast,rotate,shear`` for digits, which a horizontal flip would turn into other symbols.
"""

import keras

from copycat_tf.errors import CopycatError

RANGE = (0.0, 255.0)


class PixelNoise(keras.layers.Layer):
    """Additive Gaussian noise in pixel units (Keras' GaussianNoise takes only stddev ≤ 1), clipped to 0..255."""

    def __init__(self, stddev: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        noise = keras.random.normal(keras.ops.shape(images), stddev=self.stddev, seed=self._generator)
        return keras.ops.clip(images + noise, *RANGE)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


def _layers(seed: int) -> dict:
    return {
        "intensity": lambda: keras.layers.RandomBrightness(0.15, value_range=RANGE, seed=seed),
        "contrast": lambda: keras.layers.RandomContrast(0.2, value_range=RANGE, seed=seed),
        "crop": lambda: keras.layers.RandomZoom((-0.15, 0.0), fill_mode="reflect", seed=seed),
        "flip": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "blur": lambda: keras.layers.RandomGaussianBlur(0.5, kernel_size=3, sigma=1.0, value_range=RANGE, seed=seed),
        "noise": lambda: PixelNoise(4.0, seed=seed),
        "rotate": lambda: keras.layers.RandomRotation(0.04, fill_mode="reflect", seed=seed),
        "scale": lambda: keras.layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed),
        "shear": lambda: keras.layers.RandomShear(0.1, 0.1, fill_mode="reflect", seed=seed),
        "translate": lambda: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
    }


OPERATIONS = tuple(_layers(0))


def build_augmentation(spec: str, seed: int = 0):
    """A Keras layer stack for ``spec``, or None for ``none``."""
    if spec in ("", "none"):
        return None
    names = list(OPERATIONS) if spec == "paper" else [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in OPERATIONS]
    if unknown:
        raise CopycatError(f"--augment: unknown operation(s) {', '.join(unknown)}; use none, paper or some of {', '.join(OPERATIONS)}")
    layers = _layers(seed)
    return keras.Sequential([layers[name]() for name in names], name="augment")
