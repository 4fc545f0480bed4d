"""balance: exact per-class counts by seeded replication and elimination, deterministic for a seed."""

import collections

import pytest

from beam_pipelines.balance import BalanceConfig, copies_of, run, targets
from copycat_tf.errors import CopycatError
from tests import binaries
from tests.conftest import labeled_record
from tfrecords_schema import LABELED_IMAGE, Manifest, list_shards, read_records, write_manifest, write_shards

BEFORE = [12, 3, 1, 0]  # class 3 never seen


@pytest.fixture(scope="module")
def stolen(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("stolen"))
    records, seed = [], 0
    for label, count in enumerate(BEFORE):
        for _ in range(count):
            records.append(labeled_record(seed, label=label))
            seed += 1
    write_shards(folder, LABELED_IMAGE, records, num_shards=2)
    write_manifest(folder, Manifest(stage="steal_labels", record_kind="labeled_image", counts={"labeled": len(records)},
                                    extra={"num_classes": 4, "label_histogram": BEFORE}))
    return folder


def test_targets_and_copies_add_up():
    assert targets(3, per_class=7, total=None) == [7, 7, 7]
    assert targets(3, per_class=None, total=16) == [6, 5, 5]
    for available in (1, 3, 5, 12):
        for target in (1, 5, 12, 17):
            assert sum(copies_of(rank, available, target) for rank in range(available)) == target
    with pytest.raises(CopycatError, match="exactly one"):
        targets(3, per_class=2, total=6)


def _histogram(folder):
    return collections.Counter(r["label"] for r in read_records(folder, LABELED_IMAGE))


def test_counts_are_exact_with_replication_and_elimination(stolen, tmp_path):
    manifest = run(BalanceConfig(input=stolen, output=str(tmp_path / "b"), per_class=5, allow_missing_classes=True))
    assert _histogram(str(tmp_path / "b")) == {0: 5, 1: 5, 2: 5}
    assert manifest.extra["label_histogram"] == [5, 5, 5, 0]
    assert manifest.extra["label_histogram_before"] == BEFORE
    per_image = collections.Counter(r["id"] for r in read_records(str(tmp_path / "b"), LABELED_IMAGE) if r["label"] == 1)
    assert sorted(per_image.values()) == [1, 2, 2]  # 5 from 3 images: every image twice, one of them once less
    eliminated = [r for r in read_records(str(tmp_path / "b"), LABELED_IMAGE) if r["label"] == 0]
    assert len({r["id"] for r in eliminated}) == 5  # a subset, no repeats
    assert manifest.counts == {"records_before": 16, "records": 15, "distinct_images": 9}


def test_same_seed_same_output_other_seed_other_subset(stolen, tmp_path):
    def shards(seed, name):
        run(BalanceConfig(input=stolen, output=str(tmp_path / name), per_class=4, seed=seed, allow_missing_classes=True))
        return [open(p, "rb").read() for p in list_shards(str(tmp_path / name))]

    assert shards(1, "a") == shards(1, "b")

    def kept_of_class_0(name):
        return {r["id"] for r in read_records(str(tmp_path / name), LABELED_IMAGE) if r["label"] == 0}

    shards(2, "c")
    assert kept_of_class_0("a") != kept_of_class_0("c")


def test_total_splits_evenly(stolen, tmp_path):
    manifest = run(BalanceConfig(input=stolen, output=str(tmp_path / "t"), total=13, allow_missing_classes=True))
    assert manifest.extra["label_histogram"] == [5, 4, 4, 0]  # over the 3 present classes: 13 // 3, one more for the first


def test_a_missing_class_is_named(stolen, tmp_path):
    with pytest.raises(CopycatError, match="no image of class 3 .*--allow_missing_classes"):
        run(BalanceConfig(input=stolen, output=str(tmp_path / "m"), per_class=5))


def test_binary_balances_and_prints_the_counts(stolen, tmp_path):
    import os

    result = binaries.run("copycat_bin.balance", [f"--input={stolen}", "--per_class=4", "--allow_missing_classes",
                                                  f"--output={tmp_path / 'b'}"],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "[4, 4, 4, 0] per class, from [12, 3, 1, 0]" in result.stdout
    assert _histogram(str(tmp_path / "b")) == {0: 4, 1: 4, 2: 4}
