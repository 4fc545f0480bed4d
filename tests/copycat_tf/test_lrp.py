"""LRP on tiny VGG and AlexNet models: conservation, rules, and batch-norm folding."""

import keras
import numpy as np
import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.models import build_model
from copycat_tf.relevance.lrp import RULES, lrp, relevance_map


def _zero_biases(model):
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(np.zeros(layer.bias.shape, np.float32))
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.beta.assign(np.zeros(layer.beta.shape, np.float32))
            layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, np.float32))
            layer.moving_variance.assign(np.random.default_rng(0).uniform(0.5, 2.0, layer.moving_variance.shape))
            layer.gamma.assign(np.random.default_rng(1).uniform(0.5, 1.5, layer.gamma.shape))
    return model


IMAGES = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["vgg16", "vgg16_bn", "alexnet", "alexnet_bn"])
def test_lrp0_conserves_the_logit_with_zero_biases(name):
    keras.utils.set_random_seed(0)
    model = _zero_biases(build_model(name, 5, 32, width=1 / 8, dropout=0.0))
    relevance, logits = lrp(model, IMAGES, rule="lrp0")
    assert relevance.shape == IMAGES.shape
    assert np.all(logits != 0)  # something to conserve
    np.testing.assert_allclose(relevance.reshape(3, -1).sum(axis=1), logits, rtol=2e-3)


def test_logit_is_the_models_own_score():
    keras.utils.set_random_seed(0)
    model = build_model("vgg16_bn", 5, 32, width=1 / 8)
    _, logits = lrp(model, IMAGES, class_ids=[0, 1, 2], rule="lrp0")
    probabilities = model.predict(IMAGES, verbose=0)
    log_ratio = np.log(probabilities[np.arange(3), [0, 1, 2]]) - np.log(probabilities[:, 3])
    penultimate = keras.Model(model.input, model.get_layer("dropout2").output).predict(IMAGES, verbose=0)
    kernel, bias = model.get_layer("predictions").get_weights()
    full = penultimate @ kernel + bias
    np.testing.assert_allclose(logits, full[np.arange(3), [0, 1, 2]], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_ratio, logits - full[:, 3], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_gives_a_finite_map(rule):
    keras.utils.set_random_seed(0)
    model = build_model("alexnet_bn", 5, 32, width=1 / 8)
    maps = relevance_map(lrp(model, IMAGES, rule=rule)[0])
    assert maps.shape == (3, 32, 32) and np.all(np.isfinite(maps)) and np.abs(maps).sum() > 0


def test_unknown_rule_and_layer_are_named():
    model = build_model("alexnet", 5, 32, width=1 / 8)
    with pytest.raises(CopycatError, match="unknown LRP rule"):
        lrp(model, IMAGES, rule="deep-taylor")
    odd = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(2, 3), keras.layers.LayerNormalization(),
                            keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(CopycatError, match="does not know layer"):
        lrp(odd, IMAGES)
