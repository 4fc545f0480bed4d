"""Hostile entries in a ``dir:`` source: each ends as a reject line with a reason, never a hang or a crash.

One build (module fixture) over a folder holding three good images beside a FIFO, links to a device,
to a /proc file whose reported size (0) is a lie, a dangling link, a link loop, a name that is not
UTF-8, a file that fails with EIO, one that fails with EACCES, and a sub-folder that cannot be listed.
Tests run as root, so unreadability is simulated by making ``open``/``scandir`` fail for those paths.
"""

import builtins
import errno
import io
import json
import os
import threading

import pytest

from beam_pipelines import sources
from beam_pipelines.build_npdd import BuildNpddConfig, run
from tests.beam_pipelines.conftest import encode, photo
from tfrecords_schema import IMAGE, read_records

MAX_FILE_MB = 0.25  # the good images are a few KB; /proc/self/smaps of a TensorFlow process is over 1 MB
GOOD = ("coffee.png", "chelsea.png", "rocket.jpg")
EXPECTED = {  # entry name → reject reason
    "pipe.jpg": "not_a_regular_file",
    "null.jpg": "not_a_regular_file",
    "smaps.jpg": "oversized_file",
    "dangling.jpg": "broken_link",
    "loop.jpg": "symlink_loop",
    "\\xff\\xfe.jpg": "bad_file_name",
    "eio.png": "unreadable",
    "locked.png": "unreadable",
    "locked_folder": "unreadable",
}


def _failing_paths(monkeypatch, failures: dict):
    """Make opening (or listing) these paths fail like an unreadable file or a failing disk would."""
    real_os_open, real_open, real_io_open, real_scandir = os.open, builtins.open, io.open, os.scandir

    def failure_for(path):
        try:
            text = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else ""
        except Exception:
            return None
        return failures.get(text)

    def os_open(path, *args, **kwargs):
        if (error := failure_for(path)) is not None:
            raise OSError(error, os.strerror(error), os.fsdecode(path))
        return real_os_open(path, *args, **kwargs)

    def make_open(real):
        def patched(file, *args, **kwargs):
            if (error := failure_for(file)) is not None:
                raise OSError(error, os.strerror(error), os.fsdecode(file))
            return real(file, *args, **kwargs)

        return patched

    def scandir(path="."):
        if (error := failure_for(path)) is not None:
            raise OSError(error, os.strerror(error), os.fsdecode(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(builtins, "open", make_open(real_open))
    monkeypatch.setattr(io, "open", make_open(real_io_open))
    monkeypatch.setattr(os, "scandir", scandir)


def _unblock_fifo_until(path: str, done: threading.Event):
    """A safety net for a reader that opened the FIFO and hangs: give it an end of file, again and again."""
    while not done.wait(20):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody is reading it (as it should be)
            pass


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    folder = root / "images"
    folder.mkdir()
    for name in GOOD:
        (folder / f"good_{name.split('.')[0]}.png").write_bytes(encode(photo(name, (0, 0, 64, 48))))
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("/dev/null", folder / "null.jpg")
    os.symlink("/proc/self/smaps", folder / "smaps.jpg")
    os.symlink(folder / "nothing-here.jpg", folder / "dangling.jpg")
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    handle = os.open(os.fsencode(folder) + b"/\xff\xfe.jpg", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(handle, encode(photo("moon.png", (0, 0, 64, 48))))
    os.close(handle)
    (folder / "eio.png").write_bytes(encode(photo("coins.png", (0, 0, 64, 48))))
    (folder / "locked.png").write_bytes(encode(photo("camera.png", (0, 0, 64, 48))))
    (folder / "locked_folder").mkdir()
    (folder / "locked_folder" / "inside.png").write_bytes(encode(photo("grass.png", (0, 0, 64, 48))))
    assert len(open("/proc/self/smaps", "rb").read()) > MAX_FILE_MB * 2**20  # the premise of smaps.jpg

    done = threading.Event()
    watchdog = threading.Thread(target=_unblock_fifo_until, args=(str(folder / "pipe.jpg"), done), daemon=True)
    watchdog.start()
    with pytest.MonkeyPatch.context() as monkeypatch:
        _failing_paths(monkeypatch, {str(folder / "eio.png"): errno.EIO, str(folder / "locked.png"): errno.EACCES,
                                     str(folder / "locked_folder"): errno.EACCES})
        try:
            manifest = run(BuildNpddConfig(sources=[f"dir:{folder}"], output=str(root / "npdd"), max_file_mb=MAX_FILE_MB))
        finally:
            done.set()
    rejects = []
    for name in sorted(os.listdir(root / "npdd")):
        if name.startswith("rejects"):
            rejects += [json.loads(line) for line in (root / "npdd" / name).read_text().splitlines()]
    return root, manifest, rejects


def _by_name(rejects):
    return {os.path.basename(r["source_key"].rstrip("/")): r for r in rejects}


def test_every_hostile_entry_is_one_reject_line_with_its_reason(hostile):
    _, _, rejects = hostile
    assert {name: r["reason"] for name, r in _by_name(rejects).items()} == EXPECTED
    assert len(rejects) == len(EXPECTED)


def test_seen_counts_every_entry_the_folder_lists(hostile):
    root, manifest, _ = hostile
    counts = manifest.counts
    assert counts["seen"] == len(GOOD) + len(EXPECTED)
    assert counts["kept"] == len(GOOD)
    assert counts["seen"] == counts["kept"] + counts["exact_duplicates"] + counts["near_duplicates"] + counts["rejected"]
    assert sorted(os.path.basename(r["source_key"]) for r in read_records(str(root / "npdd"), IMAGE)) == sorted(
        f"good_{name.split('.')[0]}.png" for name in GOOD
    )


def test_fifo_and_device_are_refused_unopened(hostile):
    rejects = _by_name(hostile[2])
    assert "FIFO" in rejects["pipe.jpg"]["detail"]
    assert "character device" in rejects["null.jpg"]["detail"]


def test_a_size_of_zero_does_not_pass_the_byte_limit(hostile):
    detail = _by_name(hostile[2])["smaps.jpg"]["detail"]
    assert f"more than {int(MAX_FILE_MB * 2**20)} bytes" in detail


def test_unreadable_files_name_the_error(hostile):
    rejects = _by_name(hostile[2])
    assert "Input/output error" in rejects["eio.png"]["detail"] and "EIO" in rejects["eio.png"]["detail"]
    assert "Permission denied" in rejects["locked.png"]["detail"]
    assert "cannot list the folder" in rejects["locked_folder"]["detail"]


def test_a_name_that_is_not_utf8_is_shown_escaped(hostile):
    root, _, rejects = hostile
    row = _by_name(rejects)["\\xff\\xfe.jpg"]
    assert row["source_key"] == f"{root}/images/\\xff\\xfe.jpg"


# ---------------------------------------------------------------------------------------------
# The reader on its own


def test_a_link_to_dev_zero_is_refused_without_reading(tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.jpg")
    reason, detail = sources.read_local_file(str(tmp_path / "zero.jpg"), max_bytes=1000)
    assert reason == "not_a_regular_file" and "character device" in detail


def test_reads_are_bounded_whatever_size_the_file_claims(tmp_path, monkeypatch):
    path = tmp_path / "grows.jpg"
    path.write_bytes(b"x" * 5000)
    real_stat = os.stat

    def stat_says_zero(target, *args, **kwargs):  # like /proc files, or a file still being written
        result = real_stat(target, *args, **kwargs)
        if os.fsdecode(target) == str(path):
            values = list(result)
            values[6] = 0  # st_size
            return os.stat_result(values)
        return result

    monkeypatch.setattr(os, "stat", stat_says_zero)
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    reason, detail = sources.read_local_file(str(path), max_bytes=1000)
    assert reason == "oversized_file" and "more than 1000 bytes" in detail
    assert sum(reads) <= 1001
    assert sources.read_local_file(str(path), max_bytes=5000) == b"x" * 5000


def test_an_io_error_while_reading_is_a_reject(tmp_path, monkeypatch):
    path = tmp_path / "bad_sector.jpg"
    path.write_bytes(b"x" * 100)

    def failing_read(fd, n):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "read", failing_read)
    reason, detail = sources.read_local_file(str(path), max_bytes=1000)
    assert reason == "unreadable" and "EIO" in detail


def test_remote_reads_are_bounded_too(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"y" * 3000)
    assert sources.read_remote_file(str(path), max_bytes=1000)[0] == "oversized_file"
    assert sources.read_remote_file(str(path), max_bytes=3000) == b"y" * 3000
    assert sources.read_remote_file(str(tmp_path / "missing.jpg"), max_bytes=10)[0] == "unreadable"


def test_check_glob_counts_broken_entries(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"not really")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "dangling.jpg")
    os.symlink(tmp_path / "loop.jpg", tmp_path / "loop.jpg")
    assert sources.check_glob(sources.parse_source(f"dir:{tmp_path}")) == 3
    assert sources.check_glob(sources.parse_source(f"dir:{tmp_path}/*.jpg")) == 3


def test_other_filesystems_are_read_bounded_through_beam(tmp_path, monkeypatch):
    """gs://, s3://, ... go through Beam's matching and filesystems, with the same bounded read and rejects."""
    folder = tmp_path / "bucket"
    folder.mkdir()
    for name in GOOD[:2]:
        (folder / f"good_{name.split('.')[0]}.png").write_bytes(encode(photo(name, (0, 0, 64, 48))))
    (folder / "huge.jpg").write_bytes(b"\xff\xd8" + b"z" * int(MAX_FILE_MB * 2**20))
    monkeypatch.setattr(sources, "_is_local", lambda pattern: False)  # as if the folder were a bucket
    manifest = run(BuildNpddConfig(sources=[f"dir:{folder}"], output=str(tmp_path / "npdd"), max_file_mb=MAX_FILE_MB))
    assert manifest.counts["seen"] == 3 and manifest.counts["kept"] == 2
    assert manifest.extra["rejected_by_reason"] == {"oversized_file": 1}
