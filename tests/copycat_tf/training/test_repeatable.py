"""Issue #14, goal 1: the same --seed gives the same numbers (on this CPU), also across a kill and resume.

Small but not trivial runs: several epochs over two shards, shuffled, with dropout and (in one case)
all ten augmentations, so parallel reads, parallel decoding and unseeded or stateful augmentation
would each show up as different numbers.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from copycat_tf.training import TrainConfig, loop, train
from tests.copycat_tf.training.digits import SIZE, digit_records, digits_folder

PROBES = [r["image"] for r in digit_records(range(1700, 1716))]
CHANGING = ("seconds", "options")  # wall time, and the options (they name the output folder)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("digits") / "train", range(0, 96))


def _config(train_folder, output, **overrides):
    values = dict(model="alexnet", train=[train_folder], output=str(output), input_size=SIZE, epochs=3, batch_size=16,
                  lr=0.02, width=1 / 16, dropout=0.5, checkpoint_every=4, verbose=0, strategy="one_device")
    return TrainConfig(**{**values, **overrides})


def _outcome(output):
    """What a run computed: its metrics.json numbers, its weights, and its export's answers on fixed images."""
    metrics = json.loads((output / "metrics.json").read_text())
    weights = keras.models.load_model(output / "model.keras").get_weights()
    served = tf.saved_model.load(str(output / "export")).signatures["serving_default"](image_bytes=tf.constant(PROBES))
    return {k: v for k, v in metrics.items() if k not in CHANGING}, weights, served["probabilities"].numpy()


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    """Runs made once for the module, by (augment, seed)."""
    made = {}

    def run(augment: str, seed: int):
        if (augment, seed) not in made:
            output = tmp_path_factory.mktemp(f"run-{augment}-{seed}-")
            train(_config(digits, output, augment=augment, seed=seed))
            made[augment, seed] = output
        return made[augment, seed]

    return run


def test_another_seed_gives_other_numbers(runs):
    """The same seed giving the same numbers is checked below: the killed run starts from scratch with the
    uninterrupted run's seed, with all ten augmentations, and after its resume must end at that run's weights,
    answers and losses, which it cannot if anything before or after the kill were unseeded."""
    first, other = _outcome(runs("none", 1)), _outcome(runs("none", 2))
    assert first[0]["history"]["loss"] != other[0]["history"]["loss"]
    assert not np.array_equal(first[2], other[2])
    assert not all(np.array_equal(a, b) for a, b in zip(first[1], other[1]))


class _Killed(Exception):
    pass


def test_a_killed_and_resumed_run_computes_what_an_uninterrupted_one_does(digits, runs, tmp_path, monkeypatch):
    uninterrupted = _outcome(runs("paper", 1))
    output = tmp_path / "killed"
    save = loop._SaveCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        if epoch == 1:  # after the second chunk: step 8, i.e. 128 images in, a third of the way into epoch 2
            raise _Killed()

    monkeypatch.setattr(loop._SaveCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(_Killed):
        train(_config(digits, output, augment="paper", seed=1))
    monkeypatch.undo()
    assert not (output / "metrics.json").exists()
    metrics = train(_config(digits, output, augment="paper", seed=1))
    assert metrics["resumed_from_step"] == 8 and metrics["steps"] == uninterrupted[0]["steps"] == 20
    resumed = _outcome(output)
    for a, b in zip(uninterrupted[1], resumed[1]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(uninterrupted[2], resumed[2])
    assert resumed[0]["history"]["loss"] == uninterrupted[0]["history"]["loss"][2:]  # the chunks after the resume


def test_training_leaves_op_determinism_as_it_found_it(digits, runs, tmp_path):
    from tensorflow.python.framework import config as tf_config  # TF has no public getter

    runs("none", 1)  # a deterministic run (made earlier in the module, or now)
    assert not tf_config.is_op_determinism_enabled()
    metrics = train(_config(digits, tmp_path / "fast", deterministic=False, epochs=1, checkpoint_every=0))
    assert metrics["steps"] == 6 and not tf_config.is_op_determinism_enabled()
