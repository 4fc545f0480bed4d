"""Pieces every architecture shares: the pixel input with its rescaling, and the paper's classifier head."""

import keras

from copycat_tf.errors import CopycatError

FC_UNITS = 4096


def pixel_input(input_size: int, architecture: str):
    """(inputs, rescaled): float32 RGB pixels 0..255 in, -1..1 out (the models take raw pixels)."""
    if input_size < 32:
        raise CopycatError(f"--input_size={input_size}: {architecture} needs 32 px or more")
    inputs = keras.Input((input_size, input_size, 3), name="pixels")
    return inputs, keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)


def classifier_head(x, num_classes: int, width: float, dropout: float):
    """Flatten, FC 4096-4096 (scaled by ``width``) with ReLU and dropout, then a float32 softmax over K."""
    x = keras.layers.Flatten(name="flatten")(x)
    for fc in (1, 2):
        x = keras.layers.Dense(max(1, round(FC_UNITS * width)), activation="relu", name=f"fc{fc}")(x)
        x = keras.layers.Dropout(dropout, name=f"dropout{fc}")(x)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
