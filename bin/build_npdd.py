"""copycat-build-npdd: natural random images → a deduplicated, sharded NPDD folder in the lake.

    copycat-build-npdd --source=bundled --output=LAKE/npdd
    copycat-build-npdd --source=tfds:imagenet2012:train --source=tfds:coco/2017:train \
        --tfds_data_dir=gs://BUCKET/tfds --output=gs://BUCKET/lake/npdd \
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://BUCKET/tmp

A local run decodes and hashes on every core of the machine (--workers); the output does not depend
on how many.
"""

from absl import flags

from beam_pipelines.build_npdd_config import BuildNpddConfig  # no Beam: defining and checking flags stays fast
from copycat_bin import app
from copycat_tf.errors import CopycatError

app.define_common_flags(beam_stage=True)
app.define_config_flags(BuildNpddConfig)  # every other flag: a BuildNpddConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    if not FLAGS.source:
        raise CopycatError("--source is required, e.g. --source=bundled or --source=dir:/data/photos/*.jpg")
    app.require("output")
    config = app.config_from_flags(BuildNpddConfig)
    config.validate()  # a bad option is refused before Beam starts (build_npdd.run checks again for library callers)
    from beam_pipelines import build_npdd

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
