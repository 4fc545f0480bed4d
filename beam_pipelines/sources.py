"""Where natural images come from: ``dir:GLOB``, ``tfds:NAME[:SPLIT]`` and ``bundled``.

Each source becomes a PCollection of RawImage (source name, key within the source, file bytes),
or of Rejected records for inputs refused before decoding (oversized files). Source specs are
checked before the pipeline starts, so a typo ends in one clear error instead of a failed job.
"""

import dataclasses
import io
import os
import random

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

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


def check_glob(spec: SourceSpec) -> int:
    """The number of files the glob matches now; none is an error naming the pattern."""
    try:
        matched = FileSystems.match([spec.value])[0].metadata_list
    except Exception as error:
        raise CopycatError(f"--source={spec.name}: cannot list {spec.value}: {error}") from None
    files = [m for m in matched if not m.path.endswith("/")]
    if not files:
        raise CopycatError(f"--source={spec.name} matched no files; check the path and the pattern")
    return len(files)


class _ReadFile(beam.DoFn):
    def __init__(self, source: str, max_file_bytes: int):
        self._source = source
        self._max_file_bytes = max_file_bytes

    def process(self, readable):
        path, size = readable.metadata.path, readable.metadata.size_in_bytes
        if size > self._max_file_bytes:
            yield EarlyReject(self._source, path, "oversized_file", f"{size} bytes is over {self._max_file_bytes}")
            return
        yield RawImage(self._source, path, readable.read())


class ReadFolder(beam.PTransform):
    """Every file a glob matches, read whole (files above the byte limit are rejected unread)."""

    def __init__(self, spec: SourceSpec, max_file_bytes: int):
        super().__init__()
        self._spec = spec
        self._max_file_bytes = max_file_bytes

    def expand(self, pipeline):
        return (
            pipeline
            | "Match" >> fileio.MatchFiles(self._spec.value)
            | "Open" >> fileio.ReadMatches(skip_directories=True)
            | "Read" >> beam.ParDo(_ReadFile(self._spec.name, self._max_file_bytes))
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
