"""copycat-train: train a target, baseline or copycat on lake folders and export it as an oracle.

    copycat-train --model=vgg16_bn --train=lake/problems/digits/odd --val=lake/problems/digits/tdd \
        --input_size=32 --width=0.25 --epochs=5 --output=runs/BL-VGG-ODD-OL
    copycat-train --model=vgg16 --init=imagenet --train=lake/stolen/t/NPDD-SL-balanced-1000 --strategy=mirrored \
        --mixed_precision --input_size=224 --batch_size=256 --output=runs/CC-VGG-NPDD-SL
"""

from absl import flags

from copycat_bin import app
from copycat_tf.training.config import TrainConfig  # no TensorFlow: defining and checking flags stays fast

app.define_common_flags()
app.define_config_flags(TrainConfig)  # every other flag: a TrainConfig field, its default and its help text
FLAGS = flags.FLAGS


def main(argv: list[str]) -> int:
    app.require("train", "output", positional=argv)
    config = app.config_from_flags(TrainConfig)
    config.validate()  # every number range-checked before any work (train checks again for library callers)
    from copycat_tf.run_dir import RunDir  # TensorFlow starts here, after the flags are known to be good
    from copycat_tf.training import train

    metrics = train(config)
    line = f"trained {metrics['model']} for {metrics['steps']} steps -> {RunDir(FLAGS.output).export}"
    if "final_val_accuracy" in metrics:
        line += f" (validation accuracy {metrics['final_val_accuracy']:.3f})"
    print(line)
    return 0


def run() -> None:
    app.run(main)


if __name__ == "__main__":
    run()
