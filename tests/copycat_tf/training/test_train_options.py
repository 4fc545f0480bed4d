"""Issue #12, finding 8 for copycat-train: every number range-checked before any work, and a run folder
reused with other data or other options refused (naming them) instead of silently reporting the old run."""

import json
import shutil
import os
import re
import subprocess
import sys

import pytest

from copycat_tf.errors import CopycatError
from copycat_tf.training import TrainConfig, loop, train
from tests import binaries
from tests.copycat_tf.training.digits import SIZE, digits_folder


def _config(train_folder="lake/train", output="runs/x", **overrides):
    values = dict(model="alexnet", train=[str(train_folder)], output=str(output), input_size=SIZE, epochs=1,
                  batch_size=16, lr=0.02, width=1 / 16, dropout=0.0, verbose=0, strategy="one_device")
    return TrainConfig(**{**values, **overrides})


# ---- range checks ---------------------------------------------------------------------------------

def _beyond(rule):
    bad = [None, float("nan"), float("inf"), "7"]
    if rule.low is not None:
        bad.append(rule.low if rule.above else rule.low - 1)
    if rule.high is not None:
        bad.append(rule.high + 1)
    return bad


CASES = [(rule, bad) for rule in TrainConfig.RULES for bad in _beyond(rule)]


@pytest.mark.parametrize("rule, bad", CASES, ids=[f"{r.flag}={b!r}" for r, b in CASES])
def test_every_bound_refuses_a_value_beyond_it(rule, bad):
    config = _config()
    config.validate()  # the defaults pass
    setattr(config, rule.field, bad)
    with pytest.raises(CopycatError, match=f"^--{rule.flag}=.* is out of range: use a"):
        config.validate()


@pytest.mark.parametrize("field, value, message", [
    ("lr", -1.0, r"^--lr=-1.0 is out of range: use a number in \(0, 10\]$"),
    ("lr", 0.0, r"^--lr=0.0 is out of range"),
    ("checkpoint_every", -5, r"^--checkpoint_every=-5 is out of range: use a number in \[0, "),
    ("dropout", 2.0, r"^--dropout=2.0 is out of range: use a number in \[0, 0.99\]$"),
    ("batch_size", 0, r"^--batch_size=0 is out of range"),
    ("epochs", 0, r"^--epochs=0 is out of range"),
    ("epochs", -3, r"^--epochs=-3 is out of range"),
    ("width", 0.0, r"^--width=0.0 is out of range: use a number in \(0, 4\]$"),
    ("width", -1.0, r"^--width=-1.0 is out of range"),
    ("input_size", 16, r"^--input_size=16 is out of range: use a number in \[32, 1024\]$"),
    ("seed", -1, r"^--seed=-1 is out of range"),
    ("epochs", 2.5, r"^--epochs=2.5 is out of range: use a whole number$"),
    ("model", "vgg99", r"^--model='vgg99' is unknown; known models: vgg16, "),
    ("strategy", "horovod", r"^--strategy='horovod' is unknown"),
    ("augment", "rotate,mirror", r"^--augment=rotate,mirror: unknown operation\(s\) mirror"),
    ("train", [], r"^--train=\[\]: give one or more lake folders"),
])
def test_the_issues_examples_are_refused_in_one_line(field, value, message):
    config = _config()
    setattr(config, field, value)
    with pytest.raises(CopycatError, match=message) as refused:
        config.validate()
    assert "\n" not in str(refused.value)


def test_train_refuses_before_any_work(tmp_path):
    output = tmp_path / "run"
    with pytest.raises(CopycatError, match="--lr=-1"):
        train(_config(tmp_path / "no-such-lake", output, lr=-1.0))  # refused before the --train folder is opened
    assert not output.exists()


@pytest.fixture(scope="module")
def lakes(tmp_path_factory):
    root = tmp_path_factory.mktemp("lakes")
    return digits_folder(root / "a", range(0, 48)), digits_folder(root / "b", range(48, 96))


def test_checkpoint_every_beyond_the_runs_steps_is_refused(lakes, tmp_path):
    with pytest.raises(CopycatError, match=r"^--checkpoint_every=7 is out of range: this run has 6 steps .*1 to 6$"):
        train(_config(lakes[0], tmp_path / "run", epochs=2, checkpoint_every=7))  # 48 images / 16 = 3 steps an epoch
    assert not (tmp_path / "run").exists()


def test_an_output_inside_the_training_data_is_refused(lakes):
    with pytest.raises(CopycatError, match="overlaps the input --train"):
        train(_config(lakes[0], os.path.join(lakes[0], "run")))


def test_a_folder_of_other_files_is_refused(lakes, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CopycatError, match="files copycat did not write"):
        train(_config(lakes[0], tmp_path))
    assert os.listdir(tmp_path) == ["notes.txt"]


# ---- reusing a run folder -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished(lakes, tmp_path_factory):
    output = tmp_path_factory.mktemp("finished")
    train(_config(lakes[0], output))
    return output


def test_the_run_folder_records_its_options(finished, lakes):
    recorded = json.loads((finished / loop.RUN_OPTIONS).read_text())["options"]
    assert recorded["train"] == [os.path.realpath(lakes[0])] and recorded["train_records"] == 48
    assert {k: recorded[k] for k in ("model", "epochs", "lr", "seed", "augment", "num_classes")} == {
        "model": "alexnet", "epochs": 1, "lr": 0.02, "seed": 0, "augment": "none", "num_classes": 10}


@pytest.mark.parametrize("overrides, named", [
    ({"train": "other"}, r"--train: .*/a there, .*/b now"),
    ({"epochs": 2}, "--epochs: 1 there, 2 now"),
    ({"lr": 0.5, "seed": 3}, "--lr: 0.02 there, 0.5 now; --seed: 0 there, 3 now"),
    ({"model": "alexnet_bn"}, "--model: alexnet there, alexnet_bn now"),
    ({"augment": "flip"}, "--augment: none there, flip now"),
])
def test_a_finished_run_refuses_other_data_or_options(finished, lakes, overrides, named):
    if overrides.get("train") == "other":
        overrides = {**overrides, "train": [lakes[1]]}
    before = (finished / "metrics.json").read_text()
    with pytest.raises(CopycatError, match=f"^--output=.* holds a copycat-train run made with other options .*{named}"):
        train(_config(lakes[0], finished, **overrides))
    assert (finished / "metrics.json").read_text() == before


def test_a_finished_run_with_the_same_options_is_left_as_it_is(finished, lakes):
    stamp = os.path.getmtime(finished / "metrics.json")
    metrics = train(_config(lakes[0], finished, strategy="auto", deterministic=False))  # neither defines the run
    assert metrics == json.loads((finished / "metrics.json").read_text()) and metrics["history"]["loss"]
    assert os.path.getmtime(finished / "metrics.json") == stamp


class _Killed(Exception):
    pass


def test_a_partly_trained_run_refuses_other_options_and_resumes_with_the_same(lakes, tmp_path, monkeypatch):
    output = tmp_path / "partial"
    save = loop._SaveCheckpoint.on_epoch_end

    def save_then_die(self, epoch, logs=None):
        save(self, epoch, logs)
        raise _Killed()

    monkeypatch.setattr(loop._SaveCheckpoint, "on_epoch_end", save_then_die)
    with pytest.raises(_Killed):
        train(_config(lakes[0], output, epochs=2))
    monkeypatch.undo()
    with pytest.raises(CopycatError, match="--train: .* there, .* now"):
        train(_config(lakes[1], output, epochs=2))
    with pytest.raises(CopycatError, match="--width: 0.0625 there, 0.125 now"):
        train(_config(lakes[0], output, epochs=2, width=0.125))
    metrics = train(_config(lakes[0], output, epochs=2))
    assert metrics["resumed_from_step"] == 3 and metrics["steps"] == 6


def test_a_run_folder_from_before_run_options_is_checked_against_its_metrics(finished, lakes, tmp_path):
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("metrics.json", "model.keras"):
        (legacy / name).write_bytes((finished / name).read_bytes())
    (legacy / "export").mkdir()
    (legacy / "export" / "saved_model.pb").write_bytes((finished / "export" / "saved_model.pb").read_bytes())
    with pytest.raises(CopycatError, match="--epochs: 1 there, 3 now"):
        train(_config(lakes[0], legacy, epochs=3))
    assert train(_config(lakes[0], legacy))["history"]["loss"]  # the same options: already trained


def test_an_option_added_since_a_run_was_recorded_counts_as_its_default_then(finished, lakes, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(finished, old)
    recorded = json.loads((old / loop.RUN_OPTIONS).read_text())
    del recorded["options"]["class_balance"]  # a run recorded before --class_balance existed
    (old / loop.RUN_OPTIONS).write_text(json.dumps(recorded))
    with pytest.raises(CopycatError, match="--class_balance: none there, resample now"):
        train(_config(lakes[0], old, class_balance="resample"))
    assert train(_config(lakes[0], old))["history"]["loss"]  # the default then is the default now: already trained


# ---- through the binary ---------------------------------------------------------------------------

def _train_binary(*args, python=()):
    """The binary as a fresh process where Python options are given (the import log), else forked (tests/binaries.py)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    if python:
        result = subprocess.run([sys.executable, *python, "-m", "copycat_bin.train", *args], capture_output=True,
                                text=True, env=env, timeout=300)
    else:
        result = binaries.run("copycat_bin.train", args, env=env, timeout=300)
    lines = [line for line in result.stderr.splitlines() if ": error: " in line or "Traceback" in line]
    return result.returncode, lines, result.stderr


@pytest.mark.parametrize("flag, message", [
    ("--lr=-1", r"--lr=-1.0 is out of range: use a number in \(0, 10\]"),
    ("--checkpoint_every=-5", r"--checkpoint_every=-5 is out of range"),
])
def test_the_binary_refuses_a_bad_number_with_one_line_and_exit_2(lakes, tmp_path, flag, message):
    code, lines, stderr = _train_binary("--model=alexnet", f"--train={lakes[0]}", f"--output={tmp_path / 'run'}", flag,
                                        python=("-X", "importtime"))
    assert code == 2, stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert re.search(message, lines[0]), lines
    assert not (tmp_path / "run").exists()
    imported = {line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}
    assert "copycat_tf.training.config" in imported  # the import log is there, and it holds no TensorFlow or Keras:
    assert not {"tensorflow", "keras"} & imported  # a bad flag costs no TensorFlow start-up


def test_the_binary_refuses_a_finished_run_with_other_data(finished, lakes):
    before = (finished / "metrics.json").read_text()
    code, lines, stderr = _train_binary("--model=alexnet", f"--train={lakes[1]}", f"--output={finished}",
                                        f"--input_size={SIZE}", "--epochs=1", "--batch_size=16", "--lr=0.02",
                                        "--width=0.0625", "--dropout=0", "--strategy=one_device")
    assert code == 2 and "Traceback" not in stderr, stderr[-2000:]
    assert len(lines) == 1 and "holds a copycat-train run made with other options (--train: " in lines[0]
    assert (finished / "metrics.json").read_text() == before
