"""The pool as adaptive querying needs it: ids, small thumbnails to score, and the bytes to send.

Built once per pool folder (and thumbnail size) by one streaming pass over its shards, into a local
cache folder (``pool_index-<pool digest>-<size>/``); later rounds and reruns read it back
memory-mapped, so scoring a round never decodes an image again and nothing holds the whole pool in
memory:

    index.json     the pool folder, its manifest digest, the size, the number of images
    ids.txt        content ids, one per line (position = row of the arrays below)
    sources.txt    each image's ``source`` field, one per line (``transform:VARIANT`` for derived images),
                   so a strategy can tell the pool's families apart
    thumbs.npy     uint8 [N, S, S, 3] thumbnails (what the interim copycat sees)
    images.bin     the encoded images, back to back; offsets.npy gives each one's [start, end)

A folder that is incomplete, or built from another pool or size, is rebuilt.
"""

import hashlib
import json
import logging
import os
import shutil

import numpy as np

from tfrecords_schema import IMAGE, LakeFolder
from tfrecords_schema.errors import LakeError

log = logging.getLogger("copycat.adaptive")


INDEX_FORMAT = 2  # 2: sources.txt beside ids.txt; an index of another format is rebuilt


def _digest(folder: LakeFolder) -> str:
    return hashlib.sha256(json.dumps(folder.manifest.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


class PoolIndex:
    """Read side of a built index."""

    def __init__(self, path: str):
        with open(os.path.join(path, "ids.txt")) as handle:
            self.ids = handle.read().split()
        with open(os.path.join(path, "sources.txt"), newline="\n") as handle:
            self.sources = handle.read().split("\n")[:-1]
        if len(self.sources) != len(self.ids):
            raise LakeError(f"{path}: sources.txt and ids.txt disagree; delete the folder to rebuild the index")
        self.thumbs = np.load(os.path.join(path, "thumbs.npy"), mmap_mode="r")
        self.offsets = np.load(os.path.join(path, "offsets.npy"))
        self._images = open(os.path.join(path, "images.bin"), "rb")

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, position: int) -> bytes:
        start, end = int(self.offsets[position]), int(self.offsets[position + 1])
        self._images.seek(start)
        return self._images.read(end - start)

    def close(self) -> None:
        self._images.close()


def _count(folder: LakeFolder) -> int:
    from copycat_tf.training.input import record_count

    return record_count(folder)


def _build(folder: LakeFolder, path: str, size: int, batch: int = 256) -> int:
    import tensorflow as tf

    from tfrecords_schema.tfdata import parse_batch_function

    parse = parse_batch_function(IMAGE)

    def thumbnails(records):
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.cast(tf.round(tf.image.resize(image, (size, size), antialias=True)), tf.uint8)

        pixels = tf.map_fn(one, records["image"], fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
        return records["id"], records["image"], records["source"], pixels

    total = _count(folder)
    dataset = (tf.data.TFRecordDataset(folder.shards).batch(batch).map(parse)
               .map(thumbnails, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2))
    thumbs = np.lib.format.open_memmap(os.path.join(path, "thumbs.npy"), "w+", np.uint8, (total, size, size, 3))
    offsets = [0]
    seen = 0
    with (open(os.path.join(path, "ids.txt"), "w") as ids,
          open(os.path.join(path, "sources.txt"), "w", newline="\n") as sources,
          open(os.path.join(path, "images.bin"), "wb") as images):
        for batch_ids, batch_images, batch_sources, batch_pixels in dataset.as_numpy_iterator():
            n = len(batch_ids)
            if seen + n > total:
                raise LakeError(f"{folder.path} holds more records than its manifest says ({total})")
            thumbs[seen:seen + n] = batch_pixels
            for image_id, data, source in zip(batch_ids, batch_images, batch_sources):
                ids.write(image_id.decode() + "\n")
                sources.write(source.decode().replace("\n", " ").replace("\r", " ") + "\n")
                images.write(data)
                offsets.append(offsets[-1] + len(data))
            seen += n
            if seen // 10_000 != (seen - n) // 10_000:
                log.info("pool index: %d of %d images", seen, total)
    if seen != total:
        raise LakeError(f"{folder.path} holds {seen} records, its manifest says {total}")
    thumbs.flush()
    del thumbs
    np.save(os.path.join(path, "offsets.npy"), np.array(offsets, dtype=np.int64))
    return seen


def open_or_build(folder: LakeFolder, work: str, size: int) -> PoolIndex:
    """The index of ``folder`` at thumbnail ``size`` under ``work``, built if missing or stale."""
    marker = {"pool": folder.path, "manifest": _digest(folder), "size": size, "format": INDEX_FORMAT}
    path = os.path.join(work, f"pool_index-{marker['manifest']}-{size}")  # one cache may serve several pools
    info = os.path.join(path, "index.json")
    if os.path.exists(info):
        with open(info) as handle:
            found = json.load(handle)
        if {k: found.get(k) for k in marker} == marker:
            return PoolIndex(path)
    building = path + ".building"
    shutil.rmtree(building, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(building)
    log.info("indexing the pool %s (%d px thumbnails)", folder.path, size)
    count = _build(folder, building, size)
    with open(os.path.join(building, "index.json"), "w") as handle:
        json.dump({**marker, "images": count}, handle)
    os.replace(building, path)
    return PoolIndex(path)


__all__ = ["PoolIndex", "open_or_build"]
