"""copycat-evaluate: macro F1, balanced accuracy, accuracy, agreement and copy performance with 95% intervals.

    copycat-evaluate --model=runs/CC-VGG-NPDD-SL/export --reference=runs/BL-VGG-ODD-OL/export \
        --test=lake/problems/digits/tdd --output=runs/CC-VGG-NPDD-SL/evaluation.json
"""

import json

from absl import flags

from copycat_bin import app
from copycat_tf.evaluation_config import EvaluateConfig  # no TensorFlow: defining and checking flags stays fast

app.define_config_flags(EvaluateConfig)  # every flag but --output: an EvaluateConfig field, its default and help
flags.DEFINE_string("output", None, "JSON file to write the report to (printed in any case).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("model", "test", positional=argv)
    from copycat_tf.evaluation import evaluate
    from tfrecords_schema import fileio

    report = evaluate(app.config_from_flags(EvaluateConfig))
    if FLAGS.output:
        fileio.write_text_atomically(FLAGS.output, json.dumps(report, indent=2))
    # The reference first: the last line (what a plan shows of the stage) is the evaluated model's.
    for name, model in sorted(report["models"].items(), key=lambda item: item[0] != report.get("reference")):
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
