"""copycat-experiment: the paper's experiments (Table 3, Table 4, Fig. 5, robustness) and coverage, resumable.

    copycat-experiment --config=configs/digits.json --small --output=experiments/digits
    copycat-experiment --config=configs/digits_coverage.json --output=experiments/digits_coverage
    for s in 0 1 2; do copycat-experiment --config=configs/digits_ablation.json --seed=$s --output=ablation/seed$s; done
    copycat-experiment --config=configs/DIG10.json --output=gs://BUCKET/experiments/DIG10
"""

import json

from absl import flags

from copycat_bin import app

flags.DEFINE_string("config", None, "Experiment config (JSON); configs/ has one per paper problem and digits.")
flags.DEFINE_string("output", None, "Folder for the lake, runs, robustness runs, report and experiment.json.")
flags.DEFINE_bool("small", False, "Apply the config's small-scale overrides (a quick local run, like runlocal).")
flags.DEFINE_integer("seed", None, "Replaces the config's seed (the target's, the pool's and the copycats'): one "
                     "replicate of an experiment per seed, each into its own --output.")
flags.DEFINE_integer("jobs", 1, "Steps run at once where the plan allows (a step starts once the steps whose "
                     "outputs it names have finished); every step computes the same numbers as alone.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("config", "output", positional=argv)
    from copycat_tf.experiment import load_config, run_experiment

    config = load_config(FLAGS.config, FLAGS.small)
    if FLAGS.seed is not None:
        if FLAGS.seed < 0:
            from copycat_tf.errors import CopycatError

            raise CopycatError(f"--seed={FLAGS.seed} is out of range: use a whole number from 0")
        config = {**config, "seed": FLAGS.seed}
    if FLAGS.jobs < 1:
        from copycat_tf.errors import CopycatError

        raise CopycatError(f"--jobs={FLAGS.jobs} is out of range: use a whole number from 1")
    results = run_experiment(config, FLAGS.output, jobs=FLAGS.jobs)
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
