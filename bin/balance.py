"""copycat-balance: uniform classes by seeded replication (minority) and elimination (majority).

    copycat-balance --input=lake/stolen/target/NPDD-SL --per_class=1000 --output=lake/stolen/target/NPDD-SL-balanced-1000
"""

from absl import flags

from copycat_bin import app

app.define_common_flags(beam_stage=True)
flags.DEFINE_string("input", None, "Lake folder of labeled images (from copycat-steal-labels or copycat-prepare-problem).")
flags.DEFINE_integer("per_class", None, "Images per class after balancing.")
flags.DEFINE_integer("total", None, "Images in all after balancing (split evenly over the classes).")
flags.DEFINE_bool("allow_missing_classes", False, "Leave classes without any image empty instead of failing.")
flags.DEFINE_integer("num_shards", 0, "Output shards (0: sized like the input).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("input", "output")
    from beam_pipelines import balance

    config = balance.BalanceConfig(
        input=FLAGS.input, output=FLAGS.output, per_class=FLAGS.per_class, total=FLAGS.total, seed=FLAGS.seed,
        allow_missing_classes=FLAGS.allow_missing_classes, num_shards=FLAGS.num_shards,
    )
    manifest = balance.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    print(f"balanced {manifest.counts['records_before']} records into {manifest.counts['records']} "
          f"({manifest.extra['label_histogram']} per class, from {manifest.extra['label_histogram_before']}) -> {FLAGS.output}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
