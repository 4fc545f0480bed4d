"""Output ownership: a stage writes only into an empty folder or one of its own outputs, never into its input."""

import json

import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.stage_output import MARKER, claim_output, glob_root, overlaps

PATTERNS = ("manifest.json", "images-*")


def test_an_empty_or_new_folder_is_claimed_with_a_marker_first(tmp_path):
    output = tmp_path / "new" / "npdd"
    claim_output(str(output), "build_npdd", own_patterns=PATTERNS)
    assert json.loads((output / MARKER).read_text()) == {"stage": "build_npdd"}


def test_a_folder_of_user_files_is_refused_and_left_untouched(tmp_path):
    user = tmp_path / "photos"
    user.mkdir()
    (user / "images-0001.jpg").write_bytes(b"a holiday photo")
    (user / "manifest.json").write_text("my own notes")
    with pytest.raises(CopycatError, match="files copycat did not write"):
        claim_output(str(user), "build_npdd", own_patterns=PATTERNS)
    assert sorted(p.name for p in user.iterdir()) == ["images-0001.jpg", "manifest.json"]
    assert (user / "manifest.json").read_text() == "my own notes"


def test_a_rerun_clears_only_its_own_files_and_temporaries(tmp_path):
    output = tmp_path / "balanced"
    claim_output(str(output), "balance", own_patterns=PATTERNS)
    for name in ("images-00000-of-00001.tfrecord", "manifest.json", "images-00000-of-00001.tfrecord.tmp", "notes.txt"):
        (output / name).write_text("x")
    (output / "beam-temp-123").mkdir()
    (output / "beam-temp-123" / "part").write_text("x")
    (output / "images-originals").mkdir()  # a user's folder whose name matches a shard pattern is not a shard
    (output / "images-originals" / "photo.jpg").write_text("x")
    claim_output(str(output), "balance", own_patterns=PATTERNS)
    assert sorted(p.name for p in output.iterdir()) == [MARKER, "images-originals", "notes.txt"]
    assert (output / "images-originals" / "photo.jpg").exists()


def test_another_stage_output_is_refused(tmp_path):
    output = tmp_path / "stolen"
    claim_output(str(output), "steal_labels", own_patterns=PATTERNS)
    (output / "images-00000-of-00001.tfrecord").write_text("labels")
    with pytest.raises(CopycatError, match="an output of steal_labels"):
        claim_output(str(output), "balance", own_patterns=PATTERNS)
    assert (output / "images-00000-of-00001.tfrecord").exists()


def test_a_folder_written_before_markers_is_recognised_by_its_manifest(tmp_path):
    output = tmp_path / "npdd"
    output.mkdir()
    (output / "manifest.json").write_text(json.dumps({"schema_version": 1, "stage": "build_npdd"}))
    (output / "images-00000-of-00001.tfrecord").write_text("x")
    claim_output(str(output), "build_npdd", own_patterns=PATTERNS)
    assert sorted(p.name for p in output.iterdir()) == [MARKER]


@pytest.mark.parametrize("stage, sign", [("train", "metrics.json"), ("prepare_problem", "tdd/manifest.json"),
                                         ("experiment", "experiment.json"), ("report", "index.html")])
def test_stage_outputs_without_a_manifest_are_recognised_by_their_own_files(tmp_path, stage, sign):
    output = tmp_path / "old"
    (output / sign).parent.mkdir(parents=True, exist_ok=True)
    (output / sign).write_text("{}")
    claim_output(str(output), stage, clear=False)
    assert (output / sign).exists() and (output / MARKER).exists()
    with pytest.raises(CopycatError):
        claim_output(str(tmp_path / "old"), "balance" if stage != "balance" else "train")


def test_a_folder_written_before_markers_by_another_stage_is_refused(tmp_path):
    output = tmp_path / "npdd"
    output.mkdir()
    (output / "manifest.json").write_text(json.dumps({"schema_version": 1, "stage": "build_npdd"}))
    with pytest.raises(CopycatError, match="an output of build_npdd"):
        claim_output(str(output), "balance", own_patterns=PATTERNS)
    assert (output / "manifest.json").exists()


@pytest.mark.parametrize("output, source, overlapping", [
    ("/data/x", "/data/x", True), ("/data/x/out", "/data/x", True), ("/data", "/data/x", True),
    ("/data/xy", "/data/x", False), ("gs://b/lake/npdd", "gs://b/lake/npdd/", True), ("gs://b/a", "gs://b/ab", False),
])
def test_overlap_means_same_or_nested(output, source, overlapping):
    assert overlaps(output, source) is overlapping


def test_input_equal_to_output_is_refused_before_anything_is_written(tmp_path):
    folder = tmp_path / "lake" / "stolen"
    with pytest.raises(CopycatError, match="overlaps the input --input"):
        claim_output(str(folder), "balance", [("--input", str(folder))])
    assert not folder.exists()


def test_a_symlinked_output_into_the_input_is_refused(tmp_path):
    real = tmp_path / "photos"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(CopycatError, match="overlaps"):
        claim_output(str(tmp_path / "link"), "build_npdd", [("--source", str(real))])


@pytest.mark.parametrize("pattern, root", [
    ("/data/photos/*.jpg", "/data/photos"), ("/data/photos/**", "/data/photos"), ("/data/p?/x.jpg", "/data"),
    ("gs://bucket/images/**", "gs://bucket/images"), ("/data/one.jpg", "/data/one.jpg"),
])
def test_glob_root_is_the_folder_before_the_first_wildcard(pattern, root):
    assert glob_root(pattern) == root
