"""prepare_problem: digits, folder: and tfds: problems written as disjoint OL splits."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from beam_pipelines.prepare_problem import PrepareProblemConfig, run
from copycat_tf.errors import CopycatError
from copycat_tf.problems import get_problem
from tests import binaries
from tests.beam_pipelines.conftest import encode, photo
from tests.conftest import make_pixels
from tfrecords_schema import LABELED_IMAGE, read_manifest, read_records


def _ids(folder):
    return [r["id"] for r in read_records(folder, LABELED_IMAGE)]


def test_digits_splits_are_disjoint_and_complete(tmp_path):
    manifests = run(PrepareProblemConfig(problem="digits", output=str(tmp_path)))
    ids = {split: _ids(str(tmp_path / split)) for split in ("odd", "pdd", "tdd")}
    assert not set(ids["odd"]) & set(ids["pdd"]) and not set(ids["odd"]) & set(ids["tdd"])
    assert not set(ids["pdd"]) & set(ids["tdd"])
    kept = sum(len(v) for v in ids.values())
    dropped = sum(m.counts["cross_split_duplicates"] + m.counts["within_split_duplicates"] for m in manifests.values())
    assert kept + dropped == 1797  # every scikit-learn digit is somewhere, or counted as a copy
    for split, manifest in manifests.items():
        assert manifest.extra["class_names"] == [str(d) for d in range(10)]
        assert sum(manifest.extra["label_histogram"]) == len(ids[split])
        assert all(r["label_kind"] == "OL" and r["oracle_fingerprint"] == "" for r in read_records(str(tmp_path / split), LABELED_IMAGE))
    assert read_manifest(str(tmp_path / "odd")).stage == "prepare_problem"


def test_folder_problem_with_a_copy_across_splits_and_a_missing_split(tmp_path):
    root = tmp_path / "signs"
    files = {
        "odd/stop/a.png": encode(photo("coffee.png")), "odd/stop/b.png": encode(photo("chelsea.png")),
        "odd/yield/c.jpg": encode(photo("rocket.jpg"), "JPEG"), "odd/yield/copy.png": encode(photo("astronaut.png")),
        "tdd/stop/d.png": encode(photo("camera.png")), "tdd/yield/e.png": encode(photo("astronaut.png")),
        "tdd/yield/notes.txt": b"not an image, not even named like one",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    manifests = run(PrepareProblemConfig(problem=f"folder:{root}", output=str(tmp_path / "out")))
    assert set(manifests) == {"odd", "tdd"}  # no pdd folder: no PDD split
    assert manifests["odd"].extra["class_names"] == ["stop", "yield"]
    assert manifests["odd"].counts["cross_split_duplicates"] == 1  # the astronaut stays in the test split
    assert manifests["odd"].extra["label_histogram"] == [2, 1] and manifests["tdd"].extra["label_histogram"] == [1, 1]
    odd = {os.path.basename(r["source_key"]): r for r in read_records(str(tmp_path / "out" / "odd"), LABELED_IMAGE)}
    assert set(odd) == {"a.png", "b.png", "c.jpg"} and odd["c.jpg"]["format"] == "jpeg" and odd["c.jpg"]["label"] == 1


class CopycatTestDigits(tfds.core.GeneratorBasedBuilder):
    """A small labeled TFDS dataset made by the test, with train and test splits."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(8, 8, 3)), "label": tfds.features.ClassLabel(names=["even", "odd"])}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(range(0, 40)), "test": self._generate_examples(range(100, 110))}

    def _generate_examples(self, seeds):
        for seed in seeds:
            yield str(seed), {"image": make_pixels(seed, 8, 8), "label": seed % 2}


def test_tfds_problem_from_a_prepared_dataset(tmp_path):
    data_dir = str(tmp_path / "tfds")
    CopycatTestDigits(data_dir=data_dir).download_and_prepare()
    manifests = run(PrepareProblemConfig(problem="tfds:copycat_test_digits", tfds_data_dir=data_dir, output=str(tmp_path / "out")))
    odd, pdd, tdd = (set(_ids(str(tmp_path / "out" / s))) for s in ("odd", "pdd", "tdd"))
    assert len(odd) + len(pdd) == 40 and len(tdd) == 10
    assert odd and pdd and not odd & pdd
    assert manifests["tdd"].extra["class_names"] == ["even", "odd"]
    labels = {r["source_key"]: r["label"] for r in read_records(str(tmp_path / "out" / "tdd"), LABELED_IMAGE)}
    assert sorted(labels.values()) == [0] * 5 + [1] * 5


def test_unknown_problem_lists_the_known_ones():
    with pytest.raises(CopycatError, match="known problems: digits, glyphs, DIG10, SHN10, GOC9, ACT101, FER7, PED2, SIG30"):
        get_problem("MNIST")


def test_tfds_problem_that_is_not_prepared_says_how(tmp_path):
    with pytest.raises(CopycatError, match="not prepared .*tfds build mnist"):
        get_problem("DIG10", tfds_data_dir=str(tmp_path))


def test_binary_prepares_digits(tmp_path):
    result = binaries.run("copycat_bin.prepare_problem", ["--problem=digits", f"--output={tmp_path}"],
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "problem digits written to" in result.stdout
    assert np.sum(read_manifest(str(tmp_path / "tdd")).extra["label_histogram"]) > 500
