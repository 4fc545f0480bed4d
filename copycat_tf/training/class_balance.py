"""Class balance while training (``copycat-train --class_balance``): a fresh balanced draw in every epoch.

Stolen labels are skewed: natural images fall mostly into a few of the target's classes. The paper's
answer, ``copycat-balance``, fixes one balanced sample before training: it replicates the rare classes and
throws away the images of the common ones beyond the quota, so labels that were paid for are never seen.
``resample`` keeps the quota per epoch but draws it anew each epoch (issue #14, the "use every paid
label" lever): every present class gets an equal share of the epoch, rare images are repeated, and the
images of a large class take turns, so over the epochs every stolen label is used. The draw of epoch e
is a function of (seed, e) alone, so a killed and resumed run reads what an uninterrupted one reads.

Per epoch a class with ``n`` images and a quota of ``q`` gives each image ``q // n`` copies and one more
to ``q % n`` of them (the replication/elimination rule of ``copycat-balance``); which ones get the extra
copy moves on every epoch through a seeded order of the class, so the images take turns.
"""

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from tfrecords_schema import LABELED_IMAGE
from tfrecords_schema.tfdata import parse_function



def quotas(num_present: int, total: int) -> list[int]:
    """Images per present class in one epoch of ``total`` images (the first classes take the remainder)."""
    return [total // num_present + (1 if c < total % num_present else 0) for c in range(num_present)]


def tempered_quotas(counts: np.ndarray, total: int, power: float) -> list[int]:
    """Images per present class in one epoch of ``total``, in proportion to count ** power (largest
    remainders first, ties to the lower class id): power 0 is :func:`quotas`, 1 the stolen frequencies."""
    weights = np.asarray(counts, np.float64) ** power
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(np.int64)
    for c in np.argsort(-(exact - shares), kind="stable")[: total - int(shares.sum())]:
        shares[c] += 1
    return shares.tolist()


@dataclasses.dataclass(frozen=True)
class EpochDraw:
    """Which record is read how many times in each epoch, from the training labels and the seed."""

    labels: np.ndarray  # the class id of every training record, in the folders' listed shard order
    seed: int
    power: float = 0.0  # a class's share of an epoch ∝ its labels ** power (0: equal shares; sqrt mode: 0.5)

    @functools.cached_property
    def present(self) -> np.ndarray:
        return np.unique(self.labels)

    @property
    def epoch_size(self) -> int:
        """Images in one epoch: the records, less the remainder that does not split evenly over the classes."""
        present = len(self.present)
        return (len(self.labels) // present) * present

    @functools.cached_property
    def _plan(self) -> dict[str, np.ndarray]:
        """Per record, computed once: its class's size n, its rank in a seeded order of the class, the copies
        every image of the class gets (quota // n) and how many of them get one more each epoch (quota % n)."""
        plan = {name: np.zeros(len(self.labels), np.int64) for name in ("size", "rank", "base", "extra")}
        for label, quota in zip(self.present, self.class_quotas()):
            order = np.random.default_rng([int(self.seed), int(label), 0x5EED]).permutation(
                np.flatnonzero(self.labels == label))
            n = len(order)
            plan["size"][order], plan["rank"][order] = n, np.arange(n)
            plan["base"][order], plan["extra"][order] = quota // n, quota % n
        return plan

    def class_quotas(self) -> list[int]:
        """Images of each present class in every epoch."""
        if not self.power:
            return quotas(len(self.present), self.epoch_size)
        counts = np.array([np.count_nonzero(self.labels == label) for label in self.present])
        return tempered_quotas(counts, self.epoch_size, self.power)

    def copies(self, epoch: int) -> np.ndarray:
        """Copies of each record (int64, one per record, summing to ``epoch_size``) in epoch ``epoch``.

        A class of ``n`` images with a quota of ``q`` gives every image ``q // n`` copies and one more to
        ``q % n`` of them: a window that moves on by ``q % n`` each epoch through a seeded order of the
        class, so the images take turns and each is used within ``ceil(n / (q % n))`` epochs.
        """
        p = self._plan
        return p["base"] + (np.mod(p["rank"] - int(epoch) * p["extra"], p["size"]) < p["extra"])

    def copies_tensor(self, epoch: tf.Tensor) -> tf.Tensor:
        """:meth:`copies` as TensorFlow ops on constants (no Python in the input pipeline)."""
        p = {name: tf.constant(values) for name, values in self._plan.items()}
        window = tf.math.floormod(p["rank"] - tf.cast(epoch, tf.int64) * p["extra"], p["size"])
        return p["base"] + tf.cast(window < p["extra"], tf.int64)

    def summary(self, num_classes: int) -> dict:
        """What metrics.json records: the labels per class and each present class's share of an epoch."""
        present = self.present
        return {"mode": "sqrt" if self.power else "resample",
                "labels_per_class": np.bincount(self.labels, minlength=num_classes).tolist(),
                "images_per_class_per_epoch": dict(zip((int(c) for c in present), self.class_quotas())),
                "epoch_size": self.epoch_size}


def read_labels(shards: list[str]) -> np.ndarray:
    """The label of every record of ``shards``, in order (one pass that parses, but does not decode, images)."""
    if not shards:
        return np.zeros(0, np.int64)
    parse = parse_function(LABELED_IMAGE)
    labels = tf.data.TFRecordDataset(shards).map(lambda s: parse(s)["label"], num_parallel_calls=tf.data.AUTOTUNE,
                                                 deterministic=True)
    batches = list(labels.batch(4096).as_numpy_iterator())
    return np.concatenate(batches).astype(np.int64) if batches else np.zeros(0, np.int64)
