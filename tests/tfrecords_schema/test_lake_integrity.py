"""Damaged lakes end in one LakeError naming the shard or the folder, never in a partial read or a traceback.

Every reader of lake folders is covered: ``read_records`` (evaluation, relevance), ``open_folder``,
the training input's count (``record_count``, ``lake_dataset``), Beam's ``lake_io.ReadRecords``, and
the binaries (one line, exit 2). Manifests are checked against their layout when they are read.
"""

import json
import os
import pathlib
import shutil

import apache_beam as beam
import pytest
import tensorflow as tf

from beam_pipelines import lake_io
from beam_pipelines.runner import DIRECT, make_pipeline
from copycat_tf.training.input import lake_dataset, record_count
from tests import binaries
from tests.conftest import labeled_record
from tfrecords_schema import (
    LABELED_IMAGE,
    LakeError,
    Manifest,
    ManifestError,
    list_shards,
    open_folder,
    read_manifest,
    read_records,
    write_manifest,
    write_shards,
)
from tfrecords_schema.manifest import RECORD_COUNT_KEY
from tfrecords_schema.shards import count_records
from tfrecords_schema.tfds_features import write_tfds_metadata

RECORDS, SHARDS = 100, 4
REPO = pathlib.Path(__file__).resolve().parents[2]


def _records():
    return [labeled_record(seed, label=seed % 3) for seed in range(RECORDS)]


def _lengths(folder):
    return [count_records(path) for path in list_shards(folder)]


def _finish(folder, in_manifest=True):
    """A manifest like prepare_problem's; shard lengths in the manifest, or only in the TFDS metadata."""
    lengths = _lengths(folder)
    extra = {"num_classes": 3, "class_names": ["a", "b", "c"]}
    if in_manifest:
        extra["shard_lengths"] = lengths
    else:
        write_tfds_metadata(folder, LABELED_IMAGE, ["a", "b", "c"], shard_lengths={"images": lengths})
    write_manifest(folder, Manifest(stage="prepare_problem", record_kind="labeled_image",
                                    counts={"kept": sum(lengths)}, extra=extra))
    return lengths


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("pristine") / "tdd")
    write_shards(folder, LABELED_IMAGE, _records(), num_shards=SHARDS)
    lengths = _finish(folder)
    assert sum(lengths) == RECORDS and all(lengths)
    return folder


@pytest.fixture
def lake(pristine, tmp_path):
    """A fresh copy of a finished folder to damage."""
    folder = str(tmp_path / "tdd")
    shutil.copytree(pristine, folder)
    return folder


def _shard(folder, index=1):
    return list_shards(folder)[index]


def _drop_records(path, keep):
    """Rewrite a shard with only its first ``keep`` records: a cut at a record boundary reads as a short shard."""
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())[:keep]
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)


def _truncate(path, fraction=0.6):
    data = pathlib.Path(path).read_bytes()
    pathlib.Path(path).write_bytes(data[: int(len(data) * fraction)])


def _flip_bit(path):
    data = bytearray(pathlib.Path(path).read_bytes())
    data[len(data) // 2] ^= 0x10
    pathlib.Path(path).write_bytes(bytes(data))


def _edit_manifest(folder, change):
    path = pathlib.Path(folder) / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


# ---------------------------------------------------------------------------------------------
# read_records (evaluation and relevance read through it)


def test_a_pristine_folder_reads_whole(lake):
    assert len(list(read_records(lake, LABELED_IMAGE))) == RECORDS
    assert record_count(open_folder(lake, LABELED_IMAGE)) == RECORDS


@pytest.mark.parametrize("damage", [_truncate, _flip_bit], ids=["truncated", "bit_flipped"])
def test_a_torn_or_altered_shard_is_a_lake_error_naming_it(lake, damage):
    shard = _shard(lake)
    damage(shard)
    with pytest.raises(LakeError, match=f"shard {shard} is damaged"):
        list(read_records(lake, LABELED_IMAGE))


def test_a_shard_cut_at_a_record_boundary_is_refused_not_read_short(lake):
    shard = _shard(lake, 2)
    expected = _lengths(lake)[2]
    _drop_records(shard, expected - 5)
    with pytest.raises(LakeError, match=f"shard {shard} holds {expected - 5} records, but .* says {expected}"):
        list(read_records(lake, LABELED_IMAGE))


def test_no_record_of_a_short_shard_is_handed_out(lake):
    _drop_records(_shard(lake, 0), 1)
    handed_out = []
    with pytest.raises(LakeError):
        for record in read_records(lake, LABELED_IMAGE):
            handed_out.append(record)
    assert handed_out == []


def test_an_empty_shard_is_refused_when_the_folder_is_opened(lake):
    shard = _shard(lake)
    pathlib.Path(shard).write_bytes(b"")
    with pytest.raises(LakeError, match=f"shard {shard} is empty \\(0 bytes\\)"):
        open_folder(lake, LABELED_IMAGE)
    with pytest.raises(LakeError, match="is empty"):
        list(read_records(lake, LABELED_IMAGE))


def test_a_stray_extra_shard_set_is_refused(lake):
    shutil.copy(_shard(lake, 0), os.path.join(lake, "images-00000-of-00001.tfrecord"))
    with pytest.raises(LakeError, match="more than one shard set: images-\\*-of-00001 .*images-\\*-of-00004"):
        open_folder(lake, LABELED_IMAGE)
    with pytest.raises(LakeError, match="more than one shard set"):
        list(read_records(lake, LABELED_IMAGE))


def test_missing_shards_are_refused(lake):
    for path in list_shards(lake):
        os.remove(path)
    with pytest.raises(LakeError, match=f"{lake} holds no shard file, but .* lists {SHARDS} shards"):
        open_folder(lake, LABELED_IMAGE)


def test_a_shard_set_of_another_run_is_refused(lake):
    for path in list_shards(lake):
        os.remove(path)
    write_shards(lake, LABELED_IMAGE, _records()[:60], num_shards=2)  # a complete set, but not the manifest's
    with pytest.raises(LakeError, match=f"{lake} holds 2 shard files, but .* lists {SHARDS} shards"):
        open_folder(lake, LABELED_IMAGE)


def test_the_tfds_metadata_gives_shard_lengths_when_the_manifest_does_not(tmp_path):
    folder = str(tmp_path / "odd")
    write_shards(folder, LABELED_IMAGE, _records(), num_shards=SHARDS)
    lengths = _finish(folder, in_manifest=False)
    assert open_folder(folder, LABELED_IMAGE).shard_lengths == tuple(lengths)
    shard = _shard(folder, 3)
    _drop_records(shard, lengths[3] - 1)
    with pytest.raises(LakeError, match=f"shard {shard} holds {lengths[3] - 1} records"):
        list(read_records(folder, LABELED_IMAGE))


def test_a_folder_whose_manifest_gives_only_a_total_is_counted_first(tmp_path):
    folder = str(tmp_path / "stolen")
    write_shards(folder, LABELED_IMAGE, _records(), num_shards=SHARDS)
    write_manifest(folder, Manifest(stage="steal_labels", record_kind="labeled_image", counts={"labeled": RECORDS}))
    _drop_records(_shard(folder, 1), 0)
    handed_out = []
    with pytest.raises(LakeError, match=f"{folder} holds {RECORDS - _lengths_before(folder)} records .* says {RECORDS}"):
        for record in read_records(folder, LABELED_IMAGE):
            handed_out.append(record)
    assert handed_out == []


def _lengths_before(folder):
    """Records the emptied shard held: the total minus what the shards hold now."""
    return RECORDS - sum(_lengths(folder))


# ---------------------------------------------------------------------------------------------
# Manifests are checked against their layout on load


@pytest.mark.parametrize("change, key", [
    (lambda m: m.update(counts="100"), "counts must be an object"),
    (lambda m: m["counts"].update(kept="100"), "counts.kept must be a non-negative integer"),
    (lambda m: m["counts"].update(kept=-1), "counts.kept must be a non-negative integer"),
    (lambda m: m["counts"].update(kept=True), "counts.kept must be a non-negative integer"),
    (lambda m: m["extra"].update(shard_lengths="25,25,25,25"), "extra.shard_lengths must be a list"),
    (lambda m: m["extra"].update(shard_lengths=[25, 25, "25", 25]), "extra.shard_lengths must be a list"),
    (lambda m: m["extra"].update(num_shards=0), "extra.num_shards must be a positive integer"),
    (lambda m: m.update(schema_version="1"), "schema_version must be an integer"),
    (lambda m: m.update(record_kind="pictures"), "record_kind 'pictures' is not a record kind"),
    (lambda m: m.update(record_kind=3), "record_kind must be a non-empty string"),
    (lambda m: m.update(stage=""), "stage must be a non-empty string"),
    (lambda m: m.update(options=[]), "options must be an object"),
    (lambda m: m.update(extra="none"), "extra must be an object"),
    (lambda m: m.update(inputs={"folder": "x"}), "inputs must be a list"),
    (lambda m: m.update(inputs=[{"folder": 3}]), "inputs\\[0\\] must be an object"),
])
def test_a_malformed_manifest_is_one_manifest_error(lake, change, key):
    _edit_manifest(lake, change)
    with pytest.raises(ManifestError, match=key):
        read_manifest(lake)
    with pytest.raises(LakeError):
        open_folder(lake, LABELED_IMAGE)


def test_shard_lengths_that_contradict_the_counts_are_refused(lake):
    _edit_manifest(lake, lambda m: m["extra"].update(shard_lengths=[1, 0, 0, 0]))
    with pytest.raises(ManifestError, match="shard_lengths adds up to 1 records but counts.kept is 100"):
        read_manifest(lake)


def test_shard_lengths_that_contradict_num_shards_are_refused(lake):
    _edit_manifest(lake, lambda m: m["extra"].update(num_shards=3))
    with pytest.raises(ManifestError, match="lists 4 shards but extra.num_shards is 3"):
        read_manifest(lake)


def test_the_record_count_of_each_stage_is_documented():
    doc = (REPO / "docs" / "LAKE.md").read_text()
    for stage, key in RECORD_COUNT_KEY.items():
        assert f"| `{stage}` | `{key}` |" in doc, stage


# ---------------------------------------------------------------------------------------------
# Training input: counted from the files, not taken from the manifest


def test_edited_shard_lengths_do_not_change_the_number_of_steps(lake):
    lengths = _lengths(lake)
    edited = [1, lengths[0] + lengths[1] - 1, *lengths[2:]]  # still adds up to the counts
    _edit_manifest(lake, lambda m: m["extra"].update(shard_lengths=edited))
    folder = open_folder(lake, LABELED_IMAGE)
    with pytest.raises(LakeError, match=f"shard {folder.shards[0]} holds {lengths[0]} records, but .* says 1"):
        record_count(folder)


def test_training_input_refuses_a_damaged_folder_before_the_first_step(lake):
    shard = _shard(lake, 3)
    _flip_bit(shard)
    folder = open_folder(lake, LABELED_IMAGE)
    with pytest.raises(LakeError, match=f"shard {shard} is damaged"):
        record_count(folder)
    with pytest.raises(LakeError, match=f"shard {shard} is damaged"):
        lake_dataset([folder], input_size=8, batch_size=4, training=False)


# ---------------------------------------------------------------------------------------------
# Beam: lake_io.ReadRecords


def _beam_read(folder):
    shards = open_folder(folder, LABELED_IMAGE).shards
    with make_pipeline(DIRECT) as pipeline:
        pipeline | lake_io.ReadRecords(shards, LABELED_IMAGE) | beam.Map(lambda record: None)


def test_beam_reads_refuse_a_damaged_shard(lake):
    shard = _shard(lake, 0)
    _truncate(shard)
    with pytest.raises(LakeError, match=f"shard {shard} is damaged"):
        _beam_read(lake)


def test_beam_reads_refuse_a_short_shard(lake):
    shard = _shard(lake, 2)
    _drop_records(shard, 3)
    with pytest.raises(LakeError, match=f"shard {shard} holds 3 records"):
        _beam_read(lake)


def test_beam_reads_check_a_folder_total(tmp_path):
    folder = str(tmp_path / "npdd")
    write_shards(folder, LABELED_IMAGE, _records(), num_shards=2)
    write_manifest(folder, Manifest(stage="steal_labels", record_kind="labeled_image", counts={"labeled": RECORDS}))
    _drop_records(_shard(folder, 1), 2)
    with pytest.raises(LakeError, match=f"{folder} holds {RECORDS - _lengths_before(folder)} records, but its manifest says {RECORDS}"):
        _beam_read(folder)


# ---------------------------------------------------------------------------------------------
# The binaries: one line, exit 2


def test_evaluate_names_the_damaged_shard_in_one_line_and_exits_2(lake, tmp_path):
    shard = _shard(lake, 1)
    _drop_records(shard, 2)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = binaries.run("copycat_bin.evaluate", [f"--model={tmp_path / 'no-model'}", f"--test={lake}", "--bootstrap=0"],
                          env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"shard {shard} holds 2 records" in errors[0]
    assert "Traceback" not in result.stderr
