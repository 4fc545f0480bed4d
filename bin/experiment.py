"""copycat-experiment: the paper's experiments (Table 3, Table 4, Fig. 5, robustness) and coverage, resumable.

    copycat-experiment --config=configs/digits.json --small --output=experiments/digits
    copycat-experiment --config=configs/digits_coverage.json --output=experiments/digits_coverage
    copycat-experiment --config=configs/DIG10.json --output=gs://BUCKET/experiments/DIG10
"""

import json

from absl import flags

from copycat_bin import app

flags.DEFINE_string("config", None, "Experiment config (JSON); configs/ has one per paper problem and digits.")
flags.DEFINE_string("output", None, "Folder for the lake, runs, robustness runs, report and experiment.json.")
flags.DEFINE_bool("small", False, "Apply the config's small-scale overrides (a quick local run, like runlocal).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("config", "output", positional=argv)
    from copycat_tf.experiment import load_config, run_experiment

    results = run_experiment(load_config(FLAGS.config, FLAGS.small), FLAGS.output)
    for name, f1 in sorted(results["runs"].items()):
        print(f"{name}: macro F1 {f1:.3f}")
    if results["robustness"]:
        r = results["robustness"]
        print(f"robustness: copy performance {r['copy_performance_mean']:.3f} ± {r['copy_performance_std']:.3f} "
              f"over {len(r['per_seed'])} targets")
    for point in results.get("coverage") or []:
        scores = ", ".join(f"{key.replace('_', ' ')} {point[key]:.3f}" for key in ("copy_performance", "agreement")
                           if point[key] is not None)
        print(f"coverage {point['strategy']} @{point['budget']}: {point['classes_seen']} classes seen, {scores}")
    print(f"report: {results['report']}")
    print(json.dumps({"experiment": FLAGS.output}))
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
