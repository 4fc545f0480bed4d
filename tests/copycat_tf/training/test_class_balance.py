"""--class_balance=resample: every epoch a fresh balanced draw, so every stolen label is used (issue #14)."""

import hashlib
import json
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from copycat_tf.errors import CopycatError
from copycat_tf.training import TrainConfig, train
from copycat_tf.training.class_balance import EpochDraw, quotas, read_labels, tempered_quotas
from copycat_tf.training.input import lake_dataset
from tests.copycat_tf.training.digits import SIZE, digits_folder
from tfrecords_schema import LABELED_IMAGE, open_folder, read_records

# A skewed "stolen" set as natural images give: 30 eights, 6 threes, 3 ones, nothing else.
_TARGET = load_digits().target
SKEWED = ([int(i) for i in np.flatnonzero(_TARGET == 8)[:30]] + [int(i) for i in np.flatnonzero(_TARGET == 3)[:6]]
          + [int(i) for i in np.flatnonzero(_TARGET == 1)[:3]])


@pytest.fixture(scope="module")
def skewed(tmp_path_factory):
    return digits_folder(tmp_path_factory.mktemp("skewed") / "stolen", SKEWED, num_shards=3)


def test_each_epoch_gives_every_present_class_an_equal_share_by_hand():
    # 6 of class 0, 1 of class 1, 1 of class 2: 8 records, 3 classes present, epochs of 6 = 2 per class.
    draw = EpochDraw(np.array([0, 0, 0, 0, 0, 0, 1, 2]), seed=7)
    assert draw.epoch_size == 6 and quotas(3, 6) == [2, 2, 2] and quotas(3, 7) == [3, 2, 2]
    for epoch in range(5):
        copies = draw.copies(epoch)
        assert copies.sum() == 6
        assert copies[6] == 2 and copies[7] == 2  # the single images are repeated
        assert sorted(copies[:6]) == [0, 0, 0, 0, 1, 1]  # two of the six, each once
    np.testing.assert_array_equal(draw.copies(3), EpochDraw(draw.labels, seed=7).copies(3))  # a function of (seed, e)


def test_over_the_epochs_every_image_of_a_large_class_is_used():
    labels = np.array([0] * 40 + [1] * 4 + [2] * 2)
    draw = EpochDraw(labels, seed=0)
    used = np.zeros(len(labels), bool)
    for epoch in range(12):
        copies = draw.copies(epoch)
        assert copies[:40].sum() == copies[40:44].sum() == copies[44:].sum() == 15
        used |= copies > 0
    assert used.all()  # a balance fixed once (copycat-balance) keeps 15 of the 40 and never shows the other 25
    assert not np.array_equal(draw.copies(0), draw.copies(1))


def test_sqrt_gives_each_class_a_share_by_the_root_of_its_count_by_hand():
    # counts 100, 25, 4 → roots 10, 5, 2 (of 17) → an epoch of 34 splits 20, 10, 4; of 30: 17.6, 8.8, 3.5 → 18, 9, 3
    assert tempered_quotas(np.array([100, 25, 4]), 34, 0.5) == [20, 10, 4]
    assert tempered_quotas(np.array([100, 25, 4]), 30, 0.5) == [18, 9, 3]
    assert tempered_quotas(np.array([100, 25, 4]), 30, 0.0) == quotas(3, 30)
    labels = np.array([0] * 100 + [1] * 25 + [2] * 4)
    draw = EpochDraw(labels, seed=1, power=0.5)
    assert draw.epoch_size == 129 and draw.class_quotas() == tempered_quotas(np.array([100, 25, 4]), 129, 0.5)
    used = np.zeros(len(labels), bool)
    for epoch in range(4):
        copies = draw.copies(epoch)
        assert [copies[:100].sum(), copies[100:125].sum(), copies[125:].sum()] == draw.class_quotas() == [76, 38, 15]
        used |= copies > 0
    assert used.all()  # the large class still takes turns: every label is used
    assert draw.summary(3)["mode"] == "sqrt" and EpochDraw(labels, seed=1).summary(3)["mode"] == "resample"


def test_the_labels_are_read_in_listed_shard_order(skewed):
    folder = open_folder(skewed, LABELED_IMAGE)
    labels = read_labels(list(folder.shards))
    in_order = [r["label"] for r in read_records(skewed, LABELED_IMAGE)]  # shard by shard, as listed
    assert labels.tolist() == in_order and len(folder.shards) == 3
    assert Counter(labels.tolist()) == {8: 30, 3: 6, 1: 3}


def _stream(folder, draw, start_step=0, take=None, seed=3):
    data = lake_dataset([folder], SIZE, 1, training=True, seed=seed, deterministic=True, start_step=start_step,
                        draw=draw)
    rows = []
    for image, label in data.take(take if take is not None else draw.epoch_size):
        rows.append((hashlib.sha1(image.numpy().tobytes()).hexdigest(), int(label.numpy()[0])))
    return rows


def test_the_training_input_reads_each_epochs_balanced_draw_and_resumes_where_it_stopped(skewed):
    folder = open_folder(skewed, LABELED_IMAGE)
    draw = EpochDraw(read_labels(list(folder.shards)), seed=3)
    assert draw.epoch_size == 39
    three_epochs = _stream(folder, draw, take=3 * 39)
    eights_seen = set()
    for e in range(3):
        epoch = three_epochs[e * 39:(e + 1) * 39]
        assert Counter(label for _, label in epoch) == {8: 13, 3: 13, 1: 13}
        eights_seen |= {image for image, label in epoch if label == 8}
    assert len(eights_seen) > 13  # later epochs show eights the first one left out
    assert len({image for image, label in three_epochs if label == 1}) == 3
    assert _stream(folder, draw, take=3 * 39) == three_epochs  # the same seed reads the same
    assert _stream(folder, draw, start_step=50, take=3 * 39 - 50) == three_epochs[50:]  # a resumed run
    assert _stream(folder, EpochDraw(draw.labels, seed=4), seed=4, take=39) != three_epochs[:39]


def _config(folder, output, **overrides):
    values = dict(model="alexnet", train=[folder], output=str(output), input_size=SIZE, epochs=2, batch_size=13,
                  lr=0.02, width=1 / 16, verbose=0, strategy="one_device", class_balance="resample", seed=5)
    return TrainConfig(**{**values, **overrides})


def test_copycat_train_resamples_records_it_and_repeats_itself(skewed, tmp_path):
    metrics = train(_config(skewed, tmp_path / "a"))
    assert metrics["class_balance"]["labels_per_class"] == [0, 3, 0, 6, 0, 0, 0, 0, 30, 0]
    assert metrics["class_balance"]["images_per_class_per_epoch"] == {1: 13, 3: 13, 8: 13}
    assert metrics["steps"] == 2 * 3  # epochs of 39 balanced images in batches of 13
    options = json.loads((tmp_path / "a" / "run_options.json").read_text())["options"]
    assert options["class_balance"] == "resample"
    again = train(_config(skewed, tmp_path / "b"))
    assert again["history"] == metrics["history"]
    with pytest.raises(CopycatError, match="class_balance: resample there, none now"):
        train(_config(skewed, tmp_path / "a", class_balance="none"))


def test_copycat_train_sqrt_gives_the_common_class_more_of_each_epoch(skewed, tmp_path):
    metrics = train(_config(skewed, tmp_path / "sqrt", class_balance="sqrt", epochs=1))
    # counts 3, 6, 30 → roots 1.73, 2.45, 5.48 of an epoch of 39: 7.0, 9.9, 22.1 → 7, 10, 22
    assert metrics["class_balance"]["images_per_class_per_epoch"] == {1: 7, 3: 10, 8: 22}
    assert metrics["class_balance"]["mode"] == "sqrt" and metrics["steps"] == 3


def test_an_unknown_mode_is_refused_by_name(skewed, tmp_path):
    with pytest.raises(CopycatError, match="--class_balance='oversample' is unknown"):
        train(_config(skewed, tmp_path / "x", class_balance="oversample"))


def test_the_input_pipeline_computes_the_same_draw_as_numpy():
    draw = EpochDraw(np.random.default_rng(0).integers(0, 7, 500) % 5 + (np.arange(500) < 3) * 5, seed=11)
    for epoch in (0, 1, 7, 123):
        np.testing.assert_array_equal(draw.copies_tensor(tf.constant(epoch, tf.int64)).numpy(), draw.copies(epoch))
