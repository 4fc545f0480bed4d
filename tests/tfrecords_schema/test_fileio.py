"""The lake's file layer: local paths answer without TensorFlow and as tf.io.gfile would; URLs go to gfile."""

import subprocess
import sys

import pytest
import tensorflow as tf

from tfrecords_schema import fileio


def test_local_paths_read_and_write_as_gfile_does(tmp_path):
    folder = str(tmp_path / "a" / "b")
    fileio.makedirs(folder)
    fileio.makedirs(folder)  # already there: no error, as gfile
    assert tf.io.gfile.isdir(folder)
    path = fileio.join(folder, "manifest.json")
    assert not fileio.exists(path)
    fileio.write_text_atomically(path, "{\"é\": 1}\n")
    assert fileio.exists(path) and not fileio.exists(path + ".tmp")
    with tf.io.gfile.GFile(path, "r") as handle:
        assert handle.read() == "{\"é\": 1}\n"
    with tf.io.gfile.GFile(path, "w") as handle:
        handle.write("second")
    assert fileio.read_text(path) == "second"
    fileio.write_text_atomically(path, "third")  # replaces a file that is there
    assert fileio.read_text(path) == "third"
    with pytest.raises(FileNotFoundError):
        fileio.read_text(fileio.join(folder, "missing.json"))


def test_urls_go_to_gfile(monkeypatch):
    asked = []

    class Gfile:
        def exists(self, path):
            asked.append(("exists", path))
            return True

        def makedirs(self, path):
            asked.append(("makedirs", path))

    monkeypatch.setattr(fileio, "_gfile", lambda: Gfile())
    assert fileio.is_remote("gs://bucket/lake") and not fileio.is_remote("/data/lake")
    assert fileio.exists("gs://bucket/lake/manifest.json")
    fileio.makedirs("gs://bucket/lake/npdd")
    assert asked == [("exists", "gs://bucket/lake/manifest.json"), ("makedirs", "gs://bucket/lake/npdd")]


def test_local_checks_and_small_writes_import_no_tensorflow(tmp_path):
    """The plan executor checks its steps' done files through this layer; on local paths that must not cost
    TensorFlow's start-up (seconds per process)."""
    code = (f"import sys\nfrom tfrecords_schema import fileio\nd = fileio.join({str(tmp_path)!r}, 'x')\n"
            "fileio.makedirs(d)\nfileio.write_text_atomically(fileio.join(d, 'done'), 'ok')\n"
            "assert fileio.exists(fileio.join(d, 'done')) and fileio.read_text(fileio.join(d, 'done')) == 'ok'\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
