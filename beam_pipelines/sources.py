"""Where natural images come from: ``dir:GLOB``, ``tfds:NAME[:SPLIT]`` and ``bundled``.

Each source becomes a PCollection of RawImage (source name, key within the source, file bytes),
or of EarlyReject records for inputs refused before decoding (oversized files, and folder entries
that are not readable regular files: FIFOs, devices, broken links, link loops, unreadable files,
names that are not UTF-8). Source specs are checked before the pipeline starts, so a typo ends in
one clear error instead of a failed job.
"""

import dataclasses
import errno
import io
import os
import random
import re
import stat
from typing import Iterator

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes, FileSystem
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from beam_pipelines import image_decode
from copycat_tf.errors import CopycatError

BUNDLED = "bundled"
_WILDCARDS = set("*?[")


@dataclasses.dataclass(frozen=True)
class RawImage:
    source: str
    key: str
    data: bytes


@dataclasses.dataclass(frozen=True)
class EarlyReject:
    """An input refused before its bytes were read."""

    source: str
    key: str
    reason: str
    detail: str


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    kind: str  # "dir", "tfds" or "bundled"
    value: str = ""  # the glob, or the TFDS name
    split: str = ""  # TFDS split ("" = every split)

    @property
    def name(self) -> str:
        if self.kind == "tfds":
            return f"tfds:{self.value}" + (f":{self.split}" if self.split else "")
        return f"{self.kind}:{self.value}" if self.value else self.kind


def parse_source(spec: str) -> SourceSpec:
    """``dir:GLOB``, ``tfds:NAME[:SPLIT]`` or ``bundled``; anything else is refused with the forms."""
    kind, _, rest = spec.partition(":")
    if kind == BUNDLED and not rest:
        return SourceSpec(BUNDLED)
    if kind == "dir" and rest:
        if not _WILDCARDS & set(rest):
            rest = rest.rstrip("/") + "/**"  # a plain folder means every file below it
        return SourceSpec("dir", rest)
    if kind == "tfds" and rest:
        name, _, split = rest.partition(":")
        return SourceSpec("tfds", name, split)
    raise CopycatError(
        f"--source={spec!r} is not a source; use dir:GLOB (e.g. dir:/data/photos/*.jpg or gs://bucket/images/**), "
        "tfds:NAME[:SPLIT] (e.g. tfds:coco/2017:train) or bundled"
    )


# ---------------------------------------------------------------------------------------------
# dir:GLOB — any filesystem Beam knows (local, gs://, s3://, ...)
#
# A local folder may hold anything: FIFOs (opening one blocks forever), devices (/dev/zero reports
# size 0 and never ends), dangling links, link loops, unreadable files, names that are not UTF-8.
# Local entries are therefore listed here rather than by Beam (whose listing silently drops broken
# links), each is stat'ed before it is opened, only regular files are opened (non-blocking, never
# as a controlling terminal), and every read is bounded: at most max_file_bytes + 1 bytes are read,
# whatever size the file claims. Whatever cannot be read becomes a reject with a reason, so
# ``seen = kept + duplicates + rejected`` holds for every entry the glob lists.

NOT_A_REGULAR_FILE = image_decode.NOT_A_REGULAR_FILE
UNREADABLE = image_decode.UNREADABLE
BROKEN_LINK = image_decode.BROKEN_LINK
SYMLINK_LOOP = image_decode.SYMLINK_LOOP
BAD_FILE_NAME = image_decode.BAD_FILE_NAME
_READ_CHUNK = 1 << 20


def _is_local(pattern: str) -> bool:
    try:
        return isinstance(FileSystems.get_filesystem(pattern), LocalFileSystem)
    except ValueError:  # a scheme no installed filesystem serves: Beam's match names it
        return False


def printable_path(path: str) -> str:
    """A path as valid UTF-8 text: bytes that are not UTF-8 are shown as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # os.walk hands undecodable bytes over as lone surrogates
        return False
    return True


def _list_local(pattern: str, source: str) -> Iterator["str | EarlyReject"]:
    """Every entry a local glob matches (Beam's glob syntax: ``*`` within a folder, ``**`` across folders).

    Broken links and link loops are listed too (Beam's own listing drops them); a file whose name
    is not UTF-8 and a sub-folder that cannot be listed come out as rejects instead of paths.
    Folders themselves (and links to folders, which are not followed) are not entries.
    """
    prefix = re.match(r"^[^[*?]*", pattern).group(0)
    if prefix == pattern:  # no wildcard: one path
        if os.path.lexists(pattern) and not os.path.isdir(pattern):
            yield pattern if _is_utf8(pattern) else EarlyReject(source, printable_path(pattern), BAD_FILE_NAME, "")
        return
    root = os.path.dirname(prefix)
    if not os.path.isdir(root):
        return
    matches = re.compile(FileSystem.translate_pattern(pattern)).match
    folder_matches = re.compile(FileSystem.translate_pattern(os.path.dirname(pattern))).match
    recursive = "**" in pattern
    unlisted: list[OSError] = []

    def unlisted_folders():
        while unlisted:
            error = unlisted.pop(0)
            where = os.path.normpath(str(error.filename or root))
            if where == os.path.normpath(root) or recursive or folder_matches(where):
                yield EarlyReject(source, printable_path(where) + "/", UNREADABLE,
                                  f"cannot list the folder: {_os_error(error)}")

    for folder, _, names in os.walk(root, onerror=unlisted.append):
        yield from unlisted_folders()
        for name in names:
            path = os.path.join(folder, name)
            if not matches(path):
                continue
            if _is_utf8(path):
                yield path
            else:
                yield EarlyReject(source, printable_path(path), BAD_FILE_NAME,
                                  "the file name is not valid UTF-8; rename the file to keep it")
    yield from unlisted_folders()


def _file_kind(mode: int) -> str:
    for test, word in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return f"not a regular file (mode {mode:o})"


def _os_error(error: OSError) -> str:
    code = errno.errorcode.get(error.errno, str(error.errno)) if error.errno else ""
    return f"{type(error).__name__}: {error.strerror or error}" + (f" ({code})" if code else "")


def read_local_file(path: str, max_bytes: int) -> "bytes | tuple[str, str]":
    """A local file's bytes, or (reason, detail) when it is not a readable regular file of at most ``max_bytes``.

    Never blocks on a FIFO or a device (they are refused before being opened), never reads more
    than ``max_bytes + 1`` bytes (a size of 0 proves nothing: /proc files and devices report 0).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return BROKEN_LINK, f"the link points to {printable_path(os.readlink(path))}, which does not exist"
        return UNREADABLE, "the file disappeared after it was listed"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return SYMLINK_LOOP, "the link leads to itself (too many levels of symbolic links)"
        return UNREADABLE, _os_error(error)
    if not stat.S_ISREG(info.st_mode):
        return NOT_A_REGULAR_FILE, f"{_file_kind(info.st_mode)}, not an image file"
    if info.st_size > max_bytes:
        return image_decode.OVERSIZED_FILE, f"{info.st_size} bytes is over {max_bytes}"
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        handle = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return SYMLINK_LOOP, "the link leads to itself (too many levels of symbolic links)"
        return UNREADABLE, _os_error(error)
    try:
        opened = os.fstat(handle)
        if not stat.S_ISREG(opened.st_mode):  # swapped for something else since the stat
            return NOT_A_REGULAR_FILE, f"{_file_kind(opened.st_mode)}, not an image file"
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(handle, min(_READ_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as error:
        return UNREADABLE, _os_error(error)
    finally:
        os.close(handle)
    if total > max_bytes:
        return image_decode.OVERSIZED_FILE, f"more than {max_bytes} bytes (its size said {info.st_size})"
    return b"".join(chunks)


def read_remote_file(path: str, max_bytes: int) -> "bytes | tuple[str, str]":
    """A file's bytes through Beam's filesystems (gs://, s3://, ...), read as stored and bounded like a local one."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            chunks, total = [], 0
            while total <= max_bytes:
                chunk = handle.read(min(_READ_CHUNK, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except Exception as error:  # any filesystem's error: a reject, never a failed job
        return UNREADABLE, f"{type(error).__name__}: {error}"
    if total > max_bytes:
        return image_decode.OVERSIZED_FILE, f"more than {max_bytes} bytes"
    return b"".join(chunks)


def check_glob(spec: SourceSpec) -> int:
    """The number of entries the glob matches now; none is an error naming the pattern."""
    if _is_local(spec.value):
        prefix = re.match(r"^[^[*?]*", spec.value).group(0)
        root = os.path.dirname(prefix) if prefix != spec.value else ""
        if root and os.path.isdir(root) and not os.access(root, os.R_OK | os.X_OK):
            raise CopycatError(f"--source={spec.name}: cannot list {root}: permission denied")
        try:
            count = sum(1 for _ in _list_local(spec.value, spec.name))
        except OSError as error:
            raise CopycatError(f"--source={spec.name}: cannot list {spec.value}: {_os_error(error)}") from None
    else:
        try:
            matched = FileSystems.match([spec.value])[0].metadata_list
        except Exception as error:
            raise CopycatError(f"--source={spec.name}: cannot list {spec.value}: {error}") from None
        count = sum(1 for m in matched if not m.path.endswith("/"))
    if not count:
        raise CopycatError(f"--source={spec.name} matched no files; check the path and the pattern")
    return count


class _ReadFile(beam.DoFn):
    """A listed path → RawImage, or EarlyReject with the reason it cannot be read (rejects pass through)."""

    def __init__(self, source: str, max_file_bytes: int, local: bool):
        self._source = source
        self._max_file_bytes = max_file_bytes
        self._local = local

    def process(self, entry):
        if isinstance(entry, EarlyReject):
            yield entry
            return
        path = entry.path if hasattr(entry, "path") else entry  # a Beam FileMetadata, or a local path
        read = read_local_file if self._local else read_remote_file
        try:
            result = read(path, self._max_file_bytes)
        except Exception as error:  # nothing about one file may end the job
            result = UNREADABLE, f"{type(error).__name__}: {error}"
        if isinstance(result, bytes):
            yield RawImage(self._source, path, result)
        else:
            yield EarlyReject(self._source, path, *result)


class ReadFolder(beam.PTransform):
    """Every entry a glob matches, each read whole (bounded), or rejected with the reason it cannot be."""

    def __init__(self, spec: SourceSpec, max_file_bytes: int):
        super().__init__()
        self._spec = spec
        self._max_file_bytes = max_file_bytes

    def expand(self, pipeline):
        pattern, source = self._spec.value, self._spec.name
        local = _is_local(pattern)
        if local:
            listed = (
                pipeline
                | "Pattern" >> beam.Create([pattern])
                | "List" >> beam.FlatMap(_list_local, source)
            )
        else:
            listed = (
                pipeline
                | "Match" >> fileio.MatchFiles(pattern)
                | "Files" >> beam.Filter(lambda metadata: not metadata.path.endswith("/"))
            )
        return (
            listed
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadFile(source, self._max_file_bytes, local))
        )


# ---------------------------------------------------------------------------------------------
# tfds:NAME[:SPLIT] — a prepared TFDS dataset (imagenet2012, coco/2017, visual_domain_decathlon/...)


def tfds_builder(spec: SourceSpec, data_dir: str | None):
    """The TFDS builder of a prepared dataset, its image feature and split; errors name the fix."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(spec.value, data_dir=data_dir)
    except Exception as error:
        raise CopycatError(
            f"--source={spec.name}: TFDS does not know {spec.value!r} in --tfds_data_dir={data_dir} ({error})"
        ) from None
    if not builder.is_prepared():
        raise CopycatError(
            f"--source={spec.name}: the dataset is not prepared in {builder.data_dir}; prepare it first "
            f"(tfds build {spec.value} --data_dir=..., with manual downloads where TFDS asks) and pass --tfds_data_dir"
        )
    images = [name for name, feature in builder.info.features.items() if isinstance(feature, tfds.features.Image)]
    if not images:
        raise CopycatError(f"--source={spec.name}: the dataset has no top-level image feature")
    image_feature = "image" if "image" in images else images[0]
    split = spec.split or "+".join(sorted(builder.info.splits))
    try:
        builder.info.splits[split]
    except Exception:
        raise CopycatError(
            f"--source={spec.name}: no split {split!r}; the dataset has {', '.join(sorted(builder.info.splits))}"
        ) from None
    return builder, image_feature, split


class ReadTfds(beam.PTransform):
    """The still-encoded images of a TFDS split, keyed by their tfds_id (read shard by shard)."""

    def __init__(self, spec: SourceSpec, data_dir: str | None):
        super().__init__()
        self._spec = spec
        self._data_dir = data_dir

    def expand(self, pipeline):
        import tensorflow_datasets as tfds

        builder, feature, split = tfds_builder(self._spec, self._data_dir)
        source = self._spec.name

        def to_raw(example):
            return RawImage(source, example["tfds_id"].decode(), bytes(example[feature]))

        return (
            pipeline
            | "ReadTfds" >> tfds.beam.ReadFromTFDS(
                builder,
                split=split,
                decoders={feature: tfds.decode.SkipDecoding()},
                read_config=tfds.ReadConfig(add_tfds_id=True),
            )
            | "AsNumpy" >> beam.Map(tfds.as_numpy)
            | "ToRaw" >> beam.Map(to_raw)
        )


# ---------------------------------------------------------------------------------------------
# bundled — random crops of the photos that ship inside installed packages (offline default)


def bundled_photo_paths() -> list[str]:
    """Natural photos shipped by scikit-image and scikit-learn (no download needed)."""
    import skimage.data
    import sklearn.datasets

    skimage_dir = os.path.dirname(skimage.data.__file__)
    sklearn_dir = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")
    names = [
        (skimage_dir, n) for n in (
            "astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
            "motorcycle_right.png", "hubble_deep_field.jpg", "retina.jpg", "camera.png", "coins.png",
            "moon.png", "brick.png", "grass.png", "gravel.png", "immunohistochemistry.png", "ihc.png",
            "page.png", "clock_motion.png", "color.png", "cell.png",
        )
    ] + [(sklearn_dir, n) for n in ("china.jpg", "flower.jpg")]
    paths = [os.path.join(d, n) for d, n in names if os.path.exists(os.path.join(d, n))]
    if not paths:
        raise CopycatError("--source=bundled: no bundled photos found; is scikit-image installed?")
    return paths


class _CutCrop(beam.DoFn):
    """Crop i of the bundled photos: a random photo, scale, aspect, position and flip (seeded)."""

    def __init__(self, seed: int, paths: list[str]):
        self._seed = seed
        self._paths = paths
        self._photos = None

    def setup(self):
        import numpy as np
        import PIL.Image

        self._photos = [np.asarray(PIL.Image.open(p).convert("RGB")) for p in self._paths]

    def process(self, index: int):
        import PIL.Image

        rng = random.Random(f"{self._seed}/{index}")
        which = rng.randrange(len(self._photos))
        photo = self._photos[which]
        height, width = photo.shape[:2]
        side = min(height, width) * rng.uniform(0.15, 1.0)
        aspect = rng.uniform(0.75, 1.333)
        crop_h = max(8, min(height, int(side / aspect ** 0.5)))
        crop_w = max(8, min(width, int(side * aspect ** 0.5)))
        top, left = rng.randint(0, height - crop_h), rng.randint(0, width - crop_w)
        crop = photo[top:top + crop_h, left:left + crop_w]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        buffer = io.BytesIO()
        PIL.Image.fromarray(crop).save(buffer, "JPEG", quality=95)
        name = os.path.basename(self._paths[which])
        yield RawImage(BUNDLED, f"{name}#crop{index}@{left},{top},{crop_w}x{crop_h}", buffer.getvalue())


class ReadBundled(beam.PTransform):
    def __init__(self, crops: int, seed: int):
        super().__init__()
        self._crops = crops
        self._seed = seed

    def expand(self, pipeline):
        return (
            pipeline
            | "Indices" >> beam.Create(range(self._crops))
            | "Reshuffle" >> beam.Reshuffle()
            | "Cut" >> beam.ParDo(_CutCrop(self._seed, bundled_photo_paths()))
        )
