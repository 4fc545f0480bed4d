"""Issue #12, finding 1: no stage deletes or overwrites what copycat did not write, or its own input.

Each case is one the red-team pass reproduced on main: the user's files were deleted before any check.
"""

import pytest

from beam_pipelines import balance, build_npdd, pool_transforms, steal_labels
from copycat_tf.errors import CopycatError
from copycat_tf.oracles import OracleSpec
from tests.conftest import image_record, labeled_record
from tfrecords_schema import IMAGE, LABELED_IMAGE, Manifest, list_shards, write_manifest, write_shards


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def user_photos(tmp_path, write_files):
    from tests.beam_pipelines.conftest import encode, photo

    folder = write_files({f"images-{i:04d}.jpg": encode(photo(name), "JPEG") for i, name in
                          enumerate(("coffee.png", "chelsea.png"))}, "photos")
    (folder / "manifest.json").write_text("the user's own notes")
    return folder


@pytest.fixture
def labeled_folder(tmp_path):
    folder = tmp_path / "stolen"
    write_shards(str(folder), LABELED_IMAGE, [labeled_record(i, label=i % 2) for i in range(6)], num_shards=2)
    write_manifest(str(folder), Manifest(stage="steal_labels", record_kind="labeled_image", counts={"labeled": 6},
                                         extra={"num_classes": 2, "label_histogram": [3, 3]}))
    return folder


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "npdd"
    write_shards(str(folder), IMAGE, [image_record(i, 16, 16) for i in range(4)], num_shards=1)
    write_manifest(str(folder), Manifest(stage="build_npdd", record_kind="image", counts={"kept": 4}))
    return folder


def test_build_npdd_into_its_own_source_keeps_the_photos(user_photos):
    before = _snapshot(user_photos)
    config = build_npdd.BuildNpddConfig(sources=[f"dir:{user_photos}"], output=str(user_photos))
    with pytest.raises(CopycatError, match="overlaps the input"):
        build_npdd.run(config)
    assert _snapshot(user_photos) == before


def test_build_npdd_into_a_folder_of_user_files_is_refused(user_photos, tmp_path):
    before = _snapshot(user_photos)
    config = build_npdd.BuildNpddConfig(sources=["bundled"], bundled_crops=2, output=str(user_photos))
    with pytest.raises(CopycatError, match="files copycat did not write"):
        build_npdd.run(config)
    assert _snapshot(user_photos) == before


def test_balance_with_input_as_output_keeps_the_input(labeled_folder):
    before = _snapshot(labeled_folder)
    with pytest.raises(CopycatError, match="overlaps the input --input"):
        balance.run(balance.BalanceConfig(input=str(labeled_folder), output=str(labeled_folder), per_class=3))
    assert _snapshot(labeled_folder) == before
    assert len(list_shards(str(labeled_folder))) == 2


def test_steal_labels_with_images_as_output_keeps_the_images(image_folder, tmp_path):
    before = _snapshot(image_folder)
    config = steal_labels.StealLabelsConfig(images=str(image_folder), oracle=OracleSpec(str(tmp_path / "no-oracle")),
                                            output=str(image_folder))
    with pytest.raises(CopycatError, match="overlaps the input --images"):
        steal_labels.run(config)
    assert _snapshot(image_folder) == before


def test_a_pool_in_a_user_folder_is_refused(image_folder, user_photos):
    before = _snapshot(user_photos)
    config = pool_transforms.PoolConfig(images=str(image_folder), output=str(user_photos), variants=["grayscale"])
    with pytest.raises(CopycatError, match="--pool"):
        pool_transforms.run(config)
    assert _snapshot(user_photos) == before


def test_a_stage_reruns_in_its_own_folder_but_not_in_another_stages(labeled_folder, image_folder, tmp_path):
    output = tmp_path / "balanced"
    config = balance.BalanceConfig(input=str(labeled_folder), output=str(output), per_class=2)
    balance.run(config)
    first = _snapshot(output)
    balance.run(config)
    second = _snapshot(output)
    assert second.keys() == first.keys()
    assert {k: v for k, v in second.items() if k != "manifest.json"} == {k: v for k, v in first.items() if k != "manifest.json"}
    steal = steal_labels.StealLabelsConfig(images=str(image_folder), oracle=OracleSpec(str(tmp_path / "no-oracle")),
                                           output=str(output))
    with pytest.raises(CopycatError, match="an output of balance"):
        steal_labels.run(steal)
    assert _snapshot(output) == second
