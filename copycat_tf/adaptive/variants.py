"""Variant queries: near copies of images the oracle already put in a rare class, made and kept for asking.

Natural images land in a problem's classes very unevenly (one digit class can take half of every
random batch), and some classes are so rare that the pool runs dry long before they have their
quota. A class's decision region is where its known images lie, so an image close to one of them is
much more likely to fall in the same class than a random pool image. A *variant* is such an image:

    blend (half the time)   mixed with another image the oracle put in the same class, weight 0.5-0.8
    move (always)           a turn of up to 15 degrees, a shift of up to 10% of the side, a zoom of
                            0.9-1.1, the uncovered edge filled with the corner colour

The oracle labels every variant (a variant may land in another class: that is information too). No
problem image is involved: parents and partners are pool images or earlier variants.

Variants live in a folder of their own (``OUTPUT/variants/``): one file per round under ``rounds/``,
written before the round's variants are asked, so a killed run finds every image it may have asked
about; at the end, a lake folder of images (``source = variant:blend+move`` or ``variant:move``,
``source_key =`` the parent's id) from which the labeled output takes the variants the ledger answered.
"""

import io
import logging
import os
import random

import numpy as np
import PIL.Image

from copycat_tf.stage_output import claim_output
from tfrecords_schema import IMAGE, MANIFEST_NAME, Manifest, encode, fileio, write_manifest, write_shards
from tfrecords_schema.extras import Extra
from tfrecords_schema.image_records import image_record

STAGE = "adaptive_variants"
log = logging.getLogger("copycat.adaptive")


def decode(data: bytes) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(data)).convert("RGB")


def make_variant(parent: PIL.Image.Image, partner: PIL.Image.Image | None, rng: random.Random) -> PIL.Image.Image:
    """One near copy of ``parent`` (RGB), blended with ``partner`` (another image of its class) when one is given."""
    image = np.asarray(parent, dtype=np.float32)
    if partner is not None:
        weight = rng.uniform(0.5, 0.8)
        other = np.asarray(partner.resize(parent.size, PIL.Image.Resampling.BILINEAR), dtype=np.float32)
        image = weight * image + (1 - weight) * other
    picture = PIL.Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
    width, height = picture.size
    fill = tuple(int(v) for v in np.asarray(picture)[0, 0])
    shift = (rng.uniform(-0.1, 0.1) * width, rng.uniform(-0.1, 0.1) * height)
    moved = picture.rotate(rng.uniform(-15, 15), resample=PIL.Image.Resampling.BILINEAR, translate=shift,
                           fillcolor=fill)
    zoom = rng.uniform(0.9, 1.1)
    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    moved = moved.resize(size, PIL.Image.Resampling.BILINEAR)
    canvas = PIL.Image.new("RGB", (width, height), fill)
    canvas.paste(moved, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def variant_record(image: PIL.Image.Image, parent_id: str, blended: bool) -> dict:
    """The lake record (IMAGE kind, PNG) of one variant."""
    return image_record(image, "variant:blend+move" if blended else "variant:move", parent_id)


class VariantStore:
    """The variants made so far: ids, parents and thumbnails in memory, the encoded images on disk.

    Each round's variants are one file, ``rounds/round-NNNNN.tfrecord``, written (under a temporary
    name, then renamed) before any of them is asked: a killed run finds every variant it may have paid
    for. ``finish`` then writes the lake folder the labeled output reads (one shard and a manifest);
    a later run over the same output loads the rounds again, whatever its ``--adaptive_variants``.
    """

    def __init__(self, folder: str | None, thumb_size: int):
        """``folder`` None: a store that stays empty (rounds without variants)."""
        self.folder, self.thumb_size = folder, thumb_size
        self.ids: list[str] = []
        self.parents: list[str] = []
        self._where: list[tuple[int, int]] = []  # (round file, record number) of each variant
        self._files: list[str] = []
        self._fresh: dict[int, bytes] = {}  # the last round's images, about to be asked
        thumbs = []
        if folder:
            for path in sorted(fileio.glob(fileio.join(folder, "rounds", "round-*.tfrecord"))):
                for number, record in enumerate(self._read(path)):
                    self._keep(record, len(self._files), number)
                    thumbs.append(self._thumb(record["image"]))
                self._files.append(path)
        self.thumbs = np.stack(thumbs) if thumbs else np.zeros((0, thumb_size, thumb_size, 3), np.uint8)

    def __len__(self) -> int:
        return len(self.ids)

    @staticmethod
    def _read(path: str):
        from tfrecords_schema import decode
        from tfrecords_schema.shards import iterate_shard

        return (decode(IMAGE, serialized) for serialized in iterate_shard(path))

    def _keep(self, record: dict, file: int, number: int) -> None:
        self.ids.append(record["id"])
        self.parents.append(record["source_key"])
        self._where.append((file, number))

    def _thumb(self, data: bytes) -> np.ndarray:
        return np.asarray(decode(data).resize((self.thumb_size, self.thumb_size), PIL.Image.Resampling.BILINEAR))

    def images(self, positions) -> list[bytes]:
        """The encoded images of these variants (each round file read at most once)."""
        wanted: dict[int, dict[int, int]] = {}
        for position in positions:
            if position not in self._fresh:
                file, number = self._where[position]
                wanted.setdefault(file, {})[number] = position
        found = {}
        for file, numbers in wanted.items():
            for number, record in enumerate(self._read(self._files[file])):
                if number in numbers:
                    found[numbers[number]] = record["image"]
        return [self._fresh[p] if p in self._fresh else found[p] for p in positions]

    def add(self, records: list[dict]) -> None:
        """Keep one round's variants: its file first, then the in-memory view."""
        if not records:
            return
        import tensorflow as tf

        claim_output(self.folder, STAGE, clear=False)
        rounds = fileio.join(self.folder, "rounds")
        fileio.makedirs(rounds)
        path = fileio.join(rounds, f"round-{len(self._files) + 1:05d}.tfrecord")
        with tf.io.TFRecordWriter(path + ".tmp") as writer:
            for record in records:
                writer.write(encode(IMAGE, record))
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
        first = len(self.ids)
        for number, record in enumerate(records):
            self._keep(record, len(self._files), number)
        self._files.append(path)
        self._fresh = {first + i: r["image"] for i, r in enumerate(records)}
        self.thumbs = np.concatenate([self.thumbs, np.stack([self._thumb(r["image"]) for r in records])])

    def finish(self) -> str | None:
        """Write the lake folder of every variant (shard, then manifest); its path, or None if there are none."""
        if not self.ids:
            return None
        claim_output(self.folder, STAGE, clear=False)
        manifest = fileio.join(self.folder, MANIFEST_NAME)
        if fileio.exists(manifest):  # an older folder stops being a finished one before its shard changes
            import tensorflow as tf

            tf.io.gfile.remove(manifest)
        records = (record for path in self._files for record in self._read(path))
        count = write_shards(self.folder, IMAGE, records, num_shards=1)
        write_manifest(self.folder, Manifest(
            stage=STAGE, record_kind=IMAGE.name, counts={"kept": count},
            options={"made_by": "copycat-steal-labels --adaptive_variants", "rounds": len(self._files)},
            extra=Extra(shard_lengths=[count]).to_dict()))
        return self.folder


def make_round(parents: list[tuple[str, bytes]], partners: list[bytes], rng: random.Random,
               taken: set[str]) -> list[dict]:
    """Variant records of (parent id, parent bytes) each with a same-class partner; none whose id is ``taken``.

    A variant identical to an image already known (in the pool or made before) is dropped, so the
    oracle is never asked twice about one image.
    """
    made = []
    for (parent_id, data), partner in zip(parents, partners):
        blended = rng.random() < 0.5
        image = make_variant(decode(data), decode(partner) if blended else None, rng)
        record = variant_record(image, parent_id, blended)
        if record["id"] not in taken:
            taken.add(record["id"])
            made.append(record)
    return made


def seeded(seed: int, round_number: int) -> random.Random:
    return random.Random(f"{seed}/variants/{round_number}")


def store_folder(output: str) -> str:
    return fileio.join(output, "variants") if fileio.is_remote(output) else os.path.join(output, "variants")


__all__ = ["STAGE", "VariantStore", "make_round", "make_variant", "seeded", "store_folder", "variant_record"]
