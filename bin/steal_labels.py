"""copycat-steal-labels: query the oracle for hard labels of every image, crash-safe, never paying twice.

    copycat-steal-labels --images=lake/npdd --oracle=runs/BL-VGG-ODD-OL/export --output=lake/stolen/target/NPDD-SL
    COPYCAT_ORACLE_API_KEY=... copycat-steal-labels --images=lake/npdd \
        --oracle=https://api.example.com/v1/models/target:predict --max_queries=100000 --price_per_1000=1.0 \
        --output=lake/stolen/target/NPDD-SL
    copycat-steal-labels --images=lake/npdd --oracle=... --max_queries=10000 --strategy=adaptive \
        --pool_transforms=grayscale+contrast,grayscale+invert+contrast --output=lake/stolen/target/NPDD-SL
"""

from absl import flags

from beam_pipelines.steal_labels_config import StealLabelsConfig  # no Beam: defining and checking flags stays fast
from copycat_bin import app
from copycat_tf import query_strategies
from copycat_tf.errors import CopycatError

app.define_common_flags(beam_stage=True)
app.define_config_flags(StealLabelsConfig)  # every other flag: a field of StealLabelsConfig, its OracleSpec or its
                                            # AdaptiveConfig, with the field's default and help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("images", "oracle", "output")
    if query_strategies.get(FLAGS.strategy).needs_budget and FLAGS.max_queries is None:
        raise CopycatError(f"--strategy={FLAGS.strategy} needs --max_queries: the budget it shares out")
    from beam_pipelines.pool_transform_names import parse_variants  # no Beam: a misspelt transform stops at once

    config = app.config_from_flags(StealLabelsConfig)
    config.pool_transforms = parse_variants(config.pool_transforms)
    config.validate()
    from beam_pipelines import steal_labels  # Beam and TensorFlow start here, after the flags are known to be good
    from copycat_tf import coverage

    manifest = steal_labels.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    counts, extra = manifest.counts, manifest.typed_extra()
    print(f"{counts['labeled']} of {counts['images']} images labeled ({counts['ledger_hits']} from the ledger, "
          f"{counts['queries']} queries this run, {extra.queries_total} in all) -> {FLAGS.output}")
    print(f"label histogram: {extra.label_histogram}")
    print(f"coverage: {coverage.describe(extra.coverage)}")
    if extra.strategy == "adaptive" and extra.strategy_report:
        report = extra.strategy_report
        print(f"adaptive: {report['rounds_run']} rounds, stopped because {report['stopped']} "
              f"(quota {report['quota']} per class, {report.get('variants_labeled', 0)} variants labeled)")
    if extra.cost:
        print(f"cost: {extra.cost['this_run']:.2f} this run, {extra.cost['total']:.2f} in all")
    if extra.classes_never_seen:
        print(f"WARNING: classes never returned by the oracle: {extra.classes_never_seen}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
