"""Problems read from prepared TFDS datasets (the real loading code; datasets are not downloaded here).

Each split of a problem names a TFDS dataset and split. Parts are TFDS shards, so large datasets are
read in parallel. ``keep_half`` splits one TFDS split into two disjoint halves by a hash of each
example's tfds_id (e.g. ODD and PDD from one train split). Class names of the source are mapped onto
the problem's by name (``aliases`` for the few that differ), and examples of other classes are dropped.
Video datasets contribute their middle frame.
"""

import dataclasses
import hashlib

from copycat_tf.errors import CopycatError
from copycat_tf.problems.base import Example, Problem


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    dataset: str
    split: str
    keep_half: int | None = None  # 0 or 1: keep examples whose tfds_id hash has this parity
    aliases: tuple[tuple[str, str], ...] = ()  # (source class name, problem class name)


@dataclasses.dataclass(frozen=True)
class _Part:
    source: TfdsSource
    data_dir: str | None
    shard_split: str  # e.g. "train[3shard]"
    class_names: tuple[str, ...]


def _builder(source: TfdsSource, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(source.dataset, data_dir=data_dir)
    except Exception as error:
        raise CopycatError(f"TFDS does not know {source.dataset!r} ({error}); check --tfds_data_dir") from None
    if not builder.is_prepared():
        raise CopycatError(
            f"TFDS dataset {source.dataset} is not prepared in {builder.data_dir}; prepare it first "
            f"(tfds build {source.dataset} --data_dir=DIR, with any manual download TFDS asks for) and pass --tfds_data_dir=DIR"
        )
    return builder


def _features(builder):
    import tensorflow_datasets as tfds

    features = builder.info.features
    image = next((n for n in ("image", "video") if n in features), None)
    image = image or next((n for n, f in features.items() if isinstance(f, (tfds.features.Image, tfds.features.Video))), None)
    label = "label" if "label" in features else None
    if image is None or label is None:
        raise CopycatError(f"{builder.name}: needs an image (or video) feature and a 'label' feature")
    return image, label, isinstance(features[image], tfds.features.Video)


def _read(part: _Part):
    import tensorflow_datasets as tfds

    builder = _builder(part.source, part.data_dir)
    image_feature, label_feature, is_video = _features(builder)
    source_names = builder.info.features[label_feature].names
    aliases = dict(part.source.aliases)
    to_problem = {i: part.class_names.index(aliases.get(n, n)) for i, n in enumerate(source_names)
                  if aliases.get(n, n) in part.class_names}
    dataset = builder.as_dataset(split=part.shard_split, decoders={image_feature: tfds.decode.SkipDecoding()},
                                 read_config=tfds.ReadConfig(add_tfds_id=True))
    for example in tfds.as_numpy(dataset):
        key = example["tfds_id"].decode()
        if part.source.keep_half is not None and hashlib.sha256(key.encode()).digest()[0] % 2 != part.source.keep_half:
            continue
        label = int(example[label_feature])
        if label not in to_problem:
            continue
        image = example[image_feature]
        if is_video:
            image = image[len(image) // 2]
        yield Example(bytes(image), to_problem[label], key)


def tfds_problem(name: str, description: str, class_names: tuple[str, ...], sources: dict[str, TfdsSource],
                 data_dir: str | None) -> Problem:
    parts = {}
    for split, source in sources.items():
        builder = _builder(source, data_dir)
        _features(builder)
        info = builder.info.splits[source.split]
        parts[split] = [_Part(source, data_dir, f"{source.split}[{i}shard]", class_names) for i in range(info.num_shards)]
    return Problem(name=name, description=description, class_names=class_names, parts=parts, read_part=_read)


def generic_tfds_problem(dataset: str, data_dir: str | None) -> Problem:
    """``tfds:NAME``: ODD and PDD are disjoint halves of the train split, TDD is the test split."""
    builder = _builder(TfdsSource(dataset, "train"), data_dir)
    _, label_feature, _ = _features(builder)
    names = tuple(builder.info.features[label_feature].names)
    test = "test" if "test" in builder.info.splits else None
    if test is None:
        raise CopycatError(f"tfds:{dataset} has no test split; its splits: {', '.join(builder.info.splits)}")
    sources = {"odd": TfdsSource(dataset, "train", keep_half=0), "pdd": TfdsSource(dataset, "train", keep_half=1),
               "tdd": TfdsSource(dataset, test)}
    return tfds_problem(f"tfds:{dataset}", f"TFDS {dataset}: train halves as ODD/PDD, test as TDD", names, sources, data_dir)
