"""The interim copycat: a small CNN retrained each round on the labels stolen so far, used only to score the pool.

It is deliberately cheap (three conv blocks on thumbnails), kept across rounds (each round
continues training on the grown stolen set) and trained with class weights that undo the
imbalance of natural-image labels, so a class with a handful of labels still gets a say in the
scores. It never sees a problem image and its scores never reach the oracle: they only decide
which pool images to query next.
"""

import keras
import numpy as np


def build_interim(num_classes: int, size: int, filters: int = 16, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    for block, width in enumerate((filters, 2 * filters, 4 * filters)):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{block}")(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D(2)(x) if block < 2 else keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(inputs, outputs, name="interim_copycat")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    return model


def class_weights(labels: np.ndarray, num_classes: int, cap: float = 50.0) -> np.ndarray:
    """Per-class inverse-frequency weights (each seen class weighs the same in total), capped; 0 if unseen."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    seen = counts > 0
    weights = np.zeros(num_classes)
    weights[seen] = np.minimum(cap, len(labels) / (seen.sum() * counts[seen]))
    return weights


def fit(model: keras.Model, thumbs: np.ndarray, labels: np.ndarray, epochs: int, batch_size: int = 64,
        seed: int = 0) -> float:
    """Train on (thumbnails, labels) with class weights; returns the last epoch's loss."""
    order = np.random.default_rng(seed).permutation(len(labels))
    history = model.fit(thumbs[order].astype(np.float32), labels[order], epochs=epochs, batch_size=batch_size,
                        sample_weight=class_weights(labels, model.output_shape[-1])[labels[order]], verbose=0)
    return float(history.history["loss"][-1])


def scores(model: keras.Model, thumbs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Class probabilities [N, K] for uint8 thumbnails."""
    outputs = [model(np.asarray(thumbs[i:i + batch_size], dtype=np.float32), training=False).numpy()
               for i in range(0, len(thumbs), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)


__all__ = ["build_interim", "class_weights", "fit", "scores"]
