"""copycat-train: outputs, the export as an oracle, mirrored vs one device, kill and resume, fine-tuning.

One tiny VGG16-BN run (the paper's copycat) checks the outputs and the export; the checks where the kind of model
does not matter train the tiny AlexNet, which traces and exports in less than half the time.
"""

import io
import json
import os
import signal
import time

import keras
import numpy as np
import PIL.Image
import pytest
import tensorflow as tf

from copycat_tf.errors import CopycatError
from copycat_tf.oracles import OracleSpec, open_oracle
from copycat_tf.training import TrainConfig, paper_schedule, train
from copycat_tf.training.augment import build_augmentation, parse_augmentation
from copycat_tf.training.strategy import choose_strategy
from tests import binaries
from tests.copycat_tf.training.digits import SIZE, digit_records, digits_folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return digits_folder(root / "train", range(0, 320)), digits_folder(root / "val", range(1500, 1600))


def _config(train_folder, output, **overrides):
    values = dict(model="vgg16_bn", train=[train_folder], output=str(output), input_size=SIZE, epochs=1,
                  batch_size=32, lr=0.01, width=1 / 16, verbose=0, strategy="one_device")
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    train_folder, val_folder = data
    output = tmp_path_factory.mktemp("run")
    metrics = train(_config(train_folder, output, val=val_folder, epochs=2))
    return output, metrics


def test_outputs_of_a_run(trained):
    output, metrics = trained
    for name in ("export/saved_model.pb", "model.keras", "metrics.json"):
        assert (output / name).exists(), name
    assert any((output / "checkpoints").iterdir()) and any((output / "tensorboard").rglob("*tfevents*"))
    written = json.loads((output / "metrics.json").read_text())
    assert written["steps"] == 2 * 10 == metrics["steps"]
    assert "final_val_accuracy" in written and len(written["history"]["loss"]) == 2


def test_export_gives_the_keras_models_classes_and_is_an_oracle(trained):
    output, _ = trained
    model = keras.models.load_model(output / "model.keras")
    records = list(digit_records(range(1700, 1740)))
    pixels = np.stack([np.asarray(PIL.Image.open(io.BytesIO(r["image"]))) for r in records]).astype("float32")
    expected = model.predict(pixels, verbose=0).argmax(axis=1)
    oracle = open_oracle(OracleSpec(str(output / "export")))
    np.testing.assert_array_equal(oracle.classify([r["image"] for r in records]), expected)
    served = tf.saved_model.load(str(output / "export")).signatures["serving_default"](
        image_bytes=tf.constant([r["image"] for r in records]))
    np.testing.assert_array_equal(served["class_id"].numpy(), expected)


@pytest.fixture(scope="module")
def one_device(data, tmp_path_factory):
    """A tiny AlexNet trained on one device: the reference of the mirrored run and the start of fine-tuning."""
    train_folder, _ = data
    output = tmp_path_factory.mktemp("one_device")
    metrics = train(_config(train_folder, output, model="alexnet", dropout=0.0))
    return output, metrics


def test_mirrored_on_two_cpus_matches_one_device(data, one_device, tmp_path):
    train_folder, _ = data
    assert len(tf.config.list_logical_devices("CPU")) == 2
    output, one = one_device
    mirrored = train(_config(train_folder, tmp_path / "mirrored", model="alexnet", dropout=0.0, strategy="mirrored"))
    assert mirrored["replicas"] == 2 and one["replicas"] == 1
    assert mirrored["final_loss"] == pytest.approx(one["final_loss"], rel=1e-3)
    for a, b in zip(keras.models.load_model(output / "model.keras").get_weights(),
                    keras.models.load_model(tmp_path / "mirrored" / "model.keras").get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_killed_run_resumes_to_the_same_final_step(data, tmp_path):
    train_folder, _ = data
    output = tmp_path / "run"
    args = ["--model=alexnet", f"--train={train_folder}", f"--output={output}", f"--input_size={SIZE}", "--epochs=6",
            "--batch_size=32", "--width=0.0625", "--checkpoint_every=5", "--strategy=one_device", "--lr=0.01"]
    process = binaries.Forked("copycat_bin.train", args, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if tf.train.latest_checkpoint(str(output / "checkpoints")):  # saved and committed (state file written)
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed: " + process.output()[1][-1000:]
    process.send_signal(signal.SIGKILL)
    process.communicate(60)
    assert not (output / "metrics.json").exists()

    metrics = train(_config(train_folder, output, model="alexnet", epochs=6, checkpoint_every=5))
    assert 0 < metrics["resumed_from_step"] < 60
    assert metrics["steps"] == metrics["total_steps"] == 60


def test_fine_tuning_starts_from_the_given_run(one_device, data, tmp_path):
    output, _ = one_device
    train_folder, _ = data
    source = keras.models.load_model(output / "model.keras")
    metrics = train(_config(train_folder, tmp_path / "tuned", model="alexnet", dropout=0.0, init=str(output), lr=1e-12,
                            weight_decay=0.0))
    tuned = keras.models.load_model(tmp_path / "tuned" / "model.keras")
    for layer in source.layers:  # with a learning rate of 1e-12 the weights stay (nearly) the initial ones
        for a, b in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, atol=1e-6)
    assert metrics["steps"] == 10


def test_paper_schedule_divides_by_ten_at_thirds():
    schedule = paper_schedule(0.01, 300)
    assert [float(schedule(s)) for s in (0, 99, 101, 199, 201, 299)] == pytest.approx([0.01, 0.01, 0.001, 0.001, 1e-4, 1e-4])


def test_augmentation_keeps_shapes_and_refuses_unknown_names():
    images = tf.random.stateless_uniform((4, SIZE, SIZE, 3), (1, 2), 0, 255)
    augmented = build_augmentation("paper", seed=1)(images, 0)
    assert augmented.shape == images.shape and augmented.dtype == tf.float32
    # a function of (seed, step): the same pair gives the same batch, another seed or step another
    assert np.array_equal(augmented, build_augmentation("paper", seed=1)(images, 0))
    assert not np.array_equal(augmented, build_augmentation("paper", seed=2)(images, 0))
    assert not np.array_equal(augmented, build_augmentation("paper", seed=1)(images, 1))
    assert build_augmentation("none") is None
    with pytest.raises(CopycatError, match="unknown operation.*mirror"):
        build_augmentation("rotate,mirror")


def test_every_augment_name_has_its_operation_and_paper_is_the_papers_ten_in_order():
    from copycat_tf.training import augment

    assert tuple(augment._layers(0)) == augment.OPERATIONS  # the names --augment accepts are the operations built
    assert parse_augmentation("paper") == ["intensity", "contrast", "crop", "flip", "blur", "noise", "rotate", "scale",
                                           "shear", "translate"]


def test_lowres_blurs_about_half_the_images_as_a_tiny_picture_would_look():
    """``lowres``: a chosen image equals its area-shrunk (6..12 px) then bilinear-enlarged self; the others are
    untouched; the same (seed, step) gives the same batch; ``paper`` does not include it."""
    images = tf.random.stateless_uniform((64, 32, 32, 1), (3, 4), 0, 255)
    lowres = build_augmentation("lowres", seed=2)
    out = lowres(images, 5).numpy()
    assert np.array_equal(out, lowres(images, 5).numpy()) and not np.array_equal(out, lowres(images, 6).numpy())
    changed = [i for i in range(64) if not np.array_equal(out[i], images[i].numpy())]
    assert 16 <= len(changed) <= 48  # rate 0.5
    matches = set()
    for side in range(6, 13):  # one size per batch: find it by recomputing independently with numpy
        blocks = []
        for i in changed:
            image = images[i].numpy()[:, :, 0]
            small = tf.image.resize(image[None, :, :, None], (side, side), method="area").numpy()
            back = tf.image.resize(small, (32, 32), method="bilinear").numpy()[0]
            blocks.append(np.allclose(back, out[i], atol=1e-3))
        if all(blocks):
            matches.add(side)
    assert len(matches) == 1
    variation = lambda x: np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert all(variation(out[i]) < 0.5 * variation(images[i].numpy()) for i in changed)  # blurred: far smoother
    assert "lowres" not in parse_augmentation("paper") and parse_augmentation("lowres,rotate") == ["lowres", "rotate"]


def test_strategy_choice():
    assert isinstance(choose_strategy("auto"), tf.distribute.OneDeviceStrategy)  # no GPU, no TF_CONFIG here
    with pytest.raises(CopycatError, match="TF_CONFIG"):
        choose_strategy("multi_worker")
    with pytest.raises(CopycatError, match="unknown"):
        choose_strategy("horovod")


def test_mixed_precision_trains_and_exports_float32_outputs(data, tmp_path):
    train_folder, _ = data
    metrics = train(_config(train_folder, tmp_path / "mixed", model="alexnet_bn", mixed_precision=True,
                            checkpoint_every=3, epochs=1))
    assert metrics["steps"] == 12 and np.isfinite(metrics["final_loss"])
    assert keras.mixed_precision.global_policy().name == "float32"  # the policy is restored afterwards
    oracle = open_oracle(OracleSpec(str(tmp_path / "mixed" / "export")))
    record = next(digit_records([1790]))
    assert 0 <= oracle.classify([record["image"]])[0] < 10
