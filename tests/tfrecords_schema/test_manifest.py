"""manifest.json: round trip, lineage, and refusal of missing, malformed or other-version manifests."""

import json

import pytest

from tfrecords_schema import (
    IMAGE,
    SCHEMA_VERSION,
    LakeError,
    Manifest,
    ManifestError,
    SchemaError,
    SchemaVersionError,
    input_entry,
    open_folder,
    read_manifest,
    write_manifest,
    write_shards,
)
from tfrecords_schema import LABELED_IMAGE
from tests.conftest import image_record


def _manifest(**overrides) -> Manifest:
    values = dict(
        stage="build_npdd",
        record_kind="image",
        options={"max_side": 256, "source": ["bundled", "dir:/x/*.jpg"]},
        counts={"seen": 10, "kept": 7, "exact_duplicates": 1, "near_duplicates": 1, "rejected": 1},
        extra={"rejected_by_reason": {"truncated": 1}},
    )
    values.update(overrides)
    return Manifest(**values)


def test_round_trip(tmp_path):
    written = _manifest()
    write_manifest(str(tmp_path), written)
    read = read_manifest(str(tmp_path))
    assert read == written
    assert read.schema_version == SCHEMA_VERSION
    assert read.created  # stamped at write time


def test_inputs_carry_the_whole_lineage(tmp_path):
    npdd, stolen = tmp_path / "npdd", tmp_path / "stolen"
    write_manifest(str(npdd), _manifest())
    write_manifest(
        str(stolen),
        _manifest(stage="steal_labels", record_kind="labeled_image", inputs=[input_entry(str(npdd), read_manifest(str(npdd)))]),
    )
    lineage = read_manifest(str(stolen)).inputs[0]
    assert lineage["folder"] == str(npdd)
    assert lineage["manifest"]["counts"]["kept"] == 7


def test_other_version_names_both_versions_and_the_folder(tmp_path):
    write_manifest(str(tmp_path), _manifest())
    path = tmp_path / "manifest.json"
    data = json.loads(path.read_text())
    data["schema_version"] = SCHEMA_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(SchemaVersionError) as error:
        read_manifest(str(tmp_path))
    message = str(error.value)
    assert str(tmp_path) in message
    assert f"version {SCHEMA_VERSION + 1}" in message and f"reads version {SCHEMA_VERSION}" in message


def test_missing_manifest_names_the_folder(tmp_path):
    with pytest.raises(ManifestError, match=f"{tmp_path} has no manifest.json"):
        read_manifest(str(tmp_path))


def test_malformed_manifest_is_refused(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(str(tmp_path))


def test_manifest_missing_keys_is_refused_by_name(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "stage": "x"}))
    with pytest.raises(ManifestError, match="record_kind, options, inputs, counts"):
        read_manifest(str(tmp_path))


@pytest.mark.parametrize("counts", [{"kept": -1}, {"kept": 1.5}, {"kept": "3"}])
def test_bad_counts_are_refused(tmp_path, counts):
    with pytest.raises(ManifestError, match="counts"):
        write_manifest(str(tmp_path), _manifest(counts=counts))


def test_unknown_record_kind_is_refused_at_write(tmp_path):
    with pytest.raises(SchemaError, match="unknown record kind 'pictures'"):
        write_manifest(str(tmp_path), _manifest(record_kind="pictures"))


def test_open_folder_checks_kind_and_lists_shards(tmp_path):
    write_shards(str(tmp_path), IMAGE, [image_record(i) for i in range(3)], num_shards=2)
    write_manifest(str(tmp_path), _manifest())
    folder = open_folder(str(tmp_path), IMAGE)
    assert [s.rsplit("/", 1)[-1] for s in folder.shards] == ["images-00000-of-00002.tfrecord", "images-00001-of-00002.tfrecord"]
    with pytest.raises(LakeError, match="holds image records .* labeled_image records are needed"):
        open_folder(str(tmp_path), LABELED_IMAGE)
