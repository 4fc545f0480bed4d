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

Variants live in a lake folder of their own (``OUTPUT/variants/``, images with ``source =
variant:blend+move`` or ``variant:move`` and ``source_key =`` the parent's id), rewritten before each
round's variants are asked, so a killed run finds every image it may have asked about, and the
labeled output can carry the variants the ledger answered.
"""

import io
import logging
import os
import random

import numpy as np
import PIL.Image

from copycat_tf.stage_output import claim_output
from tfrecords_schema import IMAGE, Manifest, fileio, open_folder, read_records, write_manifest, write_shards
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
    """The variants made so far (ids, encoded images, thumbnails), backed by their lake folder."""

    def __init__(self, folder: str | None, thumb_size: int):
        """``folder`` None: a store that stays empty (rounds without variants)."""
        self.folder, self.thumb_size = folder, thumb_size
        self.records: list[dict] = []
        if folder and fileio.exists(fileio.join(folder, "manifest.json")):
            self.records = list(read_records(open_folder(folder, IMAGE), IMAGE))
        self.ids = [r["id"] for r in self.records]
        self.thumbs = np.stack([self._thumb(r["image"]) for r in self.records]) if self.records else np.zeros(
            (0, thumb_size, thumb_size, 3), np.uint8)

    def __len__(self) -> int:
        return len(self.records)

    def _thumb(self, data: bytes) -> np.ndarray:
        return np.asarray(decode(data).resize((self.thumb_size, self.thumb_size), PIL.Image.Resampling.BILINEAR))

    def image(self, position: int) -> bytes:
        return self.records[position]["image"]

    def add(self, records: list[dict]) -> None:
        """Keep new variants and rewrite the folder (shard, then manifest) before any of them is asked."""
        if not records:
            return
        self.records.extend(records)
        self.ids.extend(r["id"] for r in records)
        self.thumbs = np.concatenate([self.thumbs, np.stack([self._thumb(r["image"]) for r in records])])
        claim_output(self.folder, STAGE, clear=False)
        temporary = fileio.join(self.folder, "next.tmp")
        write_shards(temporary, IMAGE, self.records, num_shards=1)
        shard = "images-00000-of-00001.tfrecord"
        import tensorflow as tf

        tf.io.gfile.rename(fileio.join(temporary, shard), fileio.join(self.folder, shard), overwrite=True)
        tf.io.gfile.rmtree(temporary)
        write_manifest(self.folder, Manifest(
            stage=STAGE, record_kind=IMAGE.name, counts={"kept": len(self.records)},
            options={"made_by": "copycat-steal-labels --adaptive_variants"},
            extra={"shard_lengths": [len(self.records)]}))

    def shards(self) -> list[str]:
        return open_folder(self.folder, IMAGE).shards if self.records else []


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
    return fileio.join(output, "variants") if "://" in output else os.path.join(output, "variants")


__all__ = ["STAGE", "VariantStore", "make_round", "make_variant", "seeded", "store_folder", "variant_record"]
