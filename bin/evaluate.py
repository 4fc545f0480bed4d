"""copycat-evaluate: macro F1, balanced accuracy, accuracy, agreement and copy performance with 95% intervals.

    copycat-evaluate --model=runs/CC-VGG-NPDD-SL/export --reference=runs/BL-VGG-ODD-OL/export \
        --test=lake/problems/digits/tdd --output=runs/CC-VGG-NPDD-SL/evaluation.json
"""

import json

from absl import flags

from copycat_bin import app

flags.DEFINE_multi_string("model", None, "Model to evaluate (any oracle: SavedModel folder or :predict URL); repeatable.")
flags.DEFINE_string("test", None, "Lake folder of labeled test images (a TDD).")
flags.DEFINE_string("reference", None, "The target, for agreement, Cohen's kappa and copy performance.")
flags.DEFINE_string("output", None, "JSON file to write the report to (printed in any case).")
flags.DEFINE_integer("batch_size", 64, "Images per request.")
flags.DEFINE_integer("bootstrap", 1000, "Paired bootstrap resamples for the 95% intervals (0: none).")
flags.DEFINE_integer("num_classes", None, "Number of classes when the test folder's manifest does not say.")
flags.DEFINE_integer("seed", 0, "Seed of the bootstrap.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("model", "test", positional=argv)
    from copycat_tf.evaluation import EvaluateConfig, evaluate
    from tfrecords_schema import fileio

    report = evaluate(EvaluateConfig(models=FLAGS.model, test=FLAGS.test, reference=FLAGS.reference,
                                     batch_size=FLAGS.batch_size, bootstrap=FLAGS.bootstrap, seed=FLAGS.seed,
                                     num_classes=FLAGS.num_classes))
    if FLAGS.output:
        fileio.write_text_atomically(FLAGS.output, json.dumps(report, indent=2))
    for name, model in report["models"].items():
        line = (f"{name}: macro F1 {model['macro_f1']:.3f} {_interval(model, 'macro_f1')}, balanced accuracy "
                f"{model['balanced_accuracy']:.3f}, accuracy {model['accuracy']:.3f}")
        if model.get("copy_performance") is not None:
            line += (f", copy performance {model['copy_performance']:.3f} {_interval(model, 'copy_performance')}, "
                     f"agreement {model['agreement']['overall']:.3f}")
        print(line)
    return 0


def _interval(model: dict, key: str) -> str:
    low, high = model["intervals_95"].get(key, [float("nan")] * 2)
    return f"[{low:.3f}, {high:.3f}]"


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
