"""pool_transforms: derive more candidate query images from the natural pool, without one problem image.

An attacker who knows what the problem's images look like (grayscale, light strokes on a dark
background, objects on a plain background) can turn natural photos into images that resemble them.
A *variant* is a chain of transforms joined by ``+``; ``--pool_transforms`` lists variants:

    grayscale   luminance only, as RGB
    invert      255 - pixel (dark objects on light become light on dark)
    contrast    stretch the histogram to the full range (2% cut at each end)
    zoom        a random crop of 30-60% of the side, enlarged back to the full size
    rotate      a random turn of up to 30 degrees either way, corners filled with the median colour
    lowres      shrunk to 6-12 px on the short side and enlarged back: the blur of tiny problem images
                (8x8 digits, 32x32 photos) once the oracle has resized them
    plain       a plain background: the darkest 50-80% of the pixels (a random share) black, the rest
                stretched; ``plain+invert`` gives dark objects on white
    strokes     a line drawing instead of the photo (only its size is kept): 1-3 random pen strokes
                (curves, lines, arcs), light on black, softened; ``strokes+invert`` dark on white
    scribble    a handwritten-looking mark instead of the photo: one pen path of 2-5 joined curves and
                loops, light on black, softened (``scribble+invert``: dark on white)
    bold        light marks thickened by 2-6% of the short side on each side (a maximum filter), as
                written with a broad pen; before ``invert`` (``scribble+bold+invert``) for dark on white

    --pool_transforms=grayscale+contrast,grayscale+invert+contrast,zoom+grayscale+contrast

The pool holds every original image and one derived image per (original, variant). Random choices
are seeded by (seed, original id, variant), so the same options give the same pool on any runner.
Derived images get their own content id, ``source = transform:VARIANT`` and ``source_key =`` the
original's id; a variant that leaves the stored pixels unchanged (a gray photo's grayscale) keeps the
original's id, and images with the same id are kept once and counted as duplicates (seen = kept +
duplicates).
"""

import dataclasses
import io
import logging
import random
from typing import Sequence

import apache_beam as beam
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter
import PIL.ImageOps

from beam_pipelines import lake_io
from beam_pipelines.pool_transform_names import NAMES, parse_variants  # noqa: F401 (parse_variants re-exported)
from beam_pipelines.runner import DIRECT, make_pipeline
from copycat_tf.config_checks import Rule, check_rules
from copycat_tf.errors import CopycatError
from tfrecords_schema import IMAGE, Manifest, fileio, input_entry, open_folder
from tfrecords_schema.extras import Extra
from tfrecords_schema.image_records import image_record

STAGE = "pool_transforms"
log = logging.getLogger("copycat.pool_transforms")


def _grayscale(image, rng):
    return PIL.ImageOps.grayscale(image).convert("RGB")


def _invert(image, rng):
    return PIL.ImageOps.invert(image)


def _contrast(image, rng):
    return PIL.ImageOps.autocontrast(image, cutoff=2)


def _zoom(image, rng):
    width, height = image.size
    fraction = rng.uniform(0.3, 0.6)
    crop_w, crop_h = max(1, round(width * fraction)), max(1, round(height * fraction))
    left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
    return image.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), PIL.Image.Resampling.BICUBIC)


def _rotate(image, rng):
    fill = tuple(int(v) for v in np.median(np.asarray(image).reshape(-1, 3), axis=0))
    return image.rotate(rng.uniform(-30, 30), resample=PIL.Image.Resampling.BILINEAR, fillcolor=fill)


def _lowres(image, rng):
    width, height = image.size
    side = rng.randint(6, 12)
    scale = side / min(width, height)
    small = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), PIL.Image.Resampling.BOX)
    return small.resize((width, height), PIL.Image.Resampling.BILINEAR)


def _plain(image, rng):
    """An object on a plain background: what is darker than a random 50th-80th percentile of the luminance
    becomes black and the rest is stretched to the full range (follow with ``invert`` for dark on light)."""
    pixels = np.asarray(image, np.float32)
    luminance = pixels.mean(axis=2)
    cut = float(np.percentile(luminance, rng.uniform(50, 80)))
    top = max(float(luminance.max()), cut + 1.0)
    stretched = np.clip(np.round((pixels - cut) * (255.0 / (top - cut))), 0, 255)
    stretched[luminance <= cut] = 0  # the background is black in every channel, also in a colour image
    return PIL.Image.fromarray(stretched.astype(np.uint8))


def _strokes(image, rng):
    """A line drawing instead of the photo: one to three random pen strokes (Bezier curves, straight lines
    or elliptic arcs) of random width, light on black, softened a little; the image gives only the size.
    Free and unlimited, it stands for "marks on a plain background" (follow with ``invert`` for dark on
    light); an oracle of another look gives these its catch-all answers, and the family mixture then
    spends little on them."""
    width, height = image.size
    side = min(width, height)
    canvas = PIL.Image.new("L", (width, height), 0)
    draw = PIL.ImageDraw.Draw(canvas)

    def point():
        return (rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height)

    for _ in range(rng.randint(1, 3)):
        pen = max(1, round(side * rng.uniform(0.05, 0.14)))
        shape = rng.random()
        if shape < 0.6:  # a cubic Bezier curve through four random control points
            p = [point() for _ in range(4)]
            steps = [i / 24 for i in range(25)]
            curve = [tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                           for a, b, c, d in zip(*p)) for t in steps]
            draw.line(curve, fill=255, width=pen, joint="curve")
        elif shape < 0.8:  # a straight line
            draw.line([point(), point()], fill=255, width=pen)
        else:  # an arc of an ellipse
            (x0, y0), (x1, y1) = point(), point()
            box = (min(x0, x1), min(y0, y1), max(x0, x1) + side * 0.1, max(y0, y1) + side * 0.1)
            start = rng.uniform(0, 360)
            draw.arc(box, start, start + rng.uniform(90, 360), fill=255, width=pen)
    canvas = canvas.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return canvas.convert("RGB")


def _scribble(image, rng):
    """A handwritten-looking mark instead of the photo: one pen path of two to five joined curves (each starts
    where the last ended, with a loop now and then), of one random width, light on black, softened a little.
    Where ``strokes`` draws separate marks, this draws connected shapes with closed parts, as characters are
    written; the image gives only the size."""
    width, height = image.size
    side = min(width, height)
    canvas = PIL.Image.new("L", (width, height), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    pen = max(1, round(side * rng.uniform(0.06, 0.13)))

    def point():
        return (rng.uniform(0.2, 0.8) * width, rng.uniform(0.15, 0.85) * height)

    here = point()
    for _ in range(rng.randint(2, 5)):
        if rng.random() < 0.3:  # a loop through the current point
            rx, ry = side * rng.uniform(0.1, 0.25), side * rng.uniform(0.1, 0.3)
            cx = min(max(here[0] + rng.choice((-1, 1)) * rx, rx), width - rx)
            cy = min(max(here[1] + rng.choice((-1, 1)) * ry, ry), height - ry)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), outline=255, width=pen)
            continue
        p = [here, point(), point(), point()]
        steps = [i / 24 for i in range(25)]
        curve = [tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                       for a, b, c, d in zip(*p)) for t in steps]
        draw.line(curve, fill=255, width=pen, joint="curve")
        here = p[3]
    canvas = canvas.filter(PIL.ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return canvas.convert("RGB")


def _bold(image, rng):
    """Light marks drawn with a broader pen: each pixel takes the brightest value within a random 2-6% of the
    short side around it (a square maximum filter), so light strokes on a dark ground grow thicker."""
    reach = max(1, round(min(image.size) * rng.uniform(0.02, 0.06)))
    return image.filter(PIL.ImageFilter.MaxFilter(2 * reach + 1))


TRANSFORMS = {"grayscale": _grayscale, "invert": _invert, "contrast": _contrast, "zoom": _zoom, "rotate": _rotate,
              "lowres": _lowres, "plain": _plain, "strokes": _strokes, "scribble": _scribble,
              "bold": _bold}
assert tuple(TRANSFORMS) == NAMES, "pool_transform_names.NAMES must list exactly the transforms implemented here"


def apply_variant(image: PIL.Image.Image, variant: str, rng: random.Random) -> PIL.Image.Image:
    """The variant's transforms applied left to right to an RGB image."""
    for name in variant.split("+"):
        image = TRANSFORMS[name](image, rng)
    return image


def decode_rgb(record: dict) -> PIL.Image.Image:
    return PIL.Image.open(io.BytesIO(record["image"])).convert("RGB")


def derive(record: dict, variant: str, seed: int, original: PIL.Image.Image | None = None) -> dict:
    """The derived record of one original image and one variant (``original``: its pixels, if decoded already)."""
    original = original or decode_rgb(record)
    image = apply_variant(original, variant, random.Random(f"{seed}/{record['id']}/{variant}"))
    if np.array_equal(np.asarray(image), np.asarray(original)):  # e.g. a gray photo's grayscale: the original again
        return {**record, "source": f"transform:{variant}", "source_key": record["id"]}
    return image_record(image, f"transform:{variant}", record["id"], fmt="jpeg",
                        original_size=(record["original_width"], record["original_height"]))


@dataclasses.dataclass
class PoolConfig:
    images: str
    output: str
    variants: list[str]
    seed: int = 0
    num_shards: int = 0  # 0: as many as the input has

    RULES = (Rule("seed", "seed", 0), Rule("num_shards", "num_shards", 0, 100_000))

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


def _with_variants(variants: list[str], seed: int):
    derived = beam.metrics.Metrics.counter(STAGE, "derived")

    def expand(record):
        yield record
        original = decode_rgb(record)  # once per image, whatever the number of variants
        for variant in variants:
            derived.inc()
            yield derive(record, variant, seed, original)

    return expand


def _first_of_each_id(element):
    _, records = element
    records = sorted(records, key=lambda r: (r["source"], r["source_key"]))
    if len(records) > 1:
        beam.metrics.Metrics.counter(STAGE, "duplicates").inc(len(records) - 1)
    return records[0]


def build_pipeline(pipeline, config: PoolConfig, shards: Sequence[str], num_shards: int):
    records = pipeline | "Read" >> lake_io.ReadRecords(shards, IMAGE)
    candidates = records | "Derive" >> beam.FlatMap(_with_variants(config.variants, config.seed))
    kept = (candidates | "ById" >> beam.Map(lambda r: (r["id"], r)) | "GroupById" >> beam.GroupByKey()
            | "OnePerId" >> beam.Map(_first_of_each_id))
    written = kept | "WriteShards" >> lake_io.WriteShards(config.output, IMAGE, num_shards)
    count = beam.combiners.Count.Globally
    return (
        pipeline
        | "StatsTrigger" >> beam.Create([None])
        | "WriteStats" >> beam.Map(
            lambda _, originals, seen, kept_count, shards_written: lake_io.write_stats(config.output, {
                "originals": originals, "seen": seen, "kept": kept_count,
                "shards": sorted(shards_written, key=lambda s: s["index"]),
            }),
            beam.pvalue.AsSingleton(records | "CountOriginals" >> count()),
            beam.pvalue.AsSingleton(candidates | "CountSeen" >> count()),
            beam.pvalue.AsSingleton(kept | "CountKept" >> count()),
            beam.pvalue.AsList(written),
        )
    )


def _same_pool(manifest: Manifest, config: PoolConfig, source_manifest: Manifest) -> bool:
    options = manifest.options
    return (manifest.stage == STAGE and options.get("variants") == config.variants and options.get("seed") == config.seed
            and manifest.inputs and manifest.inputs[0].get("manifest") == source_manifest.to_dict())


def run(config: PoolConfig, runner: str = DIRECT, pipeline_args: Sequence[str] = ()) -> Manifest:
    """Write the pool folder (originals + derived images); an existing pool of the same options is reused."""
    config.validate()
    source = open_folder(config.images, IMAGE)
    try:
        lake_io.claim_stage_output(config.output, STAGE, [("--images", config.images)], clear=False)
    except CopycatError as error:
        raise CopycatError(f"--pool: {error}".replace("--output=", "")) from None
    if fileio.exists(fileio.join(config.output, "manifest.json")):
        existing = open_folder(config.output, IMAGE).manifest
        if _same_pool(existing, config, source.manifest):
            log.info("pool_transforms: reusing %s (%d images)", config.output, existing.counts["kept"])
            return existing
    num_shards = lake_io.shards_for(lake_io.total_bytes(source.shards) * (1 + len(config.variants)), config.num_shards)
    lake_io.clear_stage_files(config.output)
    log.info("pool_transforms: %s with variants %s -> %s", config.images, ", ".join(config.variants), config.output)
    with make_pipeline(runner, pipeline_args) as pipeline:
        build_pipeline(pipeline, config, source.shards, num_shards)
    stats = lake_io.read_and_remove_stats(config.output)
    counts = {"originals": stats["originals"], "derived": stats["seen"] - stats["originals"], "seen": stats["seen"],
              "kept": stats["kept"], "duplicates": stats["seen"] - stats["kept"]}
    manifest = Manifest(
        stage=STAGE, record_kind=IMAGE.name,
        options={**dataclasses.asdict(config), "runner": runner, "pipeline_args": list(pipeline_args)},
        counts=counts, inputs=[input_entry(config.images, source.manifest)],
        extra=Extra(shard_lengths=lake_io.shard_lengths(stats["shards"])).to_dict(),
    )
    lake_io.finish_folder(config.output, manifest, stats["shards"])
    log.info("pool_transforms: %d originals + %d derived = %d kept (%d duplicates) -> %s", counts["originals"],
             counts["derived"], counts["kept"], counts["duplicates"], config.output)
    return manifest
