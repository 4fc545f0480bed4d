"""File access for lake folders that may be local paths or remote (``gs://...``) URLs.

Everything goes through tf.io.gfile, which knows the same filesystems TensorFlow reads from.
"""

import posixpath

import tensorflow as tf


def join(folder: str, *parts: str) -> str:
    """A path inside ``folder``; works for local paths and URLs alike."""
    return posixpath.join(str(folder), *parts)


def exists(path: str) -> bool:
    return tf.io.gfile.exists(str(path))


def makedirs(folder: str) -> None:
    tf.io.gfile.makedirs(str(folder))


def glob(pattern: str) -> list[str]:
    return sorted(tf.io.gfile.glob(str(pattern)))


def read_text(path: str) -> str:
    with tf.io.gfile.GFile(str(path), "r") as handle:
        return handle.read()


def write_text_atomically(path: str, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path = str(path)
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as handle:
        handle.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)
