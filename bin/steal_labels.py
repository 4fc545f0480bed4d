"""copycat-steal-labels: query the oracle for hard labels of every image, crash-safe, never paying twice.

    copycat-steal-labels --images=lake/npdd --oracle=runs/BL-VGG-ODD-OL/export --output=lake/stolen/target/NPDD-SL
    COPYCAT_ORACLE_API_KEY=... copycat-steal-labels --images=lake/npdd \
        --oracle=https://api.example.com/v1/models/target:predict --max_queries=100000 --price_per_1000=1.0 \
        --output=lake/stolen/target/NPDD-SL
    copycat-steal-labels --images=lake/npdd --oracle=... --max_queries=10000 --strategy=adaptive \
        --pool_transforms=grayscale+contrast,grayscale+invert+contrast --output=lake/stolen/target/NPDD-SL
"""

from absl import flags

from copycat_bin import app
from copycat_tf import query_strategies
from copycat_tf.errors import CopycatError

app.define_common_flags(beam_stage=True)
flags.DEFINE_string("images", None, "Lake folder of images to label (an NPDD, or a PDD whose own labels are ignored).")
flags.DEFINE_string("oracle", None, "The target: a SavedModel folder, or the URL of a TF-Serving-style :predict endpoint.")
flags.DEFINE_integer("batch_size", 32, "Images per oracle request.")
flags.DEFINE_integer("max_queries", None, "Never send more than this many images to the oracle, counted over every run.")
flags.DEFINE_float("price_per_1000", None, "Price of 1000 queries, to report the cost.")
flags.DEFINE_integer("num_classes", None, "Number of classes, when the oracle's output does not tell (class ids only).")
flags.DEFINE_string("ledger", None, "Ledger folder (default OUTPUT/ledger); share it between runs and machines.")
flags.DEFINE_string("oracle_output", None, "Which output of the oracle to read when it has several.")
flags.DEFINE_string("oracle_signature", "serving_default", "SavedModel signature to call.")
flags.DEFINE_enum("oracle_value_range", "0-255", ["0-255", "0-1", "-1-1"],
                  "Value range of float32 image inputs of a tensor-input SavedModel (uint8 inputs are always 0-255).")
flags.DEFINE_integer("oracle_input_size", None, "Side in pixels for a tensor-input SavedModel that accepts any size.")
flags.DEFINE_float("oracle_timeout", 30.0, "REST: seconds before a request is given up and retried.")
flags.DEFINE_integer("oracle_retries", 5, "REST: retries after 429, 5xx, timeouts and connection errors.")
flags.DEFINE_integer("oracle_concurrency", 4, "REST: requests in flight at most, per worker process.")
flags.DEFINE_float("oracle_qps", None, "REST: images sent per second at most, per worker process.")
flags.DEFINE_string("oracle_api_key_env", "COPYCAT_ORACLE_API_KEY", "REST: environment variable holding the API key.")
flags.DEFINE_bool("oracle_verify_tls", True, "REST: verify the server's TLS certificate.")
flags.DEFINE_enum("strategy", "random", query_strategies.names(),
                  "Which images to ask (copycat_tf.query_strategies): " + "; ".join(
                      f"{s.name}: {s.summary}" for s in query_strategies.REGISTRY.values()) + ".")
flags.DEFINE_list("pool_transforms", [],
                  "Variants derived from every pool image before querying, each a +chain of grayscale, invert, contrast, "
                  "zoom, rotate, lowres, plain (e.g. grayscale+contrast,grayscale+invert+contrast). Off by default.")
flags.DEFINE_string("pool", None, "Folder for the transformed pool (default OUTPUT/pool); runs with the same input, "
                    "transforms and seed reuse it.")
flags.DEFINE_string("adaptive_cache", None, "Adaptive: local folder for the pool's thumbnail index (default "
                    "OUTPUT/adaptive); runs over the same pool can share it.")
flags.DEFINE_integer("adaptive_rounds", 8, "Adaptive: selection rounds sharing the budget left after the seed set.")
flags.DEFINE_float("adaptive_seed_fraction", 0.2, "Adaptive: share of the budget first queried at random.")
flags.DEFINE_integer("adaptive_quota", None, "Adaptive: labels wanted per class (default max_queries / classes).")
flags.DEFINE_float("adaptive_explore", 0.2, "Adaptive: share of each round spent on the images the interim copycat is "
                   "least sure of (never-seen classes' shares go there too).")
flags.DEFINE_integer("adaptive_input_size", 32, "Adaptive: thumbnail side of the interim copycat.")
flags.DEFINE_integer("adaptive_epochs", 4, "Adaptive: interim copycat epochs per round.")
flags.DEFINE_integer("adaptive_max_train_per_class", 2000, "Adaptive: the interim copycat's training images per class "
                     "at most.")
flags.DEFINE_float("adaptive_variants", 0.0, "Adaptive: share of each class's picks spent on variants (near copies: "
                   "same-class blends, small turns, shifts and zooms) of images the oracle already put in that "
                   "class; kept in OUTPUT/variants and labeled like pool images. 0: pool images only.")
flags.DEFINE_integer("num_shards", 0, "Output shards (0: as many as the images folder has).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("images", "oracle", "output")
    if query_strategies.get(FLAGS.strategy).needs_budget and FLAGS.max_queries is None:
        raise CopycatError(f"--strategy={FLAGS.strategy} needs --max_queries: the budget it shares out")
    from beam_pipelines import steal_labels
    from beam_pipelines.pool_transforms import parse_variants
    from copycat_tf.adaptive.rounds import AdaptiveConfig
    from copycat_tf.oracles import OracleSpec

    adaptive = AdaptiveConfig(rounds=FLAGS.adaptive_rounds, seed_fraction=FLAGS.adaptive_seed_fraction,
                              quota=FLAGS.adaptive_quota, explore=FLAGS.adaptive_explore,
                              input_size=FLAGS.adaptive_input_size, epochs=FLAGS.adaptive_epochs,
                              max_train_per_class=FLAGS.adaptive_max_train_per_class,
                              variants=FLAGS.adaptive_variants)
    variants = parse_variants(FLAGS.pool_transforms)

    spec = OracleSpec(
        target=FLAGS.oracle, output=FLAGS.oracle_output, signature=FLAGS.oracle_signature,
        value_range=FLAGS.oracle_value_range, input_size=FLAGS.oracle_input_size, num_classes=FLAGS.num_classes,
        timeout_s=FLAGS.oracle_timeout, max_retries=FLAGS.oracle_retries, concurrency=FLAGS.oracle_concurrency,
        queries_per_second=FLAGS.oracle_qps, api_key_env=FLAGS.oracle_api_key_env, verify_tls=FLAGS.oracle_verify_tls,
    )
    config = steal_labels.StealLabelsConfig(
        images=FLAGS.images, oracle=spec, output=FLAGS.output, batch_size=FLAGS.batch_size,
        max_queries=FLAGS.max_queries, price_per_1000=FLAGS.price_per_1000, ledger=FLAGS.ledger, seed=FLAGS.seed,
        strategy=FLAGS.strategy, adaptive=adaptive, pool_transforms=variants, pool=FLAGS.pool,
        adaptive_cache=FLAGS.adaptive_cache, num_shards=FLAGS.num_shards,
    )
    config.validate()
    from copycat_tf import coverage

    manifest = steal_labels.run(config, runner=FLAGS.runner, pipeline_args=argv[1:])
    counts, extra = manifest.counts, manifest.extra
    print(f"{counts['labeled']} of {counts['images']} images labeled ({counts['ledger_hits']} from the ledger, "
          f"{counts['queries']} queries this run, {extra['queries_total']} in all) -> {FLAGS.output}")
    print(f"label histogram: {extra['label_histogram']}")
    print(f"coverage: {coverage.describe(extra['coverage'])}")
    if "adaptive" in extra:
        print(f"adaptive: {extra['adaptive']['rounds_run']} rounds, stopped because {extra['adaptive']['stopped']} "
              f"(quota {extra['adaptive']['quota']} per class, {extra['adaptive'].get('variants_labeled', 0)} "
              "variants labeled)")
    if "cost" in extra:
        print(f"cost: {extra['cost']['this_run']:.2f} this run, {extra['cost']['total']:.2f} in all")
    if extra["classes_never_seen"]:
        print(f"WARNING: classes never returned by the oracle: {extra['classes_never_seen']}")
    return 0


def run() -> None:
    app.run(main, pass_through=True)


if __name__ == "__main__":
    run()
