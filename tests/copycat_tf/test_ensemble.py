"""copycat-ensemble: the exported ensemble answers with the mean of its members' probabilities."""

import json
import os

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from copycat_tf.ensemble import EnsembleConfig, run
from copycat_tf.errors import CopycatError
from copycat_tf.models import build_model
from copycat_tf.oracles import OracleSpec, open_oracle
from copycat_tf.run_dir import RunDir
from tfrecords_schema.image_records import encode_picture

CLASSES = ["a", "b", "c"]


def _member(folder, seed, classes=CLASSES):
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model("alexnet_bn", len(classes), 32, width=0.125)
    last = model.layers[-1]  # members that disagree clearly: a random bias per class
    kernel, bias = last.get_weights()
    last.set_weights([kernel, np.random.default_rng(seed).normal(0, 2, bias.shape).astype(bias.dtype)])
    run = RunDir(str(folder))
    os.makedirs(str(folder), exist_ok=True)
    model.save(run.model)
    with open(run.metrics, "w") as handle:
        json.dump({"model": "alexnet_bn", "num_classes": len(classes), "class_names": classes,
                   "options": {"seed": seed}}, handle)
    return model


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    models = [_member(root / f"m{seed}", seed) for seed in (1, 2, 3)]
    return [str(root / f"m{seed}") for seed in (1, 2, 3)], models


def _png(pixels):
    return encode_picture(PIL.Image.fromarray(pixels), "png")


def test_the_export_answers_with_the_mean_of_the_members(members, tmp_path):
    folders, models = members
    metrics = run(EnsembleConfig(members=folders, output=str(tmp_path / "ens")))
    assert metrics["members"] == folders and metrics["num_classes"] == 3 and metrics["member_seeds"] == [1, 2, 3]
    pixels = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    served = tf.saved_model.load(RunDir(str(tmp_path / "ens")).export).signatures["serving_default"](
        image_bytes=tf.constant([_png(p) for p in pixels]))
    expected = np.mean([m(pixels.astype(np.float32), training=False).numpy() for m in models], axis=0)
    assert np.allclose(served["probabilities"].numpy(), expected, atol=1e-4)
    assert not np.allclose(expected, models[0](pixels.astype(np.float32), training=False).numpy(), atol=1e-3)
    oracle = open_oracle(OracleSpec(RunDir(str(tmp_path / "ens")).export))  # an oracle like any export
    assert list(oracle.classify([_png(p) for p in pixels])) == list(expected.argmax(axis=1))
    oracle.close()


def test_bad_members_are_one_clear_error(members, tmp_path):
    folders, _ = members
    with pytest.raises(CopycatError, match="two or more"):
        run(EnsembleConfig(members=folders[:1], output=str(tmp_path / "a")))
    with pytest.raises(CopycatError, match="not a finished copycat-train run"):
        run(EnsembleConfig(members=[folders[0], str(tmp_path / "nothing")], output=str(tmp_path / "b")))
    _member(tmp_path / "other", 4, classes=["x", "y"])
    with pytest.raises(CopycatError, match="different classes"):
        run(EnsembleConfig(members=[folders[0], str(tmp_path / "other")], output=str(tmp_path / "c")))
    with pytest.raises(CopycatError, match="--output"):
        run(EnsembleConfig(members=folders, output=folders[0]))  # never into a member
