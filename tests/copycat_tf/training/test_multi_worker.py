"""copycat-train on two workers on loopback (MultiWorkerMirroredStrategy), and how the input splits between them.

The cluster tests start real ``copycat-train`` processes with TF_CONFIG, as a user does on two machines.
"""

import json
import os
import signal
import socket
import subprocess
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from copycat_tf.training import TrainConfig, train
from copycat_tf.training.class_balance import EpochDraw, read_labels
from copycat_tf.training.input import decode_resize, lake_dataset, splits_by_file
from copycat_tf.training.strategy import coordination_options
from tests import binaries
from tests.copycat_tf.training.digits import SIZE, digits_folder
from tfrecords_schema import LABELED_IMAGE, open_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return {"one_shard": digits_folder(root / "one", range(0, 320), num_shards=1),
            "four_shards": digits_folder(root / "four", range(400, 720), num_shards=4),
            "val": digits_folder(root / "val", range(1500, 1600), num_shards=1)}


def _batches(folder, batch_size, steps, **options):
    data = lake_dataset([open_folder(folder, LABELED_IMAGE)], SIZE, batch_size, training=True, seed=3,
                        deterministic=True, **options)
    return [(images.numpy(), labels.numpy()) for images, labels in data.take(steps)]


def _rows(batch):
    images, labels = batch
    return sorted((int(label), image.tobytes()) for image, label in zip(images, labels))


def test_by_data_the_workers_batches_together_are_the_one_worker_batch(folders):
    one = _batches(folders["one_shard"], 16, 25)  # 25 steps: the stream runs into a second epoch
    parts = [_batches(folders["one_shard"], 8, 25, workers=(2, index)) for index in (0, 1)]
    for step, whole in enumerate(one):
        together = (np.concatenate([parts[0][step][0], parts[1][step][0]]),
                    np.concatenate([parts[0][step][1], parts[1][step][1]]))
        assert _rows(together) == _rows(whole), f"step {step}"
    assert _rows(parts[0][0]) != _rows(parts[1][0])


def test_by_file_each_worker_reads_only_its_shards(folders):
    folder = open_folder(folders["four_shards"], LABELED_IMAGE)
    images_of = []
    for index in (0, 1):
        seen = _batches(folders["four_shards"], 8, 40, workers=(2, index))  # 320 records: two epochs of 160
        images_of.append({image.tobytes() for images, _ in seen for image in images})
        mine = folder.shards[index::2]
        expected = {image.tobytes() for images, _ in _read_all(mine) for image in images}
        assert images_of[-1] == expected  # every record of its own shards, none of the other worker's
    assert not images_of[0] & images_of[1] and len(images_of[0]) + len(images_of[1]) == 320


def _read_all(shards):
    reader = tf.data.TFRecordDataset(list(shards)).map(decode_resize(SIZE)).batch(1000)
    return [(images.numpy(), labels.numpy()) for images, labels in reader]


def test_a_resumed_worker_reads_what_an_uninterrupted_one_reads(folders):
    folder = open_folder(folders["four_shards"], LABELED_IMAGE)
    draw = EpochDraw(read_labels(list(folder.shards)), seed=3)
    for workers in ((2, 1), (2, 0)):
        whole = _batches(folders["four_shards"], 8, 30, workers=workers, draw=draw)
        resumed = _batches(folders["four_shards"], 8, 17, workers=workers, draw=draw, start_step=13)
        for a, b in zip(whole[13:], resumed):
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
    by_data = _batches(folders["one_shard"], 8, 30, workers=(2, 1))
    resumed = _batches(folders["one_shard"], 8, 9, workers=(2, 1), start_step=21)
    for a, b in zip(by_data[21:], resumed):
        np.testing.assert_array_equal(a[0], b[0])


def test_peer_timeout_configures_the_coordination_service_the_strategy_would_start():
    with_chief = {"chief": ["c:1"], "worker": ["a:1"]}
    both = [("chief", 1), ("worker", 1)]
    cases = ((({"worker": ["a:1", "b:1"]}, "worker"), "/job:worker/replica:0/task:0", [("worker", 2)]),
             ((with_chief, "worker"), "/job:chief/replica:0/task:0", both),
             ((with_chief, "chief"), "/job:chief/replica:0/task:0", both))
    for (spec, task), leader, jobs in cases:
        options = coordination_options(spec, task, peer_timeout=4)
        assert options["heartbeat_timeout_in_ms"] == 4000
        assert options["service_leader"] == leader and options["coordinated_jobs"] == jobs
    assert coordination_options({"worker": ["a:1"], "evaluator": ["e:1"]}, "evaluator", peer_timeout=4) is None


def test_the_split_is_by_file_only_when_every_worker_gets_records():
    assert splits_by_file([10, 10, 10, 10], 2) and splits_by_file([10, 10], 2)
    assert not splits_by_file([40], 2)  # fewer shards than workers
    assert not splits_by_file([10, 0, 10, 0], 2)  # the second worker's shards are empty
    assert not splits_by_file([10, 10, 10], 1)


# ----------------------------------------------------------------------------------------------------------------
# A cluster of two copycat-train processes on loopback.

def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_cluster(train_folder, outputs, scratch, flags):
    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(len(outputs))]}
    processes = []
    for index, output in enumerate(outputs):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(scratch),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        args = [f"--train={train_folder}", f"--output={output}", "--strategy=multi_worker", f"--input_size={SIZE}",
                "--verbose=0", *flags]
        processes.append(binaries.Forked("copycat_bin.train", args, env=env, stderr=binaries.STDOUT))
    return processes


def _tail(out: str, size: int = 3000) -> str:
    """The end of a worker's output, or where it crashed: a crash's Python stacks (faulthandler) come before a long
    list of extension modules, which would fill the end."""
    crash = out.find("Fatal Python error")
    return out[crash:crash + size] if crash >= 0 else out[-size:]


def _finish(processes, timeout=600):
    results = []
    for process in processes:
        try:
            out = process.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            process.kill()
            out = process.communicate()[0]
        results.append((process.returncode, out))
    return results


TINY = ["--model=alexnet", "--width=0.0625", "--dropout=0", "--batch_size=32", "--lr=0.05"]


def test_two_workers_match_one_with_the_same_global_batch_and_only_the_chief_writes(folders, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    output = tmp_path / "two"
    flags = TINY + ["--epochs=3", f"--val={folders['val']}"]
    results = _finish(_start_cluster(folders["one_shard"], [output, output], scratch, flags))
    for index, (code, out) in enumerate(results):
        assert code == 0, f"worker {index}:\n{_tail(out)}"
    assert "reads its part of --train by data" in results[0][1]
    for index, (_, out) in enumerate(results):  # each left once both had written their part
        assert "all 2 workers finished" in out, f"worker {index}:\n{_tail(out)}"
    assert not list(scratch.iterdir()), "the second worker left its temporary folder behind"
    two = json.loads((output / "metrics.json").read_text())
    assert two["replicas"] == 2 and two["strategy"] == "CollectiveAllReduceStrategy"
    assert sorted(p.name for p in output.iterdir()) == sorted(
        ["checkpoints", "export", "metrics.json", "model.keras", "run_options.json", "tensorboard", ".copycat-stage.json"])

    one = train(TrainConfig(train=[folders["one_shard"]], output=str(tmp_path / "one"), input_size=SIZE, epochs=3,
                            model="alexnet", width=0.0625, dropout=0.0, batch_size=32, lr=0.05, verbose=0,
                            strategy="one_device", val=folders["val"]))
    assert two["steps"] == one["steps"] == 30
    assert one["history"]["loss"][0] - one["history"]["loss"][-1] > 0.1  # it learned: the comparison means something
    # Stated tolerance (docs/PERFORMANCE.md): the same updates up to float summation order (two half-batch
    # sums all-reduced vs one batch): each chunk's loss within 0.2%; accuracy within 2 points, as a
    # near-uniform early copycat flips the argmax of a few images on tiny differences (4 of 320 measured).
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=2e-3)
    np.testing.assert_allclose(two["history"]["accuracy"], one["history"]["accuracy"], atol=0.02)
    np.testing.assert_allclose(two["history"]["val_loss"], one["history"]["val_loss"], rtol=2e-3)
    np.testing.assert_allclose(two["history"]["val_accuracy"], one["history"]["val_accuracy"], atol=0.03)

    # The step loop itself is Keras's fit, exactly: a cluster of one worker gives the one-device weights.
    alone = tmp_path / "alone"
    code, out = _finish(_start_cluster(folders["one_shard"], [alone], scratch, flags))[0]
    assert code == 0, _tail(out)
    history = json.loads((alone / "metrics.json").read_text())["history"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert history[key] == pytest.approx(one["history"][key], rel=1e-6), key
    for a, b in zip(keras.models.load_model(tmp_path / "one" / "model.keras").get_weights(),
                    keras.models.load_model(alone / "model.keras").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_killed_worker_restarted_resumes_and_the_run_ends_at_the_same_step(folders, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    output = tmp_path / "run"
    # A peer silent for 4 s counts as dead (TensorFlow's default is 10 s): the chief stops sooner.
    flags = TINY + ["--epochs=6", "--checkpoint_every=20", "--class_balance=resample", "--peer_timeout=4"]
    processes = _start_cluster(folders["four_shards"], [output, output], scratch, flags)
    deadline = time.time() + 300
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if tf.train.latest_checkpoint(str(output / "checkpoints")):  # saved and committed (state file written)
            break
        time.sleep(0.05)
    assert all(p.poll() is None for p in processes), "a worker ended before one could be killed"
    processes[1].send_signal(signal.SIGKILL)
    chief_code, chief_out = _finish(processes, timeout=120)[0]  # the chief stops once its peer is gone
    assert chief_code != 0 and "Traceback" not in chief_out, _tail(chief_out)
    assert "restart every worker" in chief_out, _tail(chief_out)
    assert "a worker silent for 4 s counts as stopped" in chief_out  # the timeout the coordination service runs with
    assert not (output / "metrics.json").exists()

    results = _finish(_start_cluster(folders["four_shards"], [output, output], scratch, flags))
    for index, (code, out) in enumerate(results):
        assert code == 0, f"worker {index}:\n{_tail(out)}"
    assert "reads its part of --train by file" in results[0][1]
    metrics = json.loads((output / "metrics.json").read_text())
    assert 0 < metrics["resumed_from_step"] < metrics["total_steps"]
    assert metrics["steps"] == metrics["total_steps"] == 60
