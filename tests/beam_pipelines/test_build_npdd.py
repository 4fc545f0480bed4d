"""build_npdd on DirectRunner: planted duplicates, hostile files, accounting, determinism, TFDS, bundled."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from beam_pipelines.build_npdd import BuildNpddConfig, run
from beam_pipelines.image_decode import normalize_image
from tests import binaries
from tests.beam_pipelines.conftest import DISTINCT, awkward_files, encode, hostile_files, photo
from tfrecords_schema import IMAGE, decode, list_shards, read_manifest, read_records, shard_for

K = 8  # the default --near_dup_bits


def _planted():
    """Files in two folders, and the truth: name → (kind, the name that must be kept in its place)."""
    a, b, truth = {}, {}, {}
    for i, name in enumerate(DISTINCT[:12]):
        stem = name.split(".")[0]
        (a if i % 2 else b)[f"distinct_{stem}.png"] = encode(photo(name))
        truth[f"distinct_{stem}.png"] = ("distinct", None)
    for name in DISTINCT[:3]:  # same pixels: identical bytes, and other bytes
        stem = name.split(".")[0]
        a[f"exactcopy_{stem}.png"] = encode(photo(name))
        b[f"exactresave_{stem}.png"] = encode(photo(name), compress_level=1)
        truth[f"exactcopy_{stem}.png"] = truth[f"exactresave_{stem}.png"] = ("exact", f"distinct_{stem}.png")
    for name in DISTINCT[3:7]:  # resized and re-encoded at low JPEG quality
        stem = name.split(".")[0]
        image = photo(name)
        a[f"nearhalf_{stem}.jpg"] = encode(image.resize((200, 150)), "JPEG", quality=30)
        b[f"nearthird_{stem}.jpg"] = encode(image.resize((140, 105)), "JPEG", quality=50)
        truth[f"nearhalf_{stem}.jpg"] = truth[f"nearthird_{stem}.jpg"] = ("near", f"distinct_{stem}.png")
    for name in ("coffee.png", "china.jpg", "flower.jpg"):  # the same scene, shifted: similar but distinct
        stem = name.split(".")[0]
        a[f"similar_{stem}.png"] = encode(photo(name, (180, 0, 580, 300)))
        truth[f"similar_{stem}.png"] = ("distinct", None)
    for name, (data, reason) in hostile_files().items():
        b[f"hostile_{name}"] = data
        truth[f"hostile_{name}"] = ("rejected", reason)
    # Same pixels tie on size and id, so the copy from the first source (folder a) is kept.
    folder_of = {**{n: "a" for n in a}, **{n: "b" for n in b}}
    for original in [n for n, (kind, _) in truth.items() if kind == "distinct"]:
        group = [original] + [n for n, (kind, o) in truth.items() if kind == "exact" and o == original]
        keeper = min(group, key=lambda n: (folder_of[n], n))
        for member in group:
            truth[member] = ("distinct", None) if member == keeper else ("exact", keeper)
        for n, (kind, o) in list(truth.items()):
            if kind == "near" and o == original:
                truth[n] = ("near", keeper)
    return a, b, truth


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    a, b, truth = _planted()
    for folder, files in (("a", a), ("b", b)):
        (root / folder).mkdir()
        for name, data in files.items():
            (root / folder / name).write_bytes(data)
    sources = [f"dir:{root / 'a'}", f"dir:{root / 'b'}"]
    manifest = run(BuildNpddConfig(sources=sources, output=str(root / "npdd"), num_shards=3))
    return root, truth, manifest


def _lines(folder, prefix):
    rows = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(prefix) and name.endswith(".jsonl"):
            with open(os.path.join(folder, name)) as handle:
                rows += [json.loads(line) for line in handle]
    return rows


def test_planted_set_is_what_it_claims(planted):
    """Guards the test data: copies are within K bits of their originals, distinct images are not."""
    root, truth, _ = planted
    hashes = {}
    for folder in ("a", "b"):
        for name in os.listdir(root / folder):
            if truth[name][0] != "rejected":
                hashes[name] = normalize_image((root / folder / name).read_bytes()).phash
    distinct = [n for n in hashes if truth[n][0] == "distinct"]
    for i, x in enumerate(distinct):
        for y in distinct[i + 1:]:
            assert (hashes[x] ^ hashes[y]).bit_count() > K, (x, y)
    for name, (kind, original) in truth.items():
        if kind == "near":
            assert (hashes[name] ^ hashes[original]).bit_count() <= K, name


def test_every_planted_duplicate_is_removed_and_no_distinct_image_merged(planted):
    root, truth, _ = planted
    kept = {os.path.basename(r["source_key"]) for r in read_records(str(root / "npdd"), IMAGE)}
    assert kept == {n for n, (kind, _) in truth.items() if kind == "distinct"}
    removed = {os.path.basename(d["removed_key"]): d for d in _lines(root / "npdd", "duplicates")}
    assert set(removed) == {n for n, (kind, _) in truth.items() if kind in ("exact", "near")}
    for name, row in removed.items():
        kind, original = truth[name]
        assert row["kind"] == kind
        assert os.path.basename(row["kept_key"]) == original
        assert (row["distance"] == 0) if kind == "exact" else (row["distance"] <= K)


def test_hostile_files_are_rejected_with_reasons(planted):
    root, truth, manifest = planted
    rejects = {os.path.basename(r["source_key"]): r["reason"] for r in _lines(root / "npdd", "rejects")}
    assert rejects == {n: reason for n, (kind, reason) in truth.items() if kind == "rejected"}
    assert manifest.extra["rejected_by_reason"] == {reason: 1 for reason in rejects.values()}


def test_accounting_identity_and_counts(planted):
    root, truth, manifest = planted
    counts = manifest.counts
    assert counts["seen"] == len(truth)
    assert counts["seen"] == counts["kept"] + counts["exact_duplicates"] + counts["near_duplicates"] + counts["rejected"]
    assert counts["exact_duplicates"] == sum(kind == "exact" for kind, _ in truth.values())
    assert counts["near_duplicates"] == sum(kind == "near" for kind, _ in truth.values())
    per_source = manifest.extra["per_source"]
    assert sum(row["seen"] for row in per_source.values()) == counts["seen"]
    assert read_manifest(str(root / "npdd")) == manifest


def test_shards_are_assigned_by_id_and_sorted(planted):
    root, _, manifest = planted
    shards = list_shards(str(root / "npdd"))
    assert len(shards) == 3
    total = 0
    for index, path in enumerate(shards):
        ids = [decode(IMAGE, s)["id"] for s in tf.data.TFRecordDataset(path).as_numpy_iterator()]
        assert ids == sorted(ids)
        assert all(shard_for(i, 3) == index for i in ids)
        total += len(ids)
    assert total == manifest.counts["kept"]


def test_output_loads_as_a_tfds_dataset(planted):
    root, _, manifest = planted
    builder = tfds.builder_from_directory(str(root / "npdd"))
    assert builder.info.splits["images"].num_examples == manifest.counts["kept"]
    example = next(iter(tfds.as_numpy(builder.as_dataset(split="images"))))
    assert example["image"].shape == (example["height"], example["width"], 3)
    assert max(example["height"], example["width"]) <= 400 and min(example["height"], example["width"]) <= 256


def test_shuffled_input_order_gives_identical_output(planted, tmp_path):
    root, _, _ = planted
    sources = [f"dir:{root / 'b'}", f"dir:{root / 'a'}"]  # the other order
    run(BuildNpddConfig(sources=sources, output=str(tmp_path / "npdd"), num_shards=3))
    for first, second in zip(list_shards(str(root / "npdd")), list_shards(str(tmp_path / "npdd"))):
        with open(first, "rb") as a, open(second, "rb") as b:
            assert a.read() == b.read()
    key = lambda row: row["removed_key"]  # noqa: E731
    assert sorted(_lines(root / "npdd", "duplicates"), key=key) == sorted(_lines(tmp_path / "npdd", "duplicates"), key=key)


def test_every_core_writes_the_bytes_of_the_one_process_run(planted, tmp_path):
    # issue #15: the worker processes change only the speed, never the output
    root, _, _ = planted
    sources = [f"dir:{root / 'a'}", f"dir:{root / 'b'}"]
    outputs = {}
    for workers in (1, 3):
        folder = tmp_path / f"npdd{workers}"
        manifest = run(BuildNpddConfig(sources=sources, output=str(folder), num_shards=3, workers=workers))
        shards = [open(path, "rb").read() for path in list_shards(str(folder))]
        reports = {prefix: sorted(json.dumps(row, sort_keys=True) for row in _lines(folder, prefix))
                   for prefix in ("duplicates", "rejects")}
        outputs[workers] = (shards, reports, manifest.counts, manifest.extra)
    assert len(outputs[1][0]) == 3 and all(outputs[1][0])
    assert outputs[1] == outputs[3]
    assert outputs[1][1]["duplicates"] and outputs[1][1]["rejects"]  # both reports have lines to compare


def test_awkward_images_are_kept_upright(tmp_path, pixels_of):
    files = awkward_files()
    folder = tmp_path / "awkward"
    folder.mkdir()
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    manifest = run(BuildNpddConfig(sources=[f"dir:{folder}"], output=str(tmp_path / "npdd"), max_side=1000))
    assert manifest.counts["kept"] == len(files) and manifest.counts["rejected"] == 0
    for record in read_records(str(tmp_path / "npdd"), IMAGE):
        expected = files[os.path.basename(record["source_key"])][1]
        assert (record["original_height"], record["original_width"]) == expected
        assert pixels_of(record["image"]).shape == (*expected, 3)


class CopycatTestPhotos(tfds.core.GeneratorBasedBuilder):
    """A two-split TFDS dataset made by the test (the same photo in both splits once)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3)), "label": tfds.features.ClassLabel(num_classes=2)})
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(DISTINCT[:4]), "test": self._generate_examples(DISTINCT[3:6])}

    def _generate_examples(self, names):
        for i, name in enumerate(names):
            yield name, {"image": np.asarray(photo(name)), "label": i % 2}


def test_tfds_source_reads_a_prepared_dataset(tmp_path):
    data_dir = str(tmp_path / "tfds")
    CopycatTestPhotos(data_dir=data_dir).download_and_prepare()
    manifest = run(BuildNpddConfig(sources=["tfds:copycat_test_photos"], tfds_data_dir=data_dir, output=str(tmp_path / "npdd")))
    assert manifest.counts["seen"] == 7
    assert manifest.counts["kept"] == 6 and manifest.counts["exact_duplicates"] == 1
    keys = {r["source_key"] for r in read_records(str(tmp_path / "npdd"), IMAGE)}
    assert all(key.startswith("copycat_test_photos-") for key in keys)
    only_test = run(BuildNpddConfig(sources=["tfds:copycat_test_photos:test"], tfds_data_dir=data_dir, output=str(tmp_path / "test")))
    assert only_test.counts["seen"] == 3


def _binary(*args, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return binaries.run("copycat_bin.build_npdd", args, env=env, cwd=tmp_path)


def test_binary_builds_the_bundled_source_offline(tmp_path):
    result = _binary("--source=bundled", "--bundled_crops=24", "--seed=3", f"--output={tmp_path / 'npdd'}", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "NPDD written to" in result.stdout
    manifest = read_manifest(str(tmp_path / "npdd"))
    assert manifest.counts["seen"] == 24 and manifest.counts["kept"] >= 12
    assert manifest.options["seed"] == 3 and manifest.options["bundled_crops"] == 24
    assert all(r["source"] == "bundled" for r in read_records(str(tmp_path / "npdd"), IMAGE))


def test_binary_names_a_bad_source_and_exits_2(tmp_path):
    result = _binary("--source=dir:/no/such/folder/*.jpg", f"--output={tmp_path / 'npdd'}", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "--source=dir:/no/such/folder/*.jpg matched no files" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "npdd").exists()  # checked before the output folder is claimed
