"""The options of copycat-build-npdd, each knob written once with its default and help text.

``bin/build_npdd.py`` generates its flags from these fields; this module imports no Beam and no
TensorFlow, so ``--help`` and a bad value cost no start-up. ``beam_pipelines.build_npdd`` runs it.
"""

import dataclasses

from copycat_tf.config_checks import Rule, check_rules, option, required

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own decompression-bomb threshold


@dataclasses.dataclass
class BuildNpddConfig:
    """Everything build_npdd needs (the binary fills it from flags; tests build it directly)."""

    sources: list[str] = required(
        "Repeatable. dir:GLOB (any file pattern Beam reads: local, gs://; a plain folder means every file below "
        "it), tfds:NAME[:SPLIT] (a prepared TFDS dataset, e.g. imagenet2012, coco/2017, "
        "visual_domain_decathlon/imagenet12; all splits when SPLIT is left out) or bundled (random crops of "
        "photos shipped with scikit-image/scikit-learn).", flag="source", repeatable=True)
    output: str = required("Folder (local path or gs://...) this stage writes.", common=True)
    max_side: int = option(256, "Downscale so that the short side is at most this many pixels (a plain JPEG that "
                                "is already upright RGB and this small is kept byte for byte).")
    jpeg_quality: int = option(90, "JPEG quality (1-100) of the re-encoded images (a JPEG kept as it is keeps "
                                   "its own).")
    near_dup_bits: int = option(8, "Images whose 64-bit pHashes differ in at most this many bits are near "
                                   "duplicates (0 keeps only exact dedupe).")
    max_pixels: int = option(DEFAULT_MAX_PIXELS, "Images with more pixels are rejected as decompression bombs.")
    max_file_mb: float = option(64.0, "Files larger than this are rejected unread.")
    bundled_crops: int = option(2000, "How many random crops the bundled source cuts.")
    seed: int = option(0, "Seed of every random choice the stage makes.", common=True)
    tfds_data_dir: str | None = option(None, "TFDS data_dir for tfds: sources (default: TFDS's own).")
    num_shards: int = option(0, "Number of image shards; 0 sizes them by --shard_mb.")
    shard_mb: float = option(128.0, "Target shard size when --num_shards is 0.")
    max_bucket: int = option(256, "Hash buckets above this size are split further before pairwise checks.")
    workers: int = option(0, "Local processes that decode, hash and re-encode the images (0: every core). Only "
                             "with the default in-process DirectRunner; other runners spread the work themselves. "
                             "The shards are the same byte for byte whatever the count.")

    RULES = (
        Rule("max_side", "max_side", 8, 100_000), Rule("jpeg_quality", "jpeg_quality", 1, 100),
        Rule("near_dup_bits", "near_dup_bits", 0, 31), Rule("max_pixels", "max_pixels", 1, 10**12),
        Rule("max_file_mb", "max_file_mb", 0, 1_000_000, above=True), Rule("bundled_crops", "bundled_crops", 1, 10_000_000),
        Rule("seed", "seed", 0), Rule("num_shards", "num_shards", 0, 100_000),
        Rule("shard_mb", "shard_mb", 0, 1_000_000, above=True), Rule("max_bucket", "max_bucket", 2, 1_000_000),
        Rule("workers", "workers", 0, 1024),
    )

    def validate(self) -> None:
        """Refuse out-of-range numbers (one line naming the flag) before any work."""
        check_rules(self, self.RULES)


__all__ = ["BuildNpddConfig", "DEFAULT_MAX_PIXELS"]
