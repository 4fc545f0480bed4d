"""copycat-build-npdd: natural random images → a deduplicated, sharded NPDD folder in the lake.

    copycat-build-npdd --source=bundled --output=LAKE/npdd
    copycat-build-npdd --source=tfds:imagenet2012:train --source=tfds:coco/2017:train \
        --tfds_data_dir=gs://BUCKET/tfds --output=gs://BUCKET/lake/npdd \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp
"""

from absl import flags

from copycat_bin import app
from copycat_tf.errors import CopycatError

app.define_common_flags(beam_stage=True)
flags.DEFINE_multi_string(
    "source", None,
    "Repeatable. dir:GLOB (any file pattern Beam reads: local, gs://; a plain folder means every file below it), "
    "tfds:NAME[:SPLIT] (a prepared TFDS dataset, e.g. imagenet2012, coco/2017, visual_domain_decathlon/imagenet12; "
    "all splits when SPLIT is left out) or bundled (random crops of photos shipped with scikit-image/scikit-learn).",
)
flags.DEFINE_string("tfds_data_dir", None, "TFDS data_dir for tfds: sources (default: TFDS's own).")
flags.DEFINE_integer("bundled_crops", 2000, "How many random crops the bundled source cuts.")
flags.DEFINE_integer("max_side", 256, "Downscale so that the short side is at most this many pixels.")
flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality (1-100) of the stored images.")
flags.DEFINE_integer(
    "near_dup_bits", 8,
    "Images whose 64-bit pHashes differ in at most this many bits are near duplicates (0 keeps only exact dedupe).",
)
flags.DEFINE_integer("max_pixels", 89_478_485, "Images with more pixels are rejected as decompression bombs.")
flags.DEFINE_float("max_file_mb", 64.0, "Files larger than this are rejected unread.")
flags.DEFINE_integer("num_shards", 0, "Number of image shards; 0 sizes them by --shard_mb.")
flags.DEFINE_float("shard_mb", 128.0, "Target shard size when --num_shards is 0.")
flags.DEFINE_integer("max_bucket", 256, "Hash buckets above this size are split further before pairwise checks.")
FLAGS = flags.FLAGS


def _check_flags() -> None:
    if not FLAGS.source:
        raise CopycatError("--source is required, e.g. --source=bundled or --source=dir:/data/photos/*.jpg")
    if not FLAGS.output:
        raise CopycatError("--output is required: the NPDD folder to write, e.g. --output=lake/npdd")


def main(argv: list[str]) -> int:
    _check_flags()
    from beam_pipelines import build_npdd

    config = build_npdd.BuildNpddConfig(
        sources=FLAGS.source, output=FLAGS.output, max_side=FLAGS.max_side, jpeg_quality=FLAGS.jpeg_quality,
        near_dup_bits=FLAGS.near_dup_bits, max_pixels=FLAGS.max_pixels, max_file_mb=FLAGS.max_file_mb,
        bundled_crops=FLAGS.bundled_crops, seed=FLAGS.seed, tfds_data_dir=FLAGS.tfds_data_dir,
        num_shards=FLAGS.num_shards, shard_mb=FLAGS.shard_mb, max_bucket=FLAGS.max_bucket,
    )
    manifest = build_npdd.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    counts = manifest.counts
    print(
        f"NPDD written to {FLAGS.output}: {counts['kept']} images kept of {counts['seen']} seen "
        f"({counts['exact_duplicates']} exact and {counts['near_duplicates']} near duplicates removed, "
        f"{counts['rejected']} rejected)"
    )
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
