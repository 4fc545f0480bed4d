"""File access for lake folders that may be local paths or remote (``gs://...``) URLs.

Everything goes through tf.io.gfile, which knows the same filesystems TensorFlow reads from.
TensorFlow is imported on the first file access, not with the package: the per-image workers of
build_npdd use the lake's hashing and image records without paying TensorFlow's import.
"""

import posixpath


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def join(folder: str, *parts: str) -> str:
    """A path inside ``folder``; works for local paths and URLs alike."""
    return posixpath.join(str(folder), *parts)


def exists(path: str) -> bool:
    return _gfile().exists(str(path))


def makedirs(folder: str) -> None:
    _gfile().makedirs(str(folder))


def glob(pattern: str) -> list[str]:
    return sorted(_gfile().glob(str(pattern)))


def read_text(path: str) -> str:
    with _gfile().GFile(str(path), "r") as handle:
        return handle.read()


def write_text_atomically(path: str, text: str) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    path = str(path)
    temporary = path + ".tmp"
    with _gfile().GFile(temporary, "w") as handle:
        handle.write(text)
    _gfile().rename(temporary, path, overwrite=True)
