"""copycat-ensemble: average several copycats trained on the same stolen labels into one exported copycat.

    copycat-ensemble --members=runs/CC-VGG-NPDD-SL,runs/CC-VGG-NPDD-SL.s1,runs/CC-VGG-NPDD-SL.s2 \
        --output=runs/CC-VGG-NPDD-SL.ensemble3
"""

from absl import flags

from copycat_bin import app
from copycat_tf.ensemble import EnsembleConfig  # no TensorFlow: defining and checking flags stays fast

app.define_config_flags(EnsembleConfig)  # --members and --output: EnsembleConfig's fields, with their help texts
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("members", "output", positional=argv)
    from copycat_tf.ensemble import run
    from copycat_tf.run_dir import RunDir

    config = app.config_from_flags(EnsembleConfig)
    metrics = run(config)
    print(f"ensemble of {len(metrics['members'])} copycats ({metrics['num_classes']} classes) -> "
          f"{RunDir(FLAGS.output).export}")
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
