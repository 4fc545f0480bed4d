"""Run folders and run names: one home for a run's file names, and run names that read back as written."""

import pytest

from copycat_tf import run_dir
from copycat_tf.errors import CopycatError
from copycat_tf.run_dir import RunDir, RunName, lake_manifest
from copycat_tf.stage_output import LEGACY_SIGNS, MARKER

NAMES = {
    "BL-VGG-ODD-OL": RunName("BL", "VGG", "ODD", "OL"),
    "BL-Alex-PDD-OL": RunName("BL", "Alex", "PDD", "OL"),
    "CC-VGG-NPDD-SL": RunName("CC", "VGG", "NPDD", "SL"),
    "CC-VGG-PDD-SL": RunName("CC", "VGG", "PDD", "SL"),
    "CC-VGG-NPDD+PDD-SL": RunName("CC", "VGG", "NPDD+PDD", "SL"),
    "CC-VGG-NPDD+PDD-SL@600": RunName("CC", "VGG", "NPDD+PDD", "SL", budget=600),
    "CC-VGG-NPDD-SL.adaptive+transforms": RunName("CC", "VGG", "NPDD", "SL", recipe="adaptive+transforms"),
    "CC-VGG-NPDD-SL.random@2000": RunName("CC", "VGG", "NPDD", "SL", recipe="random", budget=2000),
    "CC-VGG-NPDD-SL.adaptive+transforms@10000": RunName("CC", "VGG", "NPDD", "SL", recipe="adaptive+transforms",
                                                        budget=10000),
    "CC-Alex-NPDD-SL.random+transforms@0": RunName("CC", "Alex", "NPDD", "SL", recipe="random+transforms", budget=0),
    "CC-VGG-NPDD-SL.my_recipe-2": RunName("CC", "VGG", "NPDD", "SL", recipe="my_recipe-2"),
}


@pytest.mark.parametrize("text", sorted(NAMES))
def test_a_run_name_reads_back_as_written(text):
    name = RunName.parse(text)
    assert name == NAMES[text]
    assert str(name) == name.format() == text
    assert RunName.parse(str(NAMES[text])) == NAMES[text]


def test_the_parts_of_a_name():
    name = RunName.parse("CC-VGG-NPDD+PDD-SL.adaptive+transforms@600")
    assert (name.kind, name.arch, name.data, name.labels, name.recipe, name.budget) == (
        "CC", "VGG", "NPDD+PDD", "SL", "adaptive+transforms", 600)
    assert str(name.base) == "CC-VGG-NPDD+PDD-SL.adaptive+transforms"
    assert str(name.base.with_budget(50)) == "CC-VGG-NPDD+PDD-SL.adaptive+transforms@50"


@pytest.mark.parametrize("text", [
    "", "not-a-run", "XX-VGG-ODD-OL", "BL-VGG-ODD-XL", "BL-VGG-ODD", "CC-VGG_16-NPDD-SL", "CC-VGG-NPDD-SL.",
    "CC-VGG-NPDD-SL@", "CC-VGG-NPDD-SL@12a", "CC-VGG-NPDD-SL.Adaptive", "CC-VGG-NPDD-SL@10.random",
    "CC-VGG-NPDD-SL\n", " CC-VGG-NPDD-SL", "CC-VGG-NP.DD-SL", "cc-VGG-NPDD-SL",
])
def test_an_invalid_name_is_refused_naming_it(text):
    with pytest.raises(CopycatError, match="is not a run name") as caught:
        RunName.parse(text)
    assert repr(text) in str(caught.value)
    assert not RunName.is_valid(text)


@pytest.mark.parametrize("parts, word", [
    (("XX", "VGG", "ODD", "OL"), "kind"),
    (("BL", "VGG", "ODD", "XL"), "labels"),
    (("BL", "VGG-16", "ODD", "OL"), "arch"),
    (("BL", "VGG", "", "OL"), "data"),
])
def test_a_name_that_cannot_be_spelled_is_refused_when_made(parts, word):
    with pytest.raises(CopycatError, match=word):
        RunName(*parts)


def test_recipe_and_budget_are_checked_when_made():
    with pytest.raises(CopycatError, match="recipe 'Adaptive'"):
        RunName("CC", "VGG", "NPDD", "SL", recipe="Adaptive")
    for budget in (-1, 1.5, "100", True):
        with pytest.raises(CopycatError, match="budget"):
            RunName("CC", "VGG", "NPDD", "SL", budget=budget)


@pytest.mark.parametrize("folder", ["/tmp/runs/CC-VGG-NPDD-SL", "gs://bucket/exp/runs/CC-VGG-NPDD-SL"])
def test_run_dir_paths(folder):
    run = RunDir(folder)
    assert str(run) == run.path == folder
    assert run.metrics == f"{folder}/metrics.json"
    assert run.evaluation == f"{folder}/evaluation.json"
    assert run.model == f"{folder}/model.keras"
    assert run.export == f"{folder}/export"
    assert run.saved_model == f"{folder}/export/saved_model.pb"
    assert run.run_options == f"{folder}/run_options.json"
    assert run.checkpoints == f"{folder}/checkpoints"
    assert run.tensorboard == f"{folder}/tensorboard"
    assert run.marker == f"{folder}/{MARKER}" == f"{folder}/.copycat-stage.json"
    assert run.name == "CC-VGG-NPDD-SL"
    assert run.run_name == RunName("CC", "VGG", "NPDD", "SL")
    assert lake_manifest(folder) == f"{folder}/manifest.json"


def test_run_dir_takes_a_path_object_and_a_trailing_slash(tmp_path):
    run = RunDir(tmp_path / "BL-VGG-ODD-OL")
    assert run.path == str(tmp_path / "BL-VGG-ODD-OL")
    assert RunDir("gs://bucket/runs/BL-VGG-ODD-OL/").name == "BL-VGG-ODD-OL"
    with pytest.raises(CopycatError, match="'lake' is not a run name"):
        RunDir("gs://bucket/lake").run_name


def test_names_agree_with_the_lake_and_the_stage_marker():
    from tfrecords_schema import MANIFEST_NAME

    assert lake_manifest("x").endswith("/" + MANIFEST_NAME)
    # stage_output cannot import run_dir (run_dir imports its MARKER): its legacy signs of a train run must agree.
    assert LEGACY_SIGNS["train"] == (run_dir.RUN_OPTIONS, run_dir.METRICS, run_dir.CHECKPOINTS)


def test_loop_keeps_its_run_options_name():
    from copycat_tf.training import loop

    assert loop.RUN_OPTIONS == run_dir.RUN_OPTIONS == "run_options.json"
