"""Each architecture builds at tiny scale, has the paper's layer counts, and trains a step."""

import keras
import numpy as np
import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.models import MODELS, build_model


def _count(model, kind):
    return sum(isinstance(layer, kind) for layer in model.layers)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builds_and_trains_a_step(name):
    keras.utils.set_random_seed(0)
    model = build_model(name, num_classes=4, input_size=32, width=1 / 16)
    assert model.output_shape == (None, 4)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = np.arange(8) % 4
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


def test_paper_layer_counts():
    vgg = build_model("vgg16", 10, 32, width=1 / 16)
    assert _count(vgg, keras.layers.Conv2D) == 13 and _count(vgg, keras.layers.Dense) == 3
    assert _count(vgg, keras.layers.Dropout) == 2
    alex = build_model("alexnet", 10, 32, width=1 / 16)
    assert _count(alex, keras.layers.Conv2D) == 5 and _count(alex, keras.layers.Dense) == 3
    assert _count(build_model("vgg16_bn", 10, 32, width=1 / 16), keras.layers.BatchNormalization) == 13


def test_full_width_vgg16_matches_the_paper():
    model = build_model("vgg16", 1000, 224)
    assert model.get_layer("block5_conv3").filters == 512 and model.get_layer("fc1").units == 4096
    assert model.count_params() == 138_357_544  # VGG16's published parameter count


def test_alexnet_adapts_its_first_layer_to_the_input():
    assert build_model("alexnet", 10, 227, width=1 / 16).get_layer("conv1").kernel_size == (11, 11)
    small = build_model("alexnet", 10, 32, width=1 / 16)
    assert small.get_layer("conv1").kernel_size == (5, 5) and small.get_layer("conv1").strides == (1, 1)


def test_unknown_model_and_too_small_input_are_named():
    with pytest.raises(CopycatError, match="known models: vgg16, vgg16_bn, alexnet, alexnet_bn"):
        build_model("resnet", 10, 32)
    with pytest.raises(CopycatError, match="--input_size=16"):
        build_model("vgg16", 10, 16)
