"""Exported classifiers follow the export contract and work as oracles."""

import io

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from copycat_tf.export import export_classifier
from copycat_tf.oracles import OracleSpec, open_oracle
from tests.conftest import make_pixels


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((12, 12, 3)), keras.layers.Rescaling(1 / 255.0), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax"),
    ])
    path = export_classifier(model, str(tmp_path_factory.mktemp("export") / "model"))
    return model, path


def _png(pixels):
    buffer = io.BytesIO()
    PIL.Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def test_export_gives_the_keras_models_classes(exported):
    model, path = exported
    pixels = np.stack([make_pixels(i, 12, 12) for i in range(10)])
    loaded = tf.saved_model.load(path)
    result = loaded.signatures["serving_default"](image_bytes=tf.constant([_png(p) for p in pixels]))
    expected = model.predict(pixels.astype(np.float32), verbose=0)
    np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(result["class_id"].numpy(), expected.argmax(axis=1))


def test_export_is_an_oracle(exported):
    model, path = exported
    pixels = np.stack([make_pixels(i, 12, 12) for i in range(6)])
    oracle = open_oracle(OracleSpec(path))
    assert oracle.num_classes == 3
    np.testing.assert_array_equal(oracle.classify([_png(p) for p in pixels]),
                                  model.predict(pixels.astype(np.float32), verbose=0).argmax(axis=1))
