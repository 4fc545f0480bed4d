"""TFDS feature descriptions of the record kinds, so lake shards can carry TFDS metadata.

With these, ``tfds.folder_dataset.write_metadata`` can describe a folder of shards and
``tfds.builder_from_directory`` then loads it as a dataset (images decoded to uint8 RGB).
"""

import numpy as np
import tensorflow_datasets as tfds

from tfrecords_schema.kinds import BYTES, INT64, RecordKind


def tfds_features(kind: RecordKind, class_names: list[str] | None = None) -> tfds.features.FeaturesDict:
    """The FeaturesDict that decodes records of ``kind``.

    ``label`` becomes a ClassLabel when the class names are known, a plain int64 otherwise.
    """
    features = {}
    for field in kind.fields:
        if field.dtype == BYTES:  # the only bytes field is the encoded image
            features[field.name] = tfds.features.Image(shape=(None, None, 3), doc=field.doc)
        elif field.name == "label" and class_names:
            features[field.name] = tfds.features.ClassLabel(names=list(class_names), doc=field.doc)
        elif field.dtype == INT64:
            features[field.name] = tfds.features.Scalar(dtype=np.int64, doc=field.doc)
        else:
            features[field.name] = tfds.features.Text(doc=field.doc)
    return tfds.features.FeaturesDict(features)


def write_tfds_metadata(
    folder: str,
    kind: RecordKind,
    class_names: list[str] | None = None,
    shard_lengths: dict[str, list[int]] | None = None,
    num_bytes: dict[str, int] | None = None,
) -> None:
    """Describe the ``PREFIX-XXXXX-of-YYYYY.tfrecord`` shards of a folder with TFDS metadata.

    Each shard prefix becomes a split of that name, so afterwards
    ``tfds.builder_from_directory(folder).as_dataset(split="images")`` reads the images shards.
    A writer that knows its shards' record counts (``shard_lengths`` per split, and ``num_bytes``)
    passes them; otherwise TFDS counts by reading every shard once.
    """
    from tensorflow_datasets.core import naming

    template = naming.ShardedFileTemplate(
        data_dir=folder,
        template="{SPLIT}-{SHARD_X_OF_Y}.{FILEFORMAT}",
        dataset_name="copycat_" + kind.name,
        filetype_suffix="tfrecord",
    )
    split_infos = None
    if shard_lengths is not None:
        split_infos = [
            tfds.core.SplitInfo(
                name=split,
                shard_lengths=list(lengths),
                num_bytes=(num_bytes or {}).get(split, 0),
                filename_template=template.replace(split=split),
            )
            for split, lengths in shard_lengths.items()
        ]
    tfds.folder_dataset.write_metadata(
        data_dir=folder,
        features=tfds_features(kind, class_names),
        split_infos=split_infos,
        filename_template=template,
        check_data=split_infos is None,
    )
