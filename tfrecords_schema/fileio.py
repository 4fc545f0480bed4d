"""File access for lake folders that may be local paths or remote (``gs://...``) URLs.

Remote URLs go through tf.io.gfile, which knows the same filesystems TensorFlow reads from. Local paths
go through the standard library for the simple operations (exists, makedirs, read_text, writing a file
atomically), so a process that only checks and writes small local files (the plan executor, a stage's
refusal of a bad flag) never pays TensorFlow's import; TensorFlow is imported on the first remote access
or glob. The per-image workers of build_npdd use the lake's hashing and image records without it too.
"""

import os
import posixpath


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(folder: str, *parts: str) -> str:
    """A path inside ``folder``; works for local paths and URLs alike."""
    return posixpath.join(str(folder), *parts)


def is_remote(path: str) -> bool:
    """A URL with a scheme (``gs://``, ``s3://``...), read and written through tf.io.gfile."""
    return "://" in str(path)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(str(path))
    return _gfile().exists(str(path))


def makedirs(folder: str) -> None:
    if not is_remote(folder):
        os.makedirs(str(folder), exist_ok=True)
        return
    _gfile().makedirs(str(folder))


def glob(pattern: str) -> list[str]:
    return sorted(_gfile().glob(str(pattern)))


def read_text(path: str) -> str:
    if not is_remote(path):
        with open(str(path), encoding="utf-8") as handle:
            return handle.read()
    with _gfile().GFile(str(path), "r") as handle:
        return handle.read()


def write_text_atomically(path: str, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path = str(path)
    temporary = path + ".tmp"
    if not is_remote(path):
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
        return
    with _gfile().GFile(temporary, "w") as handle:
        handle.write(text)
    _gfile().rename(temporary, path, overwrite=True)
